"""The SMMUv3 translation procedure: StreamID to STE, SubstreamID to CD, then the walks.

IHI 0070 3.3 "Data structures and translation procedure" and 3.4 "Address translation":
1. the StreamID indexes the stream table (linear, or two-level through a level 1 stream
   table descriptor, 3.3.2) and gives the STE (5.2);
2. STE.Config says abort, bypass, stage 1, stage 2 or both (nested);
3. with stage 1, the SubstreamID (the PASID; S1DSS decides for a transaction without one)
   indexes the CD table at S1ContextPtr (linear or two-level, 3.3.3), an IPA that stage 2
   translates when stage 2 is on, and gives the CD (5.4): TTB0/TTB1, T0SZ, TG0, IPS, ASID;
4. the stage 1 walk (VMSAv8-64, :mod:`svmkit.formats.arm64_s1`) nested in the stage 2 one
   (:mod:`svmkit.formats.arm64_s2`), every stage 1 table address being an IPA.
Faults are :class:`~svmkit.smmuv3.events.Event` values named and numbered as in 7.3.

Caches (IHI 0070 3.21 "Structure and queue caching", 3.17 "TLB tagging"): a configuration
cache of STEs (by StreamID) and CDs (by StreamID, SubstreamID), and a TLB of complete
translations tagged by VMID and ASID (stage 1 and nested: "NH" entries; global leaves, nG=0,
match every ASID) or by VMID alone (stage 2 only). Invalid or illegal structures and faults
are not cached. Walk caches (intermediate table entries) are not modelled.
"""

from dataclasses import dataclass, field, replace

import numpy as np

from .. import walks
from .._jit import HAVE_NUMBA
from ..formats import arm64_s1, arm64_s2
from ..formats import layout as L
from ..memory import FrameAllocator, Memory
from ..walker import faults as F
from ..walker import reference
from . import commands as C
from .events import Event, event
from .structures import (CD, CONFIG_ABORT, CONFIG_BYPASS, CONFIG_NESTED, CONFIG_S1,
                         CONFIG_S2, L1CD, L1STD, S1DSS_BYPASS, S1DSS_SSID0, S1DSS_TERMINATE,
                         S1FMT_4K_L2, S1FMT_LINEAR, STE, TG0_GRANULE,
                         TG1_GRANULE)

S1, S2 = arm64_s1.FORMAT, arm64_s2.FORMAT
U64 = (1 << 64) - 1
STRTAB_FMTS = ("linear", "2lvl")
#: Event numbers for translate_many's fault array, by (stage, reason id) of the walkers.
_EVENT_TABLE = np.array([arm64_s1.EVENT_OF_REASON.get(name, 0) for name in F.REASONS]
                        + [0] * (16 - len(F.REASONS)), dtype=np.int32)


@dataclass(frozen=True)
class Ref(walks.Ref):
    """A memory reference, as :class:`svmkit.Ref`, with the whole structure for STE/CD
    reads (``qwords``; ``value`` is doubleword 0) and, for a stage 2 reference made to
    fetch a CD or level 1 CD descriptor, what it ``locates`` ("cd", "l1-cd")."""

    qwords: tuple = ()
    locates: str | None = None


@dataclass(frozen=True)
class Stage:
    """One stage's configuration: the table base, the descriptor and its format."""

    fmt: object
    d: np.ndarray
    root: int
    levels: int
    granule: int
    input_bits: int
    oa: int                 # output size in bits (IPS or S2PS, capped by the SMMU's OAS)


@dataclass(frozen=True)
class StreamConfig:
    """What an STE says (IHI 0070 5.2), decoded."""

    config: int
    vmid: int
    s2: Stage | None
    s2r: bool
    cd_table: int
    s1fmt: int
    s1cdmax: int
    s1dss: int
    ste: dict


@dataclass(frozen=True)
class ContextConfig:
    """What a CD says (IHI 0070 5.4), decoded: ``regions`` holds the TTB0 and TTB1 stages
    (None where EPDx disables the walk) and their TBI bits."""

    asid: int
    regions: tuple
    tbi: tuple
    record: bool
    cd: dict


@dataclass
class TlbEntry:
    """A cached translation: output base, size and the rights each stage granted."""

    pa: int
    size: int
    checks: tuple          # (granted, descriptor, privilege applies, stage name, leaf level)
    ipa: int | None
    leaf: int
    input_bits: int        # the input addresses of the entry are this wide


@dataclass
class Caches:
    """The SMMU's caches and their running counts of hits and misses."""

    enabled: bool = True
    ste: dict = field(default_factory=dict)
    cd: dict = field(default_factory=dict)
    tlb: dict = field(default_factory=dict)
    hits: dict = field(default_factory=lambda: {"ste": 0, "cd": 0, "tlb": 0})
    misses: dict = field(default_factory=lambda: {"ste": 0, "cd": 0, "tlb": 0})


class _Abort(Exception):
    """Internal: a structure fetch or decode ended the translation with ``event``."""

    def __init__(self, event):
        self.event = event


