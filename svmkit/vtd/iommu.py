"""The VT-d remapping hardware: finding a request's tables, then walking them.

A DMA request carries a source-id (bus << 8 | devfn), an address, maybe a
PASID, read/write/execute and a privilege. The hardware (VT-d §3.4-§3.9):

1. reads the root entry of the bus from the root table (RTADDR_REG);
2. reads the context entry of the device (devfn);
3. scalable mode (§3.4.3): picks the PASID (the request's, or RID_PASID
   from the context entry), reads the PASID-directory entry (PASID bits
   19:6) and the PASID-table entry (bits 5:0); its PGTT says which tables
   translate: first-level only, second-level only, nested, pass-through;
   legacy mode (§3.4.2): the context entry itself holds the second-level
   table pointer; VT-d 2.x extended mode: the extended-context entry holds
   the second-level pointer and, for requests with PASID, a PASID-table
   pointer (a guest-physical address under nesting);
4. walks the tables (`svmkit.walker`): first level (§3.6, IA-32e format),
   second level (§3.7), or nested (§3.8: every first-level table pointer,
   FLPTPTR included, and the output are GPAs translated by the second
   level).

Step 1-3 decode into a `Config` record, which step 4 consumes. Caches
(§6.2) sit in front of steps 1-2 (context-cache), 3 (PASID-cache) and 4
(IOTLB); a hit makes no memory reference. Faults are values: the reason
numbers are those of §7.1.3 for the mode in force; recording honours FPD
(§7.1.2).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..formats import layout as L
from ..formats import vtd_sl as _sl
from ..formats import x86_64 as _x86
from ..memory import Memory
from ..walker import faults as F
from ..walker import reference
from ..walks import Fault, Ref, Walk
from . import invalidation as inv
from . import structures as S
from .caches import (F_DIRTY, F_FL, F_GLOBAL, F_R, F_U, F_W, F_WSUP, F_X, Cache,
                     CacheConfig, Iotlb)
from .faults import NON_QUALIFIED, FaultRecord, describe

__all__ = ["Iommu", "Config", "TTM"]

TTM = ("legacy", "scalable", "extended")
#: Address types of a request (PCIe AT field) the model accepts: 00b
#: untranslated, 10b translated (by a device-TLB). Translation requests
#: (01b, ATS) are not modelled.
AT = ("untranslated", "translated")
#: Context-entry translation types that let translated requests through:
#: legacy TT 01b (VT-d §9.3), extended T 001b/101b (2.x §9.4).
_DEVICE_TLB_TT = {"legacy": (1,), "extended": (1, 5)}
INTERRUPT_LO, INTERRUPT_HI = 0xFEE0_0000, 0xFEEF_FFFF
U64 = (1 << 64) - 1
SL, FL = _sl.FORMAT, _x86.FORMAT


@dataclass(frozen=True)
class Config:
    """What the root, context and PASID structures decided for a request
    (the record the stage walks consume)."""
    mode: str
    source_id: int
    pasid: int                 # the PASID used (RID_PASID if none), -1 in legacy mode
    did: int
    pgtt: str                  # "first", "second", "nested", "pass-through"
    first_root: int = 0        # FLPTPTR (HPA, or GPA when nested)
    first_levels: int = 4
    second_root: int = 0       # SLPTPTR (HPA)
    second_levels: int = 4
    sre: bool = False
    wpe: bool = False
    ere: bool = False
    ssade: bool = False
    fpd: bool = False          # some FPD on the way is set
    privileged: bool = False


@dataclass
class _Ctx:
    """A decoded context entry as the context-cache holds it."""
    fpd: bool
    did: int = 0
    tt: int = 0
    second_root: int = 0
    second_levels: int = 4
    paside: bool = False
    pdts: int = 0
    pasiddirptr: int = 0
    rid_pasid: int = 0
    rid_priv: bool = False
    neste: bool = False
    pts: int = 0
    pasidptr: int = 0
    ere: bool = False
    wpe: bool = False


@dataclass
class _Pasid:
    """A decoded PASID-table entry as the PASID-cache holds it."""
    fpd: bool
    did: int
    pgtt: str
    first_root: int = 0
    first_levels: int = 4
    second_root: int = 0
    second_levels: int = 4
    sre: bool = False
    wpe: bool = False
    ere: bool = False
    ssade: bool = False


class _Fault(Exception):
    """Internal: a structure fault found while decoding (never leaves)."""

    def __init__(self, stage, code):
        self.stage, self.code = stage, code


def _check_int(name, value, bits):
    if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
        raise ValueError(f"{name}={value!r} is not an integer; allowed: 0 to {(1 << bits) - 1:#x}")
    value = int(value)
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name}={value:#x} is out of range; allowed: 0 to {(1 << bits) - 1:#x}")
    return value


@lru_cache(maxsize=None)
def _fl_descriptor(levels, haw, fl_1g):
    """IA-32e descriptor for a first-level walk (VT-d §3.6, §9.7). Without
    1 GiB support (ECAP_REG.FL1GP, §10.4.3) PS in a PDPTE is reserved."""
    d = FL.descriptor(levels, haw)
    if not fl_1g:
        d[3, L.L_LEAF] = L.LEAF_NEVER
        d[3, L.L_RSVD_TABLE] |= _x86.PS
    d.flags.writeable = False
    return d


@lru_cache(maxsize=None)
def _sl_descriptor(levels, haw, ssade, large):
    """Second-level descriptor (VT-d §3.7, §9.8). CAP_REG.SLLPS (§10.4.2)
    says which large pages exist: `large` 0 none, 1 2 MiB, 2 2 MiB and 1 GiB;
    PS is reserved where they do not."""
    d = SL.descriptor(levels, haw, ad=ssade)
    for lv in (2, 3):
        if lv > large + 1 and lv <= levels:
            d[lv, L.L_LEAF] = L.LEAF_NEVER
            d[lv, L.L_RSVD_TABLE] |= _sl.PS
    d.flags.writeable = False
    return d


class Iommu:
    """One VT-d remapping unit over `mem`.

    Registers and capabilities (VT-d §10.4): `root_table` (RTADDR_REG.RTA;
    bits at or above HAW are accepted and fault 0x30 when used) and `ttm`
    (RTADDR_REG.TTM: "legacy" 00b, "scalable" 01b; "extended" is the
    VT-d 2.x extended root table, RTT=1); `haw` the host address width
    (CAP_REG.MGAW+1); `sl_levels` the second-level depths supported
    (CAP_REG.SAGAW); `sl_large_pages` (SLLPS: 0 none, 1 2 MiB, 2 also
    1 GiB); `fl_5level` (ECAP_REG.FS5LP... FLPM 01b allowed), `fl_1g`
    (FL1GP); `first_level` (FLTS/FSTS), `second_level` (SLTS/SSTS),
    `nested` (NEST), `pass_through` (PT); `pasid_width` (PSS+1);
    `supervisor` (SRS: supervisor requests supported).
    `caches` a `CacheConfig` (None: defaults).
    """

    def __init__(self, mem, *, root_table, ttm="scalable", haw=48, sl_levels=(3, 4, 5),
                 fl_5level=True, fl_1g=True, sl_large_pages=2, first_level=True,
                 second_level=True, nested=True, pass_through=True, pasid_width=20,
                 supervisor=True, caches=None):
        if not isinstance(mem, Memory):
            raise ValueError(f"mem={mem!r} is not a svmkit.Memory")
        if ttm not in TTM:
            raise ValueError(f"ttm={ttm!r}; allowed: {', '.join(TTM)}")
        if not isinstance(haw, int) or not 39 <= haw <= 52:
            raise ValueError(f"haw={haw!r}; allowed: 39 to 52")
        # RTADDR_REG.RTA spans bits 63:12; hardware may leave bits 63:HAW
        # unimplemented (§10.4.6). This model implements them: a root table
        # beyond HAW can be programmed and faults when a request uses it
        root_table = _check_int("root_table", root_table, 64)
        if root_table & 0xFFF:
            raise ValueError(f"root_table={root_table:#x} is not 4 KiB aligned")
        sl_levels = tuple(sl_levels)
        if not sl_levels or any(x not in (3, 4, 5) for x in sl_levels):
            raise ValueError(f"sl_levels={sl_levels!r}; allowed: a non-empty subset of (3, 4, 5)")
        if sl_large_pages not in (0, 1, 2):
            raise ValueError(f"sl_large_pages={sl_large_pages!r}; allowed: 0, 1, 2")
        if not isinstance(pasid_width, int) or not 1 <= pasid_width <= 20:
            raise ValueError(f"pasid_width={pasid_width!r}; allowed: 1 to 20")
        if caches is None:
            caches = CacheConfig()
        if not isinstance(caches, CacheConfig):
            raise ValueError("caches: a svmkit.vtd.CacheConfig or None")
        self.mem, self.root_table, self.ttm, self.haw = mem, root_table, ttm, haw
        self.sl_levels, self.sl_large_pages = sl_levels, sl_large_pages
        self.fl_5level, self.fl_1g = bool(fl_5level), bool(fl_1g)
        self.caps = {"first": bool(first_level), "second": bool(second_level),
                     "nested": bool(nested), "pass-through": bool(pass_through)}
        self.pasid_width, self.supervisor = pasid_width, bool(supervisor)
        self.cache_config = caches
        on = caches.enabled
        self.context_cache = Cache(caches.context_entries, caches.policy, caches.seed, on)
        self.pasid_cache = Cache(caches.pasid_entries, caches.policy, caches.seed, on)
        self.iotlb = Iotlb(caches.iotlb_sets, caches.iotlb_ways, caches.policy, caches.seed, on)
        # paging-structure caches (§6.2.5): first-level (with nested combined
        # entries) by (DID, PASID, level, address prefix); second-level by
        # (DID, level, address prefix)
        self.fl_psc = Cache(caches.psc_entries, caches.policy, caches.seed, on)
        self.sl_psc = Cache(caches.psc_entries, caches.policy, caches.seed, on)
        self._partial = {}
        self.faults = []            # FaultRecord, in order (the fault-recording registers)
        self.invalidations = []     # descriptors executed, in order
        self.faults_dropped = 0     # batch faults beyond the recording registers

    @property
    def mode(self):
        return self.ttm

    # -- memory ------------------------------------------------------------
    def _read(self, pa, n):
        """`n` qwords at `pa`, or None when any is beyond installed memory."""
        if pa < 0 or pa + 8 * n > self.mem.size:
            return None
        return tuple(self.mem.read_u64(pa + 8 * i) for i in range(n))

    # -- step 1-2: root and context -----------------------------------------
    def _codes(self):
        """Fault numbers for root/context conditions in the mode in force."""
        if self.ttm == "scalable":
            return dict(root_table=0x30, root_access=0x38, root_np=0x39, root_rsvd=0x3A,
                        ctx_access=0x40, ctx_np=0x41, ctx_rsvd=0x42, ctx_inv=0x43)
        return dict(root_table=0x8, root_access=0x8, root_np=0x1, root_rsvd=0xA,
                    ctx_access=0x9, ctx_np=0x2, ctx_rsvd=0xB, ctx_inv=0x3)

    def _context(self, source_id, refs, st):
        """The decoded context entry of `source_id` (context-cache first)."""
        hit = self.context_cache.lookup(source_id)
        if hit is not None:
            st["context"] = "hit"
            return hit
        st["context"] = "miss"
        c = self._codes()
        if self.root_table >> self.haw:
            # RTADDR_REG.RTA beyond the host address width: the root table
            # itself is unusable, before any root entry is read (VT-d
            # §10.4.6 RTADDR_REG; §7.1.3 scalable table, 0x30, not
            # qualified; the legacy table has no such reason: 0x8)
            raise _Fault("root", c["root_table"])
        bus, devfn = source_id >> 8, source_id & 0xFF
        rpa = self.root_table + 16 * bus
        q = self._read(rpa, 2)
        if q is None:
            raise _Fault("root", c["root_access"])
        legacy = self.ttm == "legacy"
        upper = not legacy and devfn >= 128
        refs.append(Ref("root", 0, rpa + (8 if upper else 0), q[1] if upper else q[0], None,
                        "root-entry"))
        rs = S.root_entry if legacy else S.sm_root_entry
        r = rs.decode(q)
        if legacy:
            present, ctp = r["p"], r["ctp"]
        else:
            present, ctp = (r["up"], r["uctp"]) if upper else (r["lp"], r["lctp"])
        if not present:
            raise _Fault("root", c["root_np"])
        if rs.reserved(q, self.haw):
            raise _Fault("root", c["root_rsvd"])
        if legacy:
            cpa, cs = ctp + 16 * devfn, S.context_entry
        else:
            cpa = ctp + 32 * (devfn & 0x7F)
            cs = S.sm_context_entry if self.ttm == "scalable" else S.ext_context_entry
        q = self._read(cpa, cs.qwords)
        if q is None:
            raise _Fault("context", c["ctx_access"])
        refs.append(Ref("context", 0, cpa, q[0], None, "context-entry"))
        e = cs.decode(q)
        fpd = bool(e["fpd"])
        if not e["p"]:
            raise _FaultFpd("context", c["ctx_np"]) if fpd else _Fault("context", c["ctx_np"])
        try:
            if cs.reserved(q, self.haw):
                raise _Fault("context", c["ctx_rsvd"])
            ctx = self._decode_context(e, fpd, c)
        except _Fault as f:
            raise (_FaultFpd(f.stage, f.code) if fpd else f)
        self.context_cache.fill(source_id, ctx)
        return ctx

    def _decode_context(self, e, fpd, c):
        """Value checks of a present context entry whose reserved bits are
        clear (VT-d §9.3, §9.4; 2.x §9.4): encodings the unit does not
        support fault "invalid programming" (0x3 / 0x43)."""
        if self.ttm == "scalable":
            if e["pdts"] > max(0, self.pasid_width - 13):
                # PDTS describes a PASID directory larger than the unit's
                # PASID width can index (ECAP_REG.PSS, §10.4.3): 2^(PDTS+7)
                # entries of 64 PASIDs each; the smallest directory (PDTS 0)
                # is always allowed (§9.4, §7.1.3 SCT.4, 0x43)
                raise _Fault("context", c["ctx_inv"])
            if e["rid_pasid"] >> self.pasid_width:
                raise _Fault("context", 0x48)
            return _Ctx(fpd, paside=bool(e["paside"]), pdts=e["pdts"],
                        pasiddirptr=e["pasiddirptr"], rid_pasid=e["rid_pasid"],
                        rid_priv=bool(e["rid_priv"]))
        levels = S.AW_LEVELS.get(e["aw"])
        if self.ttm == "legacy":
            tt = e["tt"]
            if tt == 3 or (tt == 2 and not self.caps["pass-through"]):
                raise _Fault("context", c["ctx_inv"])
            if tt != 2 and levels not in self.sl_levels:
                raise _Fault("context", c["ctx_inv"])
            return _Ctx(fpd, did=e["did"], tt=tt, second_root=e["slptptr"],
                        second_levels=levels or 4)
        t = e["t"]                                  # extended-context entry
        if t not in S.EXT_TT or (t == 2 and not self.caps["pass-through"]):
            raise _Fault("context", c["ctx_inv"])
        if t != 2 and levels not in self.sl_levels:
            raise _Fault("context", c["ctx_inv"])
        if e["neste"] and not self.caps["nested"]:
            raise _Fault("context", c["ctx_inv"])
        return _Ctx(fpd, did=e["did"], tt=t, second_root=e["slptptr"],
                    second_levels=levels or 4, paside=bool(e["paside"]),
                    neste=bool(e["neste"]), pts=e["pts"], pasidptr=e["pasidptr"],
                    ere=bool(e["ere"]), wpe=bool(e["wpe"]))

    # -- step 3: PASID ------------------------------------------------------
    def _pasid_entry(self, source_id, ctx, pasid, refs, st):
        """The decoded scalable-mode PASID-table entry (PASID-cache first)."""
        key = (source_id, pasid)
        hit = self.pasid_cache.lookup(key)
        if hit is not None:
            st["pasid"] = "hit"
            return hit
        st["pasid"] = "miss"
        fpd = ctx.fpd
        dpa = ctx.pasiddirptr + 8 * (pasid >> 6)
        q = self._read(dpa, 1)
        if q is None:
            raise _Fault("pasid-directory", 0x50)
        refs.append(Ref("pasid-directory", 0, dpa, q[0], None, "pasid-directory-entry"))
        de = S.pasid_dir_entry.decode(q)
        fpd = fpd or bool(de["fpd"])
        try:
            if not de["p"]:
                raise _Fault("pasid-directory", 0x51)
            if S.pasid_dir_entry.reserved(q, self.haw):
                raise _Fault("pasid-directory", 0x52)
            ppa = de["ptp"] + 64 * (pasid & 0x3F)
            q = self._read(ppa, 8)
            if q is None:
                raise _Fault("pasid-entry", 0x58)
        except _Fault as f:
            raise (_FaultFpd(f.stage, f.code) if fpd else f)
        refs.append(Ref("pasid-entry", 0, ppa, q[0], None, "pasid-entry"))
        e = S.pasid_entry.decode(q)
        fpd = fpd or bool(e["fpd"])
        try:
            pe = self._decode_pasid_entry(q, e, fpd)
        except _Fault as f:
            raise (_FaultFpd(f.stage, f.code) if fpd else f)
        self.pasid_cache.fill(key, pe)
        return pe

    def _decode_pasid_entry(self, q, e, fpd):
        """Checks of VT-d §9.6 on a PASID-table entry: present, reserved
        bits (address fields only where PGTT uses them), then the values
        the hardware does not support (0x5B)."""
        if not e["p"]:
            raise _Fault("pasid-entry", 0x59)
        pgtt = S.PGTT_NAMES.get(e["pgtt"])
        addr_fields = []
        if pgtt in ("second", "nested"):
            addr_fields.append("slptptr")
        if pgtt == "first":
            addr_fields.append("flptptr")        # an HPA; under nesting it is a GPA
        if S.pasid_entry.reserved(q, self.haw, addr_fields):
            raise _Fault("pasid-entry", 0x5A)
        if pgtt is None or not self.caps[pgtt]:
            raise _Fault("pasid-entry", 0x5B)
        pe = _Pasid(fpd, e["did"], pgtt, sre=bool(e["sre"]), wpe=bool(e["wpe"]),
                    ere=bool(e["ere"]), ssade=bool(e["ssade"]))
        if pgtt in ("second", "nested"):
            levels = S.AW_LEVELS.get(e["aw"])
            if levels not in self.sl_levels or not self.caps["second"]:
                raise _Fault("pasid-entry", 0x5B)
            pe.second_root, pe.second_levels = e["slptptr"], levels
        if pgtt in ("first", "nested"):
            if e["flpm"] > 1 or (e["flpm"] == 1 and not self.fl_5level) or \
                    not self.caps["first"]:
                raise _Fault("pasid-entry", 0x5B)
            pe.first_root, pe.first_levels = e["flptptr"], 4 + e["flpm"]
        return pe

    # -- the request --------------------------------------------------------
    def configure(self, source_id, *, pasid=None, privileged=False, refs=None, st=None,
                  at="untranslated"):
        """The `Config` for a request (reading root, context and PASID
        structures through the caches). Returns (config, None) or
        (None, (stage, code, fpd)). `at` "translated" (legacy and extended
        mode): a request whose address a device-TLB already translated."""
        if at not in AT or (at == "translated" and self.ttm == "scalable"):
            # scalable mode checks translated requests against the context
            # entry's DTE (0x44): device-TLBs are out of this model's scope
            raise ValueError(f"at={at!r}; allowed: 'untranslated', and 'translated' in "
                             "legacy and extended mode")
        refs = [] if refs is None else refs
        st = {} if st is None else st
        try:
            if self.ttm == "legacy" and pasid is not None:
                raise _Fault("root", 0x31)
            ctx = self._context(source_id, refs, st)
            if at == "translated":
                # the context entry's TT (T) decides whether translated
                # requests may pass; otherwise they are blocked (VT-d §9.3
                # TT 00b/10b, 2.x §9.4; §7.1.3 legacy 0xD, a qualified fault).
                # Allowed, the address is a host address: not translated again.
                if ctx.tt not in _DEVICE_TLB_TT[self.ttm]:
                    raise _FaultFpd("context", 0xD) if ctx.fpd else _Fault("context", 0xD)
                return Config(self.ttm, source_id, -1, ctx.did, "pass-through",
                              fpd=ctx.fpd), None
            if self.ttm == "legacy":
                pgtt = "pass-through" if ctx.tt == 2 else "second"
                return Config("legacy", source_id, -1, ctx.did, pgtt,
                              second_root=ctx.second_root, second_levels=ctx.second_levels,
                              fpd=ctx.fpd), None
            if self.ttm == "extended":
                return self._configure_extended(source_id, ctx, pasid, privileged, refs, st)
            if pasid is not None and not ctx.paside:
                raise _Fault("context", 0x45)
            use = ctx.rid_pasid if pasid is None else pasid
            priv = ctx.rid_priv if pasid is None else bool(privileged)
            if use >> 6 >= S.pasid_dir_size(ctx.pdts):
                raise _Fault("context", 0x46)
            pe = self._pasid_entry(source_id, ctx, use, refs, st)
            if priv and pe.pgtt in ("first", "nested") and not (pe.sre and self.supervisor):
                raise _FaultFpd("pasid-entry", 0x5D) if pe.fpd else _Fault("pasid-entry", 0x5D)
            return Config("scalable", source_id, use, pe.did, pe.pgtt, pe.first_root,
                          pe.first_levels, pe.second_root, pe.second_levels, pe.sre, pe.wpe,
                          pe.ere, pe.ssade, pe.fpd, priv), None
        except _FaultFpd as f:
            return None, (f.stage, f.code, True)
        except _Fault as f:
            return None, (f.stage, f.code, False)

    def _configure_extended(self, source_id, ctx, pasid, privileged, refs, st):
        """VT-d 2.x extended-context mode (2.x §3.4.3, §9.4, §9.5): requests
        without PASID use the second level; requests with PASID read the
        64-bit PASID entry at PASIDPTR (a GPA translated by the second level
        when NESTE is set) and walk its first-level table, nested when NESTE."""
        sl = dict(second_root=ctx.second_root, second_levels=ctx.second_levels, fpd=ctx.fpd)
        if pasid is None:
            pgtt = "pass-through" if ctx.tt == 2 else "second"
            return Config("extended", source_id, -1, ctx.did, pgtt, **sl), None
        if ctx.tt < 4 or not ctx.paside:
            raise _FaultFpd("context", 0x45) if ctx.fpd else _Fault("context", 0x45)
        if pasid >= S.ext_pasid_table_size(ctx.pts):
            raise _FaultFpd("context", 0x46) if ctx.fpd else _Fault("context", 0x46)
        key = (source_id, pasid)
        pe = self.pasid_cache.lookup(key)
        st["pasid"] = "miss" if pe is None else "hit"
        if pe is None:
            gpa = ctx.pasidptr + 8 * pasid
            hpa = gpa
            if ctx.neste:
                # the guest's PASID table: its address is a GPA (the 2017 design)
                hpa, err = self._sl_translate(gpa, ctx, refs)
                if err is not None:
                    raise _FaultFpd("pasid-entry", err) if ctx.fpd else _Fault("pasid-entry", err)
            q = self._read(hpa, 1)
            if q is None:
                raise _FaultFpd("pasid-entry", 0x58) if ctx.fpd else _Fault("pasid-entry", 0x58)
            refs.append(Ref("pasid-entry", 0, hpa, q[0], None, "pasid-entry"))
            e = S.ext_pasid_entry.decode(q)
            code = None
            if not e["p"]:
                code = 0x59
            elif S.ext_pasid_entry.reserved(q, self.haw, [] if ctx.neste else ["flptptr"]):
                code = 0x5A
            elif e["flpm"] > 1 or (e["flpm"] == 1 and not self.fl_5level):
                code = 0x5B
            if code is not None:
                raise _FaultFpd("pasid-entry", code) if ctx.fpd else _Fault("pasid-entry", code)
            pe = _Pasid(ctx.fpd, ctx.did, "nested" if ctx.neste else "first",
                        first_root=e["flptptr"], first_levels=4 + e["flpm"],
                        second_root=ctx.second_root, second_levels=ctx.second_levels,
                        sre=bool(e["sre"]), wpe=ctx.wpe, ere=ctx.ere)
            self.pasid_cache.fill(key, pe)
        if privileged and not (pe.sre and self.supervisor):
            raise _FaultFpd("pasid-entry", 0x5D) if ctx.fpd else _Fault("pasid-entry", 0x5D)
        return Config("extended", source_id, pasid, pe.did, pe.pgtt, pe.first_root,
                      pe.first_levels, pe.second_root, pe.second_levels, pe.sre, pe.wpe,
                      pe.ere, False, ctx.fpd, bool(privileged)), None

    def _sl_translate(self, gpa, ctx, refs):
        """Second-level translation of a structure's GPA (extended mode,
        NESTE): (hpa, None) or (0, fault code)."""
        d = _sl_descriptor(ctx.second_levels, self.haw, False, self.sl_large_pages)
        raw = []
        r = reference.stage_walk(self.mem, gpa, ctx.second_root, d, F.R, False, False, raw,
                                 F.SECOND, -1)
        for stg, lv, a, v, gl in raw:
            refs.append(Ref("second", lv, a, v & U64, None,
                            SL.structure(lv, SL.is_leaf(v, lv, d))))
        if r[0]:
            name = F.REASONS[r[0]]
            return 0, {"address-width": 0x74, "reserved-bit": 0x7A,
                       "non-existent-memory": 0x78}.get(name, 0x75)
        return r[4], None

    def translate(self, source_id, address, *, pasid=None, access="r", privileged=False,
                  at="untranslated"):
        """Translate one DMA request; returns a `svmkit.Walk`.

        `source_id` the requester id (bus << 8 | devfn); `address` the DMA
        address (IOVA, GVA or GPA as the tables make it); `pasid` the
        request's PASID or None; `access` "r", "w" or "x"; `privileged` a
        supervisor request (with PASID; without one, scalable mode takes
        the privilege from RID_PRIV, VT-d §9.4); `at` the request's address
        type (PCIe AT): "untranslated", or "translated" (already translated
        by the device's TLB; legacy and extended mode only, where the
        context entry's TT decides, §9.3). `.refs` starts with the
        structure reads; `.cache` says which caches hit; faults are also
        appended to `self.faults` unless FPD suppresses them."""
        source_id = _check_int("source_id", source_id, 16)
        address = _check_int("address", address, 64)
        if pasid is not None:
            pasid = _check_int("pasid", pasid, self.pasid_width)
        if access not in F.ACCESSES:
            raise ValueError(f"access={access!r}; allowed: 'r', 'w', 'x'")
        refs, st = [], {}
        cfg, err = self.configure(source_id, pasid=pasid, privileged=privileged, refs=refs,
                                  st=st, at=at)
        if err is not None:
            stage, code, fpd = err
            w = Walk(va=address, ok=False, pa=None, page_size=None,
                     fault=self._fault(stage, 0, code, address, access), refs=refs,
                     access=access)
            self._record(w.fault, source_id, pasid, access, privileged, fpd)
            w.cache, w.config = st, None
            return w
        if access == "x" and cfg.pgtt in ("first", "nested") and not cfg.ere:
            # execute requests need ERE (VT-d §9.6; extended mode: the context's ERE)
            w = Walk(va=address, ok=False, pa=None, page_size=None, refs=refs,
                     fault=self._fault("pasid-entry", 0, 0x5C, address, access), access=access)
            self._record(w.fault, source_id, pasid, access, cfg.privileged, cfg.fpd)
            w.cache, w.config = st, cfg
            return w
        w = self._walk(cfg, address, access, refs, st)
        if w.fault is not None:
            self._record(w.fault, source_id, pasid, access, cfg.privileged, cfg.fpd)
        w.cache, w.config = st, cfg
        return w

    def _fault(self, stage, level, code, address, access):
        reason, _ = describe(code, self.ttm)
        return Fault(stage, level, reason, address, code, access)

    def _record(self, fault, source_id, pasid, access, privileged, fpd):
        """Append a fault record unless FPD suppresses it (VT-d §7.1.2)."""
        mode = "scalable" if self.ttm == "scalable" else "legacy"
        if fpd and fault.code not in NON_QUALIFIED[mode]:
            return
        reason, text = describe(fault.code, self.ttm)
        self.faults.append(FaultRecord(source_id, pasid, fault.address, access,
                                       bool(privileged), fault.code, reason, text))

    # -- step 4: the walk ---------------------------------------------------
    def descriptors(self, cfg):
        """(first-level descriptor or None, second-level descriptor or None)."""
        d1 = d2 = None
        if cfg.pgtt in ("first", "nested"):
            d1 = _fl_descriptor(cfg.first_levels, self.haw, self.fl_1g)
        if cfg.pgtt in ("second", "nested"):
            d2 = _sl_descriptor(cfg.second_levels, self.haw, cfg.ssade, self.sl_large_pages)
        return d1, d2

    def _need(self, cfg, access):
        """IOTLB flag bits a cached translation must have for this request."""
        user = not cfg.privileged
        fl = cfg.pgtt in ("first", "nested")
        need = F_R if access != "w" else (F_W if (user or cfg.wpe or not fl) else F_WSUP)
        if access == "x":
            need |= F_X
        if user and fl:
            need |= F_U
        return need

    def _walk(self, cfg, address, access, refs, st):
        acc = F.ACCESSES.index(access)
        user = not cfg.privileged
        walk_args = dict(va=address, access=access)
        if cfg.pgtt == "pass-through":
            st["iotlb"] = "none"
            if address >> self.haw:
                code = 0x4 if self.ttm != "scalable" else 0x83
                return Walk(ok=False, pa=None, page_size=None, refs=refs,
                            fault=self._fault("second", 0, code, address, access), **walk_args)
            return Walk(ok=True, pa=address, page_size=4096, fault=None, refs=refs,
                        fmt="pass-through", levels=0, **walk_args)
        d1, d2 = self.descriptors(cfg)
        need = self._need(cfg, access)
        hit = self.iotlb.lookup(cfg.did, cfg.pasid, address, need, access == "w")
        fmt, levels = (FL.name, cfg.first_levels) if d1 is not None else \
            (SL.name, cfg.second_levels)
        nested = cfg.pgtt == "nested"
        shape = dict(fmt=fmt, levels=levels, nested=nested,
                     second_fmt=SL.name if nested else None,
                     second_levels=cfg.second_levels if nested else None)
        if hit is not None:
            st["iotlb"] = "hit"
            return Walk(ok=True, pa=hit[0], page_size=hit[1], fault=None, refs=refs,
                        **shape, **walk_args)
        st["iotlb"] = "miss" if self.iotlb.enabled else "off"
        raw = []
        reason, stage, level, where, pa, size, gpa, extra = self._walk_tables(
            cfg, address, acc, user, raw, d1, d2, st)
        for stg, lv, a, v, gl in raw:
            f, d = (FL, d1) if stg == F.FIRST else (SL, d2)
            refs.append(Ref(F.STAGES[stg], int(lv), int(a), int(v) & U64,
                            None if gl < 0 else int(gl), f.structure(lv, f.is_leaf(v, lv, d))))
        if reason:
            code = self.fault_code(cfg, raw, reason, stage, level, access, d1, d2,
                                   extra["fl_start"])
            # the walker's reason name (shared by every model), VT-d's number;
            # 0x84 is no reserved bit in VT-d's terms: the table's name
            name = describe(code, self.ttm)[0] if code == 0x84 else F.REASONS[reason]
            fault = Fault(F.STAGES[stage], int(level), name, int(where) & U64, code, access)
            return Walk(ok=False, pa=None, page_size=None, fault=fault, refs=refs,
                        gpa=gpa if nested and gpa else None, **shape, **walk_args)
        if cfg.mode == "scalable" and INTERRUPT_LO <= pa <= INTERRUPT_HI:
            # the output lands in the interrupt address range (VT-d §3.15, 0x87)
            fault = Fault(F.STAGES[stage], 0, "interrupt-address", address, 0x87, access)
            return Walk(ok=False, pa=None, page_size=None, fault=fault, refs=refs,
                        gpa=gpa if nested else None, **shape, **walk_args)
        self.iotlb.fill(cfg.did, cfg.pasid, address, int(size), int(pa),
                        self._rights(cfg, raw, access, d1, d2, extra))
        return Walk(ok=True, pa=int(pa), page_size=int(size), fault=None, refs=refs,
                    gpa=int(gpa) if nested else None, **shape, **walk_args)

    # paging-structure caches (VT-d §6.2.5) ------------------------------------
    def _start_at(self, d, level):
        """Descriptor `d` for a walk that starts at `level` (the tables
        above come from a paging-structure cache); rows are per level, so
        only the start changes."""
        if level == int(d[0, L.G_LEVELS]):
            return d
        key = (id(d), level)
        dd = self._partial.get(key)
        if dd is None:
            dd = d.copy()
            dd[0, L.G_LEVELS] = level
            dd.flags.writeable = False
            self._partial[key] = (d, dd)          # keep d alive: the key is its id
            return dd
        return dd[1]

    def _psc_lookup(self, cache, tag, addr, d, access, user, wp):
        """The deepest usable entry of a paging-structure cache: a cached
        non-leaf entry at level L gives the table of level L-1 and the
        rights of the levels above. Only entries whose rights allow the
        request are used (otherwise the full walk reports the fault).
        Returns (start level, table, rights, cached value or None)."""
        top = int(d[0, L.G_LEVELS])
        if cache.enabled:
            for lv in range(2, top + 1):
                key = tag + (lv, addr >> int(d[lv, L.L_SHIFT]))
                v = cache.lookup(key, count=False)
                if v is not None and reference.permitted(v[1], access, user, wp, d):
                    cache.lookup(key)               # a hit: counted, LRU refreshed
                    return lv - 1, v[0], v[1], v
            cache.misses += 1
        return top, None, reference.ALL_RIGHTS, None

    def _psc_fill(self, cache, tag, addr, d, raw, start, stage, rights, hpa_of_next=None):
        """Cache the valid non-leaf entries a walk read (raw[start:] of
        `stage`), with the rights accumulated down to each."""
        if not cache.enabled:
            return
        mine = [(i, r) for i, r in enumerate(raw[start:], start) if r[0] == stage]
        for k, (i, (stg, lv, a, e, gl)) in enumerate(mine):
            reason, leaf, _ = reference.classify(e, lv, d)
            if reason or leaf:
                break
            rights &= reference.rights(e, lv, False, d)
            nxt = e & int(d[0, L.G_TABLE_ADDR])
            combined = None
            if hpa_of_next is not None and k + 1 < len(mine):
                combined = mine[k + 1][1][2] & ~0xFFF        # where the next table sits
            cache.fill(tag + (lv, addr >> int(d[lv, L.L_SHIFT])), (nxt, rights, combined))

    def _sl_walk(self, cfg, d2, gpa, acc, guest_level, raw, st):
        """A second-level walk (of an IOVA, or of a GPA under nesting) with
        the second-level paging-structure cache, tagged by DID (§6.2.5.2)."""
        tag = (cfg.did,)
        start, table, rights, hit = self._psc_lookup(self.sl_psc, tag, gpa, d2, acc, False,
                                                     False)
        st["second-psc"] = st.get("second-psc", 0) + (hit is not None)
        n0 = len(raw)
        r = reference.stage_walk(self.mem, gpa, cfg.second_root if hit is None else table,
                                 self._start_at(d2, start), acc, False, False, raw, F.SECOND,
                                 guest_level)
        self._psc_fill(self.sl_psc, tag, gpa, d2, raw, n0, F.SECOND, rights)
        return r, rights

    def _walk_tables(self, cfg, address, acc, user, raw, d1, d2, st):
        """Walk the tables of `cfg` for `address`, using the paging-structure
        caches. Returns (reason, stage, level, fault address, pa, size, gpa,
        extra) with extra the cached rights of skipped levels."""
        extra = {"fl_rights": reference.ALL_RIGHTS, "sl_rights": reference.ALL_RIGHTS,
                 "fl_start": None}
        if cfg.pgtt == "second":
            r, extra["sl_rights"] = self._sl_walk(cfg, d2, address, acc, -1, raw, st)
            return r + (None, extra)
        tag = (cfg.did, cfg.pasid)
        start, table, rights, hit = self._psc_lookup(self.fl_psc, tag, address, d1, acc,
                                                     user, cfg.wpe)
        st["first-psc"] = "miss" if hit is None else \
            "hit " + FL.structure(start + 1, False)
        extra["fl_rights"], extra["fl_start"] = rights, start
        root = cfg.first_root if hit is None else table
        dd = self._start_at(d1, start)
        if cfg.pgtt == "first":
            n0 = len(raw)
            r = reference.stage_walk(self.mem, address, root, dd, acc, user, cfg.wpe, raw,
                                     F.FIRST, -1)
            self._psc_fill(self.fl_psc, tag, address, d1, raw, n0, F.FIRST, rights)
            return r + (None, extra)
        # nested: each first-level table pointer is a GPA; a cached entry that
        # also holds where its next table sits in host memory (a nested
        # combined entry, §6.2.5.3) spares the second-level walk for it
        combined = hit[2] if hit is not None else None

        def second(gpa, level, acc=F.R, probe=False):
            if probe:   # may the A/D update of this first-level entry write it? (0x77)
                return reference.second_writable(self.mem, gpa, cfg.second_root, d2, False,
                                                 level) + (0, 0)
            if combined is not None and level == start and gpa & ~0xFFF == root:
                st["combined"] = "hit"
                return 0, 0, combined | (gpa & 0xFFF), 4096
            r2, _ = self._sl_walk(cfg, d2, gpa, F.R, level, raw, st)
            return r2[0], r2[2], r2[4], r2[5]

        n0 = len(raw)
        reason, stage, level, where, gpa, size = reference.stage_walk(
            self.mem, address, root, dd, acc, user, cfg.wpe, raw, F.FIRST, -1, second)
        self._psc_fill(self.fl_psc, tag, address, d1, raw, n0, F.FIRST, rights,
                       hpa_of_next=True)
        if reason:
            return reason, stage, level, where, 0, 0, 0, extra
        r2, extra["sl_rights"] = self._sl_walk(cfg, d2, gpa, acc, 0, raw, st)
        if r2[0]:
            return r2[0], F.SECOND, r2[2], gpa, 0, 0, gpa, extra
        return 0, F.SECOND, 0, 0, r2[4], min(size, r2[5]), gpa, extra

    def _rights(self, cfg, raw, access, d1, d2, extra=None):
        """IOTLB flags from the entries a successful walk read (and the
        rights of the upper levels that came from paging-structure caches)."""
        fl_refs = [(lv, v) for s, lv, a, v, g in raw if s == F.FIRST]
        sl_refs = [(lv, v) for s, lv, a, v, g in raw if s == F.SECOND and (g <= 0)]
        fl = F_R | F_W | F_WSUP | F_U | F_X | F_DIRTY
        if extra is not None:
            c1, c2 = extra["fl_rights"], extra["sl_rights"]
            if not c1 >> L.WRITE & 1:
                fl &= ~F_W
            if not c1 >> L.USER & 1:
                fl &= ~F_U
            if not c1 >> L.XUSER & 1:
                fl &= ~F_X
            if not c2 >> L.READ & 1:
                fl &= ~(F_R | F_X)
            if not c2 >> L.WRITE & 1:
                fl &= ~(F_W | F_WSUP)
        if fl_refs:
            fl |= F_FL
            for lv, v in fl_refs:
                if not v & _x86.RW:
                    fl &= ~F_W
                if not v & _x86.US:
                    fl &= ~F_U
                if v & _x86.XD:
                    fl &= ~F_X
            leaf = fl_refs[-1][1]
            if leaf & _x86.G:
                fl |= F_GLOBAL
            if not (leaf & _x86.D or access == "w"):
                fl &= ~F_DIRTY
        for lv, v in sl_refs:
            if not v & _sl.R:
                fl &= ~(F_R | F_X)
            if not v & _sl.W:
                fl &= ~(F_W | F_WSUP)
        if sl_refs and cfg.ssade and not (sl_refs[-1][1] & _sl.D or access == "w"):
            fl &= ~F_DIRTY
        return fl

    def fault_code(self, cfg, raw, reason, stage, level, access, d1, d2, fl_start=None):
        """The fault-reason number of a stage-walk fault (VT-d §7.1.3).
        `fl_start`: the first-level table the walk started at (below the top
        when a paging-structure cache supplied the upper levels)."""
        name = F.REASONS[reason]
        if cfg.mode != "scalable" and cfg.pgtt in ("second", "pass-through"):
            return SL.fault_code(name, access, False)
        if stage == F.FIRST:
            if name == "address-width":
                return 0x80
            if name == "not-present":
                return 0x71
            if name == "reserved-bit":
                return 0x72
            if name == "non-existent-memory":
                return 0x73 if level == cfg.first_levels else 0x70
            vals = [v for s, lv, a, v, g in raw if s == F.FIRST]
            user = not cfg.privileged
            if user and any(not v & _x86.US for v in vals):
                return 0x81
            if access == "w":
                return 0x85
            if access == "x":
                return 0x82
            return 0x86
        if name == "ad-permission":   # the write of a first-level entry's A/D flags
            return 0x77
        # second level: locating a first-level table (nested), or the final address
        guest_level = 0
        if cfg.pgtt == "nested":
            fl = [(lv, v) for s, lv, a, v, g in raw if s == F.FIRST]
            if not fl:
                guest_level = fl_start or cfg.first_levels
            elif not FL.is_leaf(fl[-1][1], fl[-1][0], d1):
                guest_level = fl[-1][0] - 1
        if name == "address-width":
            return 0x74 if cfg.pgtt == "nested" else 0x83
        if name == "reserved-bit":
            sl = [(lv, v) for s, lv, a, v, g in raw if s == F.SECOND]
            if cfg.mode == "scalable" and sl and self._beyond_haw_only(cfg, *sl[-1]):
                return 0x84
            return 0x7A
        if name == "non-existent-memory":
            return 0x7B if level == cfg.second_levels else 0x78
        if guest_level:
            return 0x75 if guest_level == cfg.first_levels else 0x76
        if name == "not-present":
            return 0x79
        return {"w": 0x85, "x": 0x82}.get(access, 0x86)

    def _beyond_haw_only(self, cfg, level, entry):
        """True when the only fault in second-level entry `entry` is its
        address (next table or page frame) at or above HAW: scalable mode
        reports that as "second-level entry address beyond the max" (VT-d
        §7.1.3 SGN.5, 0x84), other reserved bits as SSS.3 (0x7A, §9.8).
        The entry is classified again with every address bit allowed."""
        return self.haw < 52 and \
            reference.classify(entry, level, self.wide_second_descriptor(cfg))[0] == F.OK

    def wide_second_descriptor(self, cfg):
        """`cfg`'s second-level descriptor with HAW at 52 (no address bit
        reserved), for telling 0x84 from 0x7A."""
        return _sl_descriptor(cfg.second_levels, 52, cfg.ssade, self.sl_large_pages)

    # -- invalidation -------------------------------------------------------
    def invalidate(self, desc):
        """Execute one invalidation descriptor (VT-d §6.5.2); returns the
        number of cache entries it removed."""
        if not isinstance(desc, tuple(inv.DESCRIPTORS.values())):
            raise ValueError(f"desc={desc!r} is not a svmkit.vtd.invalidation descriptor")
        self.invalidations.append(desc)
        n = 0
        if isinstance(desc, inv.ContextCacheInv):
            if desc.granularity == "global":
                n = self.context_cache.invalidate()
            elif desc.granularity == "domain":
                # scalable-mode context entries have no DID: every entry goes
                n = self.context_cache.invalidate(
                    lambda k, v: self.ttm == "scalable" or v.did == desc.did)
            else:
                keep = ~((1 << desc.fm) - 1 if desc.fm else 0) & 0xFFFF
                n = self.context_cache.invalidate(lambda k, v: k & keep == desc.sid & keep)
        elif isinstance(desc, inv.PasidCacheInv):
            if desc.granularity == "global":
                n = self.pasid_cache.invalidate()
            elif desc.granularity == "domain":
                n = self.pasid_cache.invalidate(lambda k, v: v.did == desc.did)
            else:
                n = self.pasid_cache.invalidate(
                    lambda k, v: v.did == desc.did and k[1] == desc.pasid)
        elif isinstance(desc, inv.IotlbInv):
            # paging-structure caches: IOTLB invalidation drops the domain's
            # second-level entries and nested combined ones (they hold
            # second-level results); IH=1 keeps them (§6.5.2.3)
            if desc.granularity == "global":
                n = self.fl_psc.invalidate() + self.sl_psc.invalidate()
            elif desc.granularity == "domain" or not desc.ih:
                everything = desc.granularity == "domain"
                n = self.sl_psc.invalidate(lambda k, v: k[0] == desc.did)
                n += self.fl_psc.invalidate(
                    lambda k, v: k[0] == desc.did and (everything or v[2] is not None))
            if desc.granularity == "global":
                n += self.iotlb.invalidate()
            elif desc.granularity == "domain":
                n += self.iotlb.invalidate(did=desc.did)
            else:
                # page-selective IOTLB invalidation covers second-level and
                # pass-through mappings only; first-level/nested ones need
                # PASID-based invalidation (VT-d §6.5.2.3, §6.5.2.4)
                n += self.iotlb.invalidate(did=desc.did, addr=desc.addr, am=desc.am,
                                           first_level=False if self.ttm == "scalable"
                                           else None)
        elif isinstance(desc, inv.PasidIotlbInv):
            # the PASID's first-level paging-structure entries go too, unless
            # a page-selective invalidation says IH=1 (§6.5.2.4)
            if desc.granularity == "pasid" or not desc.ih:
                n = self.fl_psc.invalidate(lambda k, v: k[:2] == (desc.did, desc.pasid))
            if desc.granularity == "pasid":
                n += self.iotlb.invalidate(did=desc.did, pasid=desc.pasid, keep_global=True,
                                           first_level=True)
            else:
                n += self.iotlb.invalidate(did=desc.did, pasid=desc.pasid, addr=desc.addr,
                                           am=desc.am, first_level=True)
        elif isinstance(desc, inv.InvWait):
            if desc.status_write:
                self.mem.write(desc.status_addr, desc.status_data.to_bytes(4, "little"))
        # device-TLB descriptors: no device TLB is modelled
        return n

    # -- batch ----------------------------------------------------------------
    def translate_many(self, source_id, addresses, *, pasid=None, access="r"):
        """Translate many DMA requests of one device and PASID (compiled,
        caches in the loop). Returns (pa, fault): uint64 addresses (0 on a
        fault) and int32 fault-reason numbers (0 for success). Faults are
        also recorded as `translate` records them."""
        from .batch import translate_many
        return translate_many(self, source_id, addresses, pasid=pasid, access=access)


class _FaultFpd(_Fault):
    """A structure fault seen under a set FPD."""