class Iommu:
    """An SMMUv3 with its stream table at ``strtab_base`` (SMMU_STRTAB_BASE).

    ``log2size`` and ``strtab_fmt`` ("linear" or "2lvl", with ``split``) are
    SMMU_STRTAB_BASE_CFG's LOG2SIZE, FMT and SPLIT; ``oas`` the output address size
    (SMMU_IDR5.OAS, bits); ``ssid_bits`` SMMU_IDR1.SSIDSIZE; ``caches`` False turns the
    configuration cache and the TLB off; ``engine`` picks the walker as for
    :func:`svmkit.walk` ("auto", "jit", "reference"). ``events`` is the event queue: the
    recorded :class:`Event` values, oldest first.
    """

    def __init__(self, mem, *, strtab_base, log2size=8, strtab_fmt="linear", split=8,
                 oas=48, ssid_bits=20, caches=True, engine="auto"):
        if not isinstance(mem, Memory):
            raise ValueError(f"mem={mem!r} is not a svmkit.Memory")
        if strtab_fmt not in STRTAB_FMTS:
            raise ValueError(f"strtab_fmt={strtab_fmt!r} is not allowed; allowed: "
                             + ", ".join(STRTAB_FMTS))
        if not (isinstance(log2size, int) and 0 <= log2size <= 32):
            raise ValueError(f"log2size={log2size!r} is not allowed; allowed: 0 to 32")
        if strtab_fmt == "2lvl" and split not in (6, 8, 10):
            raise ValueError(f"split={split!r} is not allowed; allowed: 6, 8, 10")
        if oas not in arm64_s1.PA_SIZES:
            raise ValueError(f"oas={oas!r} is not allowed; allowed: "
                             + ", ".join(map(str, arm64_s1.PA_SIZES)))
        if not (isinstance(ssid_bits, int) and 0 <= ssid_bits <= 20):
            raise ValueError(f"ssid_bits={ssid_bits!r} is not allowed; allowed: 0 to 20")
        if engine not in walks.ENGINES:
            raise ValueError(f"engine={engine!r} is not allowed; allowed: "
                             + ", ".join(walks.ENGINES))
        self.engine = "jit" if engine == "auto" and HAVE_NUMBA else engine
        self.mem = mem
        self.strtab_base = walks._address(strtab_base, "strtab_base", 1 << 52, 64)
        self.log2size = log2size
        self.strtab_fmt = strtab_fmt
        self.split = split
        self.oas = oas
        self.ssid_bits = ssid_bits
        self.caches = Caches(enabled=bool(caches))
        self.events = []
        self.commands = []

    @classmethod
    def new(cls, mem, alloc, *, sid_bits=8, strtab_fmt="linear", split=8, **options):
        """An SMMU with a fresh, zeroed (all STEs invalid) stream table for ``sid_bits``-bit
        StreamIDs, allocated from ``alloc`` (a FrameAllocator)."""
        from .tables import alloc_table
        if not isinstance(alloc, FrameAllocator):
            raise ValueError(f"alloc={alloc!r} is not a svmkit.FrameAllocator")
        if strtab_fmt == "linear":
            nbytes = STE.size << sid_bits
        else:
            nbytes = 8 << max(sid_bits - split, 0)
        base = alloc_table(alloc, max(nbytes, 64))
        return cls(mem, strtab_base=base, log2size=sid_bits, strtab_fmt=strtab_fmt,
                   split=split, **options)

    # -- the translation procedure -----------------------------------------------------------

    def translate(self, stream_id, address, *, pasid=None, access="r", privileged=False):
        """Translate one transaction of ``stream_id`` at ``address`` (IHI 0070 3.3, 3.4).

        ``pasid`` is the SubstreamID (None: a transaction without one); ``access`` "r", "w"
        or "x"; ``privileged`` the PnU attribute (False: an unprivileged, EL0-like access).
        Returns a :class:`svmkit.Walk` whose ``refs`` start with the STE and CD reads
        (``Ref.structure`` "l1-std", "ste", "l1-cd", "cd"; stage 2 reads that fetch a CD
        name what they locate) and whose ``cache`` says "hit" or "miss" per cache used.
        """
        self._check(stream_id, address, pasid, access)
        refs, stats = [], {}
        user = not privileged
        try:
            ste = self._stream(stream_id, address, pasid, access, refs, stats)
            if pasid is not None and ste.config in (CONFIG_BYPASS, CONFIG_S2):
                # a SubstreamID needs stage 1 (STE.Config[0], S1CDMax)
                raise _Abort(event("C_BAD_SUBSTREAMID", "cd", 1, "address-width", address,
                                   access, stream_id, pasid))
            if ste.config == CONFIG_BYPASS:
                return self._finish(self._identity(address, access, refs), stats)
            if ste.config not in (CONFIG_S1, CONFIG_NESTED):
                return self._finish(self._stage2_only(ste, stream_id, address, access, refs,
                                                      stats), stats)
            ssid = self._substream(ste, stream_id, address, pasid, access)
            if ssid is None:                # S1DSS bypass: stage 1 skipped
                if ste.s2 is None:
                    return self._finish(self._identity(address, access, refs), stats)
                return self._finish(self._stage2_only(ste, stream_id, address, access, refs,
                                                      stats), stats)
            cd = self._context(ste, stream_id, ssid, pasid, address, access, refs, stats)
            walk = self._stage1(ste, cd, stream_id, ssid, address, access, user, refs,
                                stats, pasid)
        except _Abort as abort:
            walk = walks.Walk(va=address, ok=False, pa=None, page_size=None,
                              fault=abort.event, refs=refs, fmt=S1.name, access=access)
        return self._finish(walk, stats)

    def translate_many(self, stream_id, addresses, *, pasid=None, access="r",
                       privileged=False):
        """Translate every address of ``addresses`` for one stream and SubstreamID, the
        walks compiled (no Python per address). The STE and CD are decoded once, without
        the caches, and nothing is recorded. Returns ``(pa, fault)``: uint64 addresses (0
        where the translation faulted) and int32 SMMU event numbers (0 for success, -1 for
        a transaction an abort STE terminates without an event)."""
        arr = np.asarray(addresses)
        if arr.dtype.kind not in "iu" or arr.ndim != 1:
            raise ValueError("addresses must be a one-dimensional array of integer addresses")
        self._check(stream_id, 0, pasid, access)
        vas = np.ascontiguousarray(arr.astype(np.uint64))
        pa = np.zeros(len(vas), dtype=np.uint64)
        fault = np.zeros(len(vas), dtype=np.int32)
        user = not privileged
        saved, self.caches = self.caches, Caches(enabled=False)
        try:
            ste = self._stream(stream_id, 0, pasid, access, [], {})
            plan = None                     # the CD, when stage 1 applies
            if pasid is not None and ste.config in (CONFIG_BYPASS, CONFIG_S2):
                fault[:] = 0x08             # C_BAD_SUBSTREAMID, as translate
                return pa, fault
            if ste.config == CONFIG_BYPASS:
                pa[:] = vas
                return pa, fault
            if ste.config != CONFIG_S2:
                ssid = self._substream(ste, stream_id, 0, pasid, access)
                if ssid is not None:
                    plan = self._context(ste, stream_id, ssid, pasid, 0, access, [], {})
                elif ste.s2 is None:
                    pa[:] = vas
                    return pa, fault
        except _Abort as abort:
            fault[:] = -1 if abort.event.code is None else abort.event.code
            return pa, fault
        finally:
            self.caches = saved
        from ..walker import jit
        keys, slots, frames, size = self.mem.arrays()
        acc = F.ACCESSES.index(access)
        if plan is None:                    # stage 2 only
            groups = [(np.ones(len(vas), bool), ste.s2, None)]
        else:
            groups = []
            for region, stage in enumerate(plan.regions):
                sel = self._region_select(vas, region, stage, plan.tbi[region])
                groups.append((sel, stage, ste.s2 if ste.config == CONFIG_NESTED else None))
        for sel, stage, s2 in groups:
            if stage is None:
                continue
            idx = np.nonzero(sel)[0]
            inaddr = vas[idx] & np.uint64((1 << stage.input_bits) - 1)
            p = np.zeros(len(idx), dtype=np.int64)
            f = np.zeros(len(idx), dtype=np.int32)
            jit.translate_nb(keys, slots, frames, size, inaddr.view(np.int64), stage.root,
                             stage.d, 0 if s2 is None else s2.root,
                             stage.d if s2 is None else s2.d, s2 is not None, acc,
                             user if plan is not None else False, True, p, f)
            pa[idx] = p.view(np.uint64)
            fault[idx] = np.where(f != 0, _EVENT_TABLE[f & 15], 0)
        covered = np.zeros(len(vas), bool)
        for sel, stage, _ in groups:
            if stage is not None:
                covered |= sel
        fault[~covered] = 0x10              # outside both regions, or EPDx: F_TRANSLATION
        pa[~covered] = 0
        return pa, fault

    # -- configuration: STE -------------------------------------------------------------------

    def _stream(self, sid, address, pasid, access, refs, stats):
        """The decoded STE of ``sid`` from the cache or memory; raises _Abort."""
        caches = self.caches
        if caches.enabled and sid in caches.ste:
            caches.hits["ste"] += 1
            stats["ste"] = "hit"
            ste = caches.ste[sid]
        else:
            if caches.enabled:
                caches.misses["ste"] += 1
                stats["ste"] = "miss"
            ste = self._fetch_ste(sid, address, pasid, access, refs)
            if caches.enabled:
                caches.ste[sid] = ste
        if ste.config == CONFIG_ABORT:      # aborted with no event (IHI 0070 5.2 Config)
            raise _Abort(event(None, "ste", 1, "abort", address, access, sid, pasid,
                               recorded=False))
        return ste

    def _fetch_ste(self, sid, address, pasid, access, refs):
        def bad(name, level, reason):
            return _Abort(event(name, "ste", level, reason, address, access, sid, pasid))

        if sid >> self.log2size:
            raise bad("C_BAD_STREAMID", 1, "address-width")
        if self.strtab_fmt == "linear":
            ste_pa = self.strtab_base + sid * STE.size
        else:
            l1_pa = self.strtab_base + (sid >> self.split) * 8
            qw = self._read(L1STD, l1_pa)
            if qw is None:
                raise bad("F_STE_FETCH", 2, "non-existent-memory")
            refs.append(Ref("ste", 2, l1_pa, qw[0], None, "l1-std", qw))
            l1 = L1STD.decode(qw)
            index = sid & ((1 << self.split) - 1)
            # IHI 0070 5.1.1: no valid STE behind the L1STD: C_BAD_STREAMID
            if l1["span"] == 0:
                raise bad("C_BAD_STREAMID", 2, "not-present")
            if l1["span"] > min(self.split + 1, 11):        # reserved: behaves as 0
                raise bad("C_BAD_STREAMID", 2, "reserved-bit")
            if index >> (l1["span"] - 1):     # beyond the level 2 table
                raise bad("C_BAD_STREAMID", 2, "address-width")
            ste_pa = l1["l2ptr"] + index * STE.size
        qw = self._read(STE, ste_pa)
        if qw is None:
            raise bad("F_STE_FETCH", 1, "non-existent-memory")
        refs.append(Ref("ste", 1, ste_pa, qw[0], None, "ste", qw))
        f = STE.decode(qw)
        if not f["v"]:
            raise bad("C_BAD_STE", 1, "not-present")
        config = f["config"]
        illegal = bad("C_BAD_STE", 1, "reserved-bit")
        if config < CONFIG_BYPASS:          # 0b0xx: reserved, behaves as 0b000 (abort)
            config = CONFIG_ABORT
        s2 = None
        if config in (CONFIG_S2, CONFIG_NESTED):
            s2 = self._stage2_config(f)
            if s2 is None:
                raise illegal
        if config in (CONFIG_S1, CONFIG_NESTED):
            if f["s1cdmax"] > self.ssid_bits:
                raise illegal
            if s2 is None and f["s1contextptr"] >> self.oas:
                raise illegal
        # reserved S1Fmt 0b11 behaves as linear, S1DSS 0b11 as terminate; with one CD
        # (S1CDMax 0) S1Fmt is IGNORED (IHI 0070 5.2)
        s1fmt = f["s1fmt"] if f["s1fmt"] != 3 and f["s1cdmax"] else S1FMT_LINEAR
        s1dss = f["s1dss"] if f["s1dss"] != 3 else S1DSS_TERMINATE
        return StreamConfig(config, f["s2vmid"], s2, bool(f["s2r"]), f["s1contextptr"],
                            s1fmt, f["s1cdmax"], s1dss, f)

    def _stage2_config(self, f):
        """The stage 2 of an STE, or None when its fields are illegal (C_BAD_STE)."""
        granule = TG0_GRANULE.get(f["s2tg"])
        if not f["s2aa64"] or granule is None:
            return None
        levels = arm64_s2.start_levels(f["s2sl0"], granule)
        if levels is None:
            return None
        ps = _pa_size(f["s2ps"], self.oas)
        try:
            d = S2.descriptor(levels, ps, granule=granule, input_bits=64 - f["s2t0sz"],
                              affd=bool(f["s2affd"]))
        except ValueError:                  # S2T0SZ and S2SL0 inconsistent
            return None
        if f["s2ttb"] >> arm64_s1.oa_bits(ps):
            return None
        return Stage(S2, d, f["s2ttb"], levels, granule, 64 - f["s2t0sz"],
                     arm64_s1.oa_bits(ps))

    # -- configuration: SubstreamID and CD ----------------------------------------------------

    def _substream(self, ste, sid, address, pasid, access):
        """The SubstreamID whose CD applies, or None for S1DSS bypass (IHI 0070 5.2 S1DSS,
        S1CDMax); raises _Abort."""
        def bad(name, reason):
            return _Abort(event(name, "ste" if name == "F_STREAM_DISABLED" else "cd", 1,
                                reason, address, access, sid, pasid))

        if ste.s1cdmax == 0:                # one CD, substreams disabled
            if pasid is not None:
                raise bad("C_BAD_SUBSTREAMID", "address-width")
            return 0
        if pasid is None:
            if ste.s1dss == S1DSS_TERMINATE:
                raise bad("F_STREAM_DISABLED", "disabled")
            return None if ste.s1dss == S1DSS_BYPASS else 0
        if pasid >> ste.s1cdmax:
            raise bad("C_BAD_SUBSTREAMID", "address-width")
        if pasid == 0 and ste.s1dss == S1DSS_SSID0:     # CD 0 serves no-PASID traffic
            raise bad("F_STREAM_DISABLED", "disabled")
        return pasid

    def _context(self, ste, sid, ssid, pasid, address, access, refs, stats):
        """The decoded CD ``ssid`` of the stream, from the cache or memory."""
        caches = self.caches
        key = (sid, ssid)
        if caches.enabled and key in caches.cd:
            caches.hits["cd"] += 1
            stats["cd"] = "hit"
            return caches.cd[key]
        if caches.enabled:
            caches.misses["cd"] += 1
            stats["cd"] = "miss"
        cd = self._fetch_cd(ste, sid, ssid, pasid, address, access, refs)
        if caches.enabled:
            caches.cd[key] = cd
        return cd

    def _fetch_cd(self, ste, sid, ssid, pasid, address, access, refs):

        def bad(name, level, reason):
            return _Abort(event(name, "cd", level, reason, address, access, sid, pasid))

        if ste.s1fmt == S1FMT_LINEAR:
            cd_addr = ste.cd_table + ssid * CD.size
        else:
            low = 6 if ste.s1fmt == S1FMT_4K_L2 else 10
            l1_addr = ste.cd_table + (ssid >> low) * 8
            qw = self._fetch(ste, L1CD, l1_addr, 2, "l1-cd", sid, pasid, address, access, refs)
            l1 = L1CD.decode(qw)
            if not l1["v"]:
                raise bad("C_BAD_SUBSTREAMID", 2, "not-present")
            cd_addr = l1["l2ptr"] + (ssid & ((1 << low) - 1)) * CD.size
        qw = self._fetch(ste, CD, cd_addr, 1, "cd", sid, pasid, address, access, refs)
        f = CD.decode(qw)
        if not f["v"]:
            raise bad("C_BAD_CD", 1, "not-present")
        regions = []
        illegal = bad("C_BAD_CD", 1, "reserved-bit")
        if not f["aa64"]:
            raise illegal
        ips = _pa_size(f["ips"], self.oas)
        for n, (tsz, granule, ttb, epd, had) in enumerate((
                (f["t0sz"], TG0_GRANULE.get(f["tg0"]), f["ttb0"], f["epd0"], f["had0"]),
                (f["t1sz"], TG1_GRANULE.get(f["tg1"]), f["ttb1"], f["epd1"], f["had1"]))):
            if epd:
                regions.append(None)
                continue
            if granule is None or not 16 <= tsz <= 39 or ttb >> arm64_s1.oa_bits(ips):
                raise illegal               # (a TTB beyond IPS is ILLEGAL too)
            bits = 64 - tsz
            levels = arm64_s1.levels_for(bits, granule)
            d = S1.descriptor(levels, ips, granule=granule, input_bits=bits,
                              affd=bool(f["affd"]), had=bool(had))
            regions.append(Stage(S1, d, ttb, levels, granule, bits, arm64_s1.oa_bits(ips)))
        return ContextConfig(f["asid"], tuple(regions), (f["tbi"] & 1, f["tbi"] >> 1),
                             bool(f["r"]), f)

    def _fetch(self, ste, struct, addr, level, name, sid, pasid, address, access, refs):
        """Read ``struct`` at ``addr`` of the CD table: an IPA translated by stage 2 when
        the stream is nested (IHI 0070 3.3.3: the CD fetch is a stage 2 access, CLASS=CD)."""
        pa = addr
        if ste.config == CONFIG_NESTED:
            raw = []
            reason, level2, out = self._stage2_read(addr, ste.s2, raw)
            for st, lv, a, v, _ in raw:
                refs.append(Ref("second", lv, a, v & U64, None,
                                S2.structure(lv, S2.is_leaf(v, lv, ste.s2.d)), locates=name))
            if reason:
                rname = F.REASONS[reason]
                code = S2.fault_code(rname)
                ev = Event("second", level2, rname, addr, code, access,
                           name=_name(code), stream_id=sid, ssid=pasid, s2=True, cls="CD",
                           ipa=addr, recorded=ste.s2r or rname == "non-existent-memory")
                raise _Abort(ev)
            pa = out
        qw = self._read(struct, pa)
        if qw is None:
            raise _Abort(event("F_CD_FETCH", "cd", level, "non-existent-memory", address,
                               access, sid, pasid))
        refs.append(Ref("cd", level, pa, qw[0], None, name, qw))
        return qw

    # -- the walks ---------------------------------------------------------------------------

    @staticmethod
    def _region_select(vas, region, stage, tbi):
        """Which of ``vas`` (uint64 array) the TTB``region`` range holds (Arm ARM D8.1:
        VA[55] picks TTB0 or TTB1; the bits from the input size up must all equal it, up
        to bit 55 with TBI, else to bit 63)."""
        if stage is None:
            return np.zeros(len(vas), bool)
        width = (56 if tbi else 64) - stage.input_bits
        ones = np.uint64((1 << width) - 1)
        high = (vas >> np.uint64(stage.input_bits)) & ones
        sel = high == (ones if region else np.uint64(0))
        return sel & (((vas >> np.uint64(55)) & np.uint64(1)) == np.uint64(region))

    def _stage1(self, ste, cd, sid, ssid, address, access, user, refs, stats, pasid):
        region = (address >> 55) & 1
        stage = cd.regions[region]
        s2 = ste.s2 if ste.config == CONFIG_NESTED else None
        def fault(reason, level):
            code = S1.fault_code(reason)
            return Event("first", level, reason, address, code, access, name=_name(code),
                         stream_id=sid, ssid=pasid, recorded=cd.record)

        if stage is None:                   # EPDx: no walk through this TTB
            return self._failed(address, access, refs, fault("not-present", 4))
        if not self._region_select(np.array([address], np.uint64), region, stage,
                                   cd.tbi[region])[0]:
            return self._failed(address, access, refs, fault("address-width", stage.levels))
        inaddr = address & ((1 << stage.input_bits) - 1)
        tag = ("nh", ste.vmid, cd.asid, region)
        hit = self._tlb_lookup(tag, inaddr, stage.d, access, user, stats, address, sid, pasid,
                               cd.record, ste.s2r, refs)
        if hit is not None:
            return hit
        result, raw = self._walk(inaddr, stage, s2, F.ACCESSES.index(access), user)
        cfg = walks.Config(S1, stage.levels, stage.d, S2, s2.levels if s2 else 0,
                           s2.d if s2 else stage.d, stage.root, s2.root if s2 else 0,
                           s2 is not None, F.ACCESSES.index(access), user, True)
        walk = walks.make_walk(cfg, inaddr, raw, *result)
        walk.va = address
        if walk.fault is not None:
            f = walk.fault
            if f.stage == "second":
                leaf_read = any(st == F.FIRST and S1.is_leaf(v, lv, stage.d)
                                for st, lv, _, v, _ in raw)
                walk.fault = Event(**_fields(f), name=_name(f.code), stream_id=sid, ssid=pasid,
                                   s2=True, cls="IN" if leaf_read else "TT", ipa=f.address,
                                   recorded=ste.s2r or f.reason == "non-existent-memory")
            else:
                walk.fault = Event(**{**_fields(f), "address": address}, name=_name(f.code),
                                   stream_id=sid, ssid=pasid,
                                   recorded=cd.record or f.reason == "non-existent-memory")
        else:
            checks = [(_granted(raw, F.FIRST, stage.d, None), stage.d, True, "first",
                       _leaf_level(raw, F.FIRST, None))]
            if s2 is not None:
                checks.append((_granted(raw, F.SECOND, s2.d, 0), s2.d, False, "second",
                               _leaf_level(raw, F.SECOND, 0)))
            leaf = next(v for st, lv, _, v, _ in reversed(raw) if st == F.FIRST)
            self._tlb_fill(tag, inaddr, stage.input_bits, walk, checks, leaf)
        walk.refs = refs + walk.refs
        return walk

    def _stage2_only(self, ste, sid, address, access, refs, stats):
        s2 = ste.s2
        tag = ("s2", ste.vmid, None, 0)
        hit = self._tlb_lookup(tag, address, s2.d, access, False, stats, address, sid, None,
                               False, ste.s2r, refs)
        if hit is not None:
            return hit
        result, raw = self._walk(address, s2, None, F.ACCESSES.index(access), False)
        cfg = walks.Config(S2, s2.levels, s2.d, S2, 0, s2.d, s2.root, 0, False,
                           F.ACCESSES.index(access), False, True)
        walk = walks.make_walk(cfg, address, raw, *result)
        walk.refs = refs + [replace(r, stage="second", guest_level=None) for r in walk.refs]
        walk.fmt, walk.second_fmt = S2.name, None
        if walk.fault is not None:
            f = walk.fault
            walk.fault = Event(**{**_fields(f), "stage": "second"}, name=_name(f.code),
                               stream_id=sid, ssid=None, s2=True, cls="IN", ipa=address,
                               recorded=ste.s2r or f.reason == "non-existent-memory")
        else:
            self._tlb_fill(tag, address, s2.input_bits, walk,
                           [(_granted(raw, F.FIRST, s2.d, None), s2.d, False, "second",
                             _leaf_level(raw, F.FIRST, None))],
                           raw[-1][3])
        return walk

    def _walk(self, inaddr, stage, s2, acc, user):
        """One walk of ``stage`` (nested in ``s2`` unless None) by the chosen engine:
        ``(result, raw)`` as :func:`svmkit.walker.reference.walk` gives them."""
        second_root, d2 = (0, stage.d) if s2 is None else (s2.root, s2.d)
        if self.engine == "reference":
            raw = []
            result = reference.walk(self.mem, inaddr, stage.root, stage.d, second_root, d2,
                                    s2 is not None, acc, user, True, raw)
            return result, raw
        from ..walker import jit
        refs = np.zeros((jit.MAX_REFS, jit.REF_COLUMNS), dtype=np.int64)
        keys, slots, frames, size = self.mem.arrays()
        reason, st, level, where, pa, psize, n, gpa = jit.walk_nb(
            keys, slots, frames, size, np.int64(L.to_i64(inaddr)), stage.root, stage.d,
            second_root, d2, s2 is not None, acc, user, True, refs, 0)
        raw = [tuple(int(x) for x in row) for row in refs[:n]]
        return (int(reason), int(st), int(level), L.to_u64(where), int(pa), int(psize),
                int(gpa)), raw

    def _stage2_read(self, ipa, s2, raw):
        """Stage 2 translation of ``ipa`` for a structure read (a read access):
        ``(reason, level, pa)``; the reads go to ``raw``."""
        if self.engine == "reference":
            reason, _, level, _, out, _ = reference.stage_walk(
                self.mem, ipa, s2.root, s2.d, F.R, False, True, raw, F.SECOND, -1)
            return reason, level, out
        from ..walker import jit
        refs = np.zeros((jit.MAX_REFS, jit.REF_COLUMNS), dtype=np.int64)
        keys, slots, frames, size = self.mem.arrays()
        reason, level, out, _, n = jit.stage_nb(keys, slots, frames, size, np.int64(ipa),
                                                s2.root, s2.d, F.R, False, True, refs, 0,
                                                F.SECOND, -1)
        raw += [tuple(int(x) for x in row) for row in refs[:n]]
        return int(reason), int(level), int(out)

    def _identity(self, address, access, refs):
        """Bypass: the output is the input (IHI 0070 5.2 Config 0b100, or S1DSS bypass)."""
        return walks.Walk(va=address, ok=True, pa=address, page_size=4096, fault=None,
                          refs=refs, fmt=S1.name, access=access)

    def _failed(self, address, access, refs, fault):
        return walks.Walk(va=address, ok=False, pa=None, page_size=None, fault=fault,
                          refs=refs, fmt=S1.name, access=access)

    def _finish(self, walk, stats):
        walk.cache = stats
        if isinstance(walk.fault, Event):
            walk.fault = replace(walk.fault, input_address=walk.va)
        f = walk.fault
        if isinstance(f, Event) and f.recorded and f.name is not None:
            self.events.append(f)
        return walk

    # -- TLB ---------------------------------------------------------------------------------

    def _tlb_lookup(self, tag, inaddr, d, access, user, stats, address, sid, pasid, s1record,
                    s2record, refs):
        """A Walk from the TLB for ``inaddr`` under ``tag`` (kind, VMID, ASID, region), or
        None on a miss. A hit still checks the rights cached with the entry."""
        caches = self.caches
        if not caches.enabled:
            return None
        kind, vmid, asid, region = tag
        entry = None
        for size in _leaf_sizes(d):
            base = inaddr & ~(size - 1)
            for a in (asid, None):
                entry = caches.tlb.get((kind, vmid, a, region, base, size))
                if entry is not None:
                    break
            if entry is not None:
                break
        if entry is None:
            caches.misses["tlb"] += 1
            stats["tlb"] = "miss"
            return None
        caches.hits["tlb"] += 1
        stats["tlb"] = "hit"
        acc = F.ACCESSES.index(access)
        shape = dict(fmt=S1.name if kind == "nh" else S2.name, levels=int(d[0, L.G_LEVELS]),
                     nested=entry.ipa is not None, access=access,
                     second_fmt=None if entry.ipa is None else S2.name)
        for granted, dd, applies_user, stage, level in entry.checks:
            if not reference.permitted(granted, acc, user and applies_user, True, dd):
                code = S1.fault_code("permission")
                s2 = stage == "second"
                ipa = None
                if s2:          # the IPA the stage 2 translated: the input, or stage 1's output
                    ipa = inaddr if entry.ipa is None else \
                        entry.ipa + (inaddr & (entry.size - 1))
                ev = Event(stage, level, "permission", ipa if s2 else address, code, access,
                           name=_name(code), stream_id=sid, ssid=pasid, s2=s2,
                           cls="IN" if s2 else None, ipa=ipa,
                           recorded=s2record if s2 else s1record)
                return walks.Walk(va=address, ok=False, pa=None, page_size=None, fault=ev,
                                  refs=list(refs), **shape)
        return walks.Walk(va=address, ok=True, pa=entry.pa + (inaddr & (entry.size - 1)),
                          page_size=entry.size, fault=None, refs=list(refs),
                          gpa=None if entry.ipa is None
                          else entry.ipa + (inaddr & (entry.size - 1)), **shape)

    def _tlb_fill(self, tag, inaddr, input_bits, walk, checks, leaf):
        if not self.caches.enabled:
            return
        kind, vmid, asid, region = tag
        if kind == "nh" and not leaf & arm64_s1.NG:
            asid = None                     # a global entry matches every ASID
        size = walk.page_size
        base = inaddr & ~(size - 1)
        ipa = None if walk.gpa is None else walk.gpa & ~(size - 1)
        self.caches.tlb[(kind, vmid, asid, region, base, size)] = TlbEntry(
            walk.pa & ~(size - 1), size, tuple(checks), ipa, leaf, input_bits)

    # -- commands ----------------------------------------------------------------------------

    def invalidate(self, cmd):
        """Execute one command (:mod:`svmkit.smmuv3.commands`) on the caches (IHI 0070 4.3,
        4.4); ``commands`` keeps them all, in order."""
        if not isinstance(cmd, C.Command):
            raise ValueError(f"cmd={cmd!r} is not an SMMUv3 command; allowed: "
                             + ", ".join(c.name for c in C.COMMANDS))
        self.commands.append(cmd)
        c = self.caches
        if isinstance(cmd, C.CMD_CFGI_STE):
            c.ste.pop(cmd.sid, None)
            self._drop_cds(lambda sid, ssid: sid == cmd.sid)
        elif isinstance(cmd, C.CMD_CFGI_STE_RANGE):
            span = 1 << (cmd.range + 1)
            lo = cmd.sid & ~(span - 1)
            for sid in [s for s in c.ste if lo <= s < lo + span]:
                del c.ste[sid]
            self._drop_cds(lambda sid, ssid: lo <= sid < lo + span)
        elif isinstance(cmd, C.CMD_CFGI_CD):
            c.cd.pop((cmd.sid, cmd.ssid), None)
        elif isinstance(cmd, C.CMD_CFGI_CD_ALL):
            self._drop_cds(lambda sid, ssid: sid == cmd.sid)
        elif isinstance(cmd, C.CMD_CFGI_ALL):
            c.ste.clear()
            c.cd.clear()
        elif isinstance(cmd, C.CMD_TLBI_NH_ALL):
            self._drop_tlb(lambda k, e: k[0] == "nh" and k[1] == cmd.vmid)
        elif isinstance(cmd, C.CMD_TLBI_NH_ASID):
            self._drop_tlb(lambda k, e: k[0] == "nh" and k[1] == cmd.vmid and k[2] == cmd.asid)
        elif isinstance(cmd, C.CMD_TLBI_NH_VA):
            self._drop_tlb(lambda k, e: k[0] == "nh" and k[1] == cmd.vmid
                           and k[2] in (cmd.asid, None) and _covers(k, e, cmd.addr))
        elif isinstance(cmd, C.CMD_TLBI_NH_VAA):
            self._drop_tlb(lambda k, e: k[0] == "nh" and k[1] == cmd.vmid
                           and _covers(k, e, cmd.addr))
        elif isinstance(cmd, C.CMD_TLBI_S12_VMALL):
            self._drop_tlb(lambda k, e: k[1] == cmd.vmid)
        elif isinstance(cmd, C.CMD_TLBI_S2_IPA):
            self._drop_tlb(lambda k, e: k[0] == "s2" and k[1] == cmd.vmid
                           and _covers(k, e, cmd.addr))
        elif isinstance(cmd, C.CMD_TLBI_NSNH_ALL):
            c.tlb.clear()

    def _drop_cds(self, match):
        for key in [k for k in self.caches.cd if match(*k)]:
            del self.caches.cd[key]

    def _drop_tlb(self, match):
        for key in [k for k, e in self.caches.tlb.items() if match(k, e)]:
            del self.caches.tlb[key]

    # -- helpers -----------------------------------------------------------------------------

    def _read(self, struct, pa):
        """The doublewords of ``struct`` at ``pa``, or None if they are not in memory."""
        if pa + struct.size > self.mem.size:
            return None
        return struct.read(self.mem, pa)

    def _check(self, stream_id, address, pasid, access):
        if isinstance(stream_id, bool) or not isinstance(stream_id, (int, np.integer)) \
                or not 0 <= stream_id < 1 << 32:
            raise ValueError(f"stream_id={stream_id!r} is not allowed; allowed: 0 to 2**32-1")
        walks._address(address, "address", 1 << 64)
        if pasid is not None and (isinstance(pasid, bool)
                                  or not isinstance(pasid, (int, np.integer))
                                  or not 0 <= pasid < 1 << 20):
            raise ValueError(f"pasid={pasid!r} is not allowed; allowed: None or 0 to 2**20-1")
        if access not in F.ACCESSES:
            raise ValueError(f"access={access!r} is not allowed; allowed: 'r', 'w', 'x'")


def _pa_size(field, oas):
    """The effective size of an IPS/S2PS encoding: capped by the SMMU's OAS; the reserved
    0b111 behaves as 0b110 (IHI 0070 5.4 CD.IPS)."""
    return min(arm64_s1.PA_SIZES[min(field, 6)], oas)


def _name(code):
    from .events import EVENTS
    return EVENTS[code][0] if code in EVENTS else None


def _fields(f):
    return {"stage": f.stage, "level": f.level, "reason": f.reason, "address": f.address,
            "code": f.code, "access": f.access}


def _leaf_sizes(d):
    """Sizes of the leaves a walk with descriptor ``d`` can end in, smallest first."""
    return [1 << int(d[lv, L.L_SHIFT]) for lv in range(1, int(d[0, L.G_LEVELS]) + 1)
            if d[lv, L.L_LEAF] != L.LEAF_NEVER]


def _granted(raw, stage, d, guest_level):
    """The rights that every entry read by ``stage`` (and, for stage 2, locating
    ``guest_level``) granted, as the walker computed them (IHI 0070 caches them in the
    TLB entry)."""
    granted = reference.ALL_RIGHTS
    for st, lv, _, v, gl in raw:
        if st == stage and (guest_level is None or gl == guest_level):
            granted &= reference.rights(v, lv, reference.classify(v, lv, d)[1], d)
    return granted


def _leaf_level(raw, stage, guest_level):
    """The level of the last entry ``stage`` read (for stage 2, locating ``guest_level``):
    the leaf of a completed walk."""
    return next(lv for st, lv, _, _, gl in reversed(raw)
                if st == stage and (guest_level is None or gl == guest_level))


def _covers(key, entry, addr):
    """Whether the TLB entry under ``key`` translates input address ``addr`` (for stage 1,
    the region, TTB0 or TTB1, is VA bit 55)."""
    kind, _, _, region, base, size = key
    if kind == "nh" and (addr >> 55) & 1 != region:
        return False
    return base <= addr & ((1 << entry.input_bits) - 1) < base + size
