"""One small adapter per IOMMU model: the builder and the audit talk to these,
and these talk to the model's ``Driver`` and ``Iommu`` (design.md, "IOMMU
models"). The adapter never writes an IOMMU structure itself.

Every adapter offers:
  attach(rid, *, second_root=None, second_levels=4, domain=0) -> ops
  bind(rid, pasid, *, first_root, first_levels, nested=False, second_root=None,
       second_levels=4) -> ops
  unbind(rid, pasid) -> ops;  modify(rid, pasid, first_root=, second_root=) -> ops
  flush(rid, pasid) -> invalidations after a page-table change
  ops(ops) -> (writes, invalidations)
  translate(rid, address, pasid=None, access="r", privileged=False) -> Walk
  contexts() -> [PasidConfig] for every present translation context in memory
  structures() -> [(hpa, size, kind, detail)] and edges() -> [(parent, child, label, entry)]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from svmkit.scenario.model import bdf_str
from svmkit.scenario.models import info


@dataclass(frozen=True)
class PasidConfig:
    """What the IOMMU's structures in memory say for (rid, pasid): the kind
    of translation (``first``, ``second``, ``nested``, ``pass-through``), the
    stage roots and formats, and the entry that chose them (``entry``: its
    HPA; ``entry_name``: the spec's name) so an audit can blame it."""

    rid: int
    pasid: int | None
    kind: str
    first_root: int = 0
    first_levels: int = 4
    first_fmt: str = "x86_64"
    second_root: int = 0
    second_levels: int = 4
    second_fmt: str = "vtd_sl"
    entry: int = 0
    entry_name: str = ""
    rid_pasid: bool = False


class VtdAdapter:
    """Intel VT-d scalable mode (VT-d spec ch. 9: root, scalable-mode
    context, PASID directory and PASID-table entries) through
    ``svmkit.vtd.Driver``. Each VM is its own domain (DID = VM index + 1);
    the host's devices use DID 0x100 + their index."""

    ttm = "scalable"

    def __init__(self, s, mem, alloc, *, caches=None, invalidate=True, root=None, ttm=None):
        from svmkit.vtd import CacheConfig, Driver, Iommu
        self.s, self.mem, self.alloc = s, mem, alloc
        self.minfo = info(s.model)
        self.pasid_bits = s.options.get("pasid_bits", self.minfo.pasid_bits)
        self.haw = max(39, s.phys_bits)
        # An imported image brings its own root table (and maybe legacy mode).
        self.ttm = ttm or self.ttm
        self.root = alloc.alloc() if root is None else root
        kw = dict(root_table=self.root, ttm=self.ttm, haw=self.haw, pasid_width=self.pasid_bits)
        if caches == "off":
            caches = CacheConfig(enabled=False)
        self.iommu = Iommu(mem, caches=caches, **kw)
        # Reads the structures as memory holds them, for audits: no caches,
        # so a stale IOTLB never hides what a wrong entry allows.
        self._plain = Iommu(mem, caches=CacheConfig(enabled=False), **kw)
        self.driver = Driver(mem, alloc, self.iommu, invalidate=invalidate) \
            if self.ttm != "legacy" else None

    # -- driver operations --------------------------------------------------------------------

    def _did(self, owner):
        names = [v.name for v in self.s.vms]
        return names.index(owner) + 1 if owner in names else 0x100

    def attach(self, rid, *, second_root=None, second_levels=4, owner="host", guest_alloc=None):
        """A device assigned to a VM gets the VM's second stage for requests
        without PASID (its RID_PASID entry, PGTT second-level); a host device
        gets a context with an empty PASID directory."""
        return self.driver.attach(rid, did=self._did(owner), second_root=second_root,
                                  second_levels=second_levels)

    def bind(self, rid, pasid, *, first_root, first_levels=4, nested=False, second_root=None,
             second_levels=4):
        return self.driver.bind(rid, pasid, first_root=first_root, first_levels=first_levels,
                                nested=nested, second_root=second_root,
                                second_levels=second_levels)

    def unbind(self, rid, pasid):
        return self.driver.unbind(rid, pasid)

    def modify(self, rid, pasid, *, first_root=None, second_root=None):
        kw = {}
        if first_root is not None:
            kw["first_root"] = first_root
        if second_root is not None:
            kw["second_root"] = second_root
        return self.driver.modify(rid, pasid, **kw)

    def flush(self, rid, pasid, va=0, size=None):
        """Invalidate what a page-table change of the bound process may have
        left cached: the PASID-based IOTLB for the range (VT-d 6.5.2.4)."""
        if size is None:
            size, va = 1 << (12 + 9 * 4), 0
        span = 1 << max(12, (size - 1).bit_length())
        while (va & (span - 1)) + size > span:
            span <<= 1
        return self.driver.invalidate_range(rid, pasid, va & ~(span - 1), span).invalidations

    @staticmethod
    def ops(ops):
        if isinstance(ops, tuple):       # already (writes, invalidations)
            return ops
        return list(ops.writes), list(ops.invalidations)

    def translate(self, rid, address, *, pasid=None, access="r", privileged=False):
        return self.iommu.translate(rid, address, pasid=pasid, access=access,
                                    privileged=privileged)

    # -- reading the structures from memory -------------------------------------------------

    def _q(self, pa, n):
        if pa + 8 * n > self.mem.size:
            return None
        return tuple(int(x) for x in np.frombuffer(self.mem.read(pa, 8 * n), dtype="<u8"))

    def _contexts(self):
        """Present scalable-mode context entries: (rid, entry HPA, decoded)."""
        from svmkit.vtd import structures as S
        out = []
        for bus in range(256):
            q = self._q(self.root + 16 * bus, 2)
            if not q or not (q[0] or q[1]):
                continue
            r = S.sm_root_entry.decode(q)
            for half, (p, ctp) in enumerate(((r["lp"], r["lctp"]), (r["up"], r["uctp"]))):
                if not p:
                    continue
                for i in range(128):
                    cpa = ctp + 32 * i
                    cq = self._q(cpa, 4)
                    if cq and cq[0] & 1:
                        out.append((bus << 8 | (half << 7 | i), cpa, ctp,
                                    S.sm_context_entry.decode(cq)))
        return out

    def _pasid_entries(self, ce):
        """(pasid, entry HPA, table HPA, dir-entry HPA) of present entries."""
        from svmkit.vtd import structures as S
        n = S.pasid_dir_size(ce["pdts"])
        base = ce["pasiddirptr"]
        if base + 8 * n > self.mem.size:
            return []
        dirs = np.frombuffer(self.mem.read(base, 8 * n), dtype="<u8")
        out = []
        for i in np.nonzero(dirs & 1)[0]:
            ptp = S.pasid_dir_entry.decode((int(dirs[i]),))["ptp"]
            if ptp + 4096 > self.mem.size:
                continue
            tab = np.frombuffer(self.mem.read(ptp, 4096), dtype="<u8").reshape(64, 8)
            for j in np.nonzero(tab[:, 0] & 1)[0]:
                out.append((int(i) << 6 | int(j), ptp + 64 * int(j), ptp, base + 8 * int(i)))
        return out

    def _legacy(self):
        """Legacy mode (VT-d 9.1, 9.3; an imported machine): present context
        entries of 128 bits, 256 per table, no PASIDs."""
        from svmkit.vtd import structures as S
        out = []
        for bus in range(256):
            q = self._q(self.root + 16 * bus, 2)
            if not q or not q[0] & 1:
                continue
            ctp = S.root_entry.decode(q)["ctp"]
            for devfn in range(256):
                cq = self._q(ctp + 16 * devfn, 2)
                if cq and cq[0] & 1:
                    out.append((bus << 8 | devfn, ctp + 16 * devfn, ctp))
        return out

    def contexts(self):
        """Every (rid, pasid) with a present PASID entry, as the model decodes
        it (``Iommu.configure`` without caches); in legacy mode every present
        context entry, with ``pasid`` None."""
        out = []
        if self.ttm == "legacy":
            for rid, cpa, _ctp in self._legacy():
                cfg, _err = self._plain.configure(rid)
                if cfg is not None:
                    out.append(PasidConfig(rid, None, cfg.pgtt, second_root=cfg.second_root,
                                           second_levels=cfg.second_levels,
                                           second_fmt=self.minfo.second_fmt, entry=cpa,
                                           entry_name="context-entry", rid_pasid=True))
            return out
        for rid, _cpa, _ctp, ce in self._contexts():
            for pasid, epa, _t, _d in self._pasid_entries(ce):
                cfg, err = self._plain.configure(rid, pasid=pasid)
                if cfg is None:
                    continue
                out.append(PasidConfig(
                    rid, pasid, cfg.pgtt, cfg.first_root, cfg.first_levels,
                    self.minfo.first_fmt, cfg.second_root, cfg.second_levels,
                    self.minfo.second_fmt, epa, "pasid-entry", pasid == ce["rid_pasid"]))
        return out

    def structures(self):
        """(HPA, size, kind, detail) of every IOMMU structure in memory."""
        from svmkit.vtd import structures as S
        out = [(self.root, 4096, "root table", "")]
        if self.ttm == "legacy":
            for ctp in sorted({ctp for _r, _c, ctp in self._legacy()}):
                out.append((ctp, 4096, "context table", ""))
            return out
        ctps = set()
        for rid, cpa, ctp, ce in self._contexts():
            if ctp not in ctps:
                ctps.add(ctp)
                out.append((ctp, 4096, "context table", f"bus {rid >> 8:02x}"))
            size = max(4096, S.pasid_dir_size(ce["pdts"]) * 8)
            out.append((ce["pasiddirptr"], size, "PASID directory", bdf_str(rid)))
            for t in sorted({t for _p, _e, t, _d in self._pasid_entries(ce)}):
                out.append((t, 4096, "PASID table", bdf_str(rid)))
        return out

    def edges(self):
        """(parent HPA, child HPA, label, entry HPA) between structure pages
        and on to the stage roots: the skeleton of the structure graph."""
        from svmkit.vtd import structures as S
        out = []
        if self.ttm == "legacy":
            for rid, cpa, ctp in self._legacy():
                out.append((self.root, ctp, f"bus {rid >> 8:02x}", self.root + 16 * (rid >> 8)))
            return out
        for rid, cpa, ctp, ce in self._contexts():
            out.append((self.root, ctp, f"bus {rid >> 8:02x}", self.root + 16 * (rid >> 8)))
            out.append((ctp, ce["pasiddirptr"], bdf_str(rid), cpa))
            for pasid, epa, t, dpa in self._pasid_entries(ce):
                out.append((ce["pasiddirptr"], t, f"dir {pasid >> 6:#x}", dpa))
        return out


class ProbeMixin:
    """Reading a model's structures by asking it: for each (rid, pasid) the
    builder attached or bound (``self.known``), one translation with caches
    off, whose structure references name the entries read and whose first
    page-table references give the stage roots. Used where no reader of the
    model's structures exists here yet; it sees only the (rid, pasid) pairs
    the scenario used, so a stray entry elsewhere goes unseen."""

    def _probe(self, rid, pasid):
        return self._plain.translate(rid, 0, pasid=pasid)

    def _probes(self):
        out = []
        for rid, pasid in sorted(self.known, key=lambda k: (k[0], -1 if k[1] is None else k[1])):
            try:
                out.append((rid, pasid, self._probe(rid, pasid)))
            except ValueError:
                continue
        return out

    def contexts(self):
        from dataclasses import replace

        from svmkit.graphs import leaves
        out = []
        for rid, pasid, w in self._probes():
            cfg = config_from_walk(rid, pasid, w)
            if cfg is None:
                continue
            if cfg.kind == "nested" and cfg.first_root:
                # The refs give the guest root's HPA; its GPA is where the
                # second stage maps that page from.
                gpa = 0
                for x in leaves(self.mem, cfg.second_root, cfg.second_fmt, cfg.second_levels):
                    if x.pa <= cfg.first_root < x.pa + x.size:
                        gpa = x.va + (cfg.first_root - x.pa)
                        break
                cfg = replace(cfg, first_root=gpa)
            out.append(cfg)
        return out

    def structures(self):
        seen, out = set(), []
        for rid, _pasid, w in self._probes():
            for r in w.refs:
                if r.stage in ("first", "second"):
                    continue
                page = r.address & ~0xFFF
                if page not in seen:
                    seen.add(page)
                    name = (r.structure or r.stage).replace("-entry", "")
                    out.append((page, 4096, STRUCTURE_PAGES.get(name, f"{name} table"),
                                bdf_str(rid)))
        return out

    def edges(self):
        out = []
        for rid, pasid, w in self._probes():
            prev = None
            # Structure reads in order; page-table reads between them (a
            # stage 2 walk locating a guest-owned CD or GCR3 table) skipped.
            for r in w.refs:
                if r.stage in ("first", "second"):
                    continue
                page = r.address & ~0xFFF
                if prev is not None and prev != page:
                    out.append((prev, page, r.structure or r.stage, r.address))
                prev = page
        return out


#: What holds each structure entry, by the entry's spec name.
STRUCTURE_PAGES = {
    "root": "root table", "context": "context table", "pasid-directory": "PASID directory",
    "pasid": "PASID table", "l1-std": "stream table (level 1)", "ste": "stream table",
    "l1-cd": "CD table (level 1)", "cd": "CD table", "dte": "device table",
    "gcr3": "GCR3 table",
}


def config_from_walk(rid, pasid, w):
    """A :class:`PasidConfig` read off one walk's references (design.md
    "Walks"): the first first-stage read's page is the first-stage root (an
    HPA; only meaningful when not nested), the first second-stage read's
    page the second-stage root; the last structure read before them is the
    entry that chose them. None when the walk stopped in the structures."""
    if w.fault is not None and w.fault.stage not in ("first", "second"):
        return None
    firsts = [r for r in w.refs if r.stage == "first"]
    seconds = [r for r in w.refs if r.stage == "second"]
    structs = [r for r in w.refs if r.stage not in ("first", "second")]
    entry = structs[-1] if structs else None
    nested = bool(getattr(w, "nested", False)) or (bool(firsts) and bool(seconds))
    if nested:
        kind = "nested"
    elif firsts:
        kind = "first"
    elif seconds:
        kind = "second"
    elif w.ok:
        kind = "pass-through"
    else:
        return None
    fmt, levels = getattr(w, "fmt", "x86_64"), getattr(w, "levels", 4)
    sfmt = getattr(w, "second_fmt", None) or (fmt if kind == "second" else "vtd_sl")
    slev = getattr(w, "second_levels", None) or (levels if kind == "second" else 4)
    return PasidConfig(
        rid, pasid, kind,
        # Nested: this is the guest root's HPA; ProbeMixin.contexts turns it
        # into the GPA the entry holds.
        first_root=firsts[0].address & ~0xFFF if firsts else 0,
        first_levels=levels, first_fmt=fmt,
        second_root=seconds[0].address & ~0xFFF if seconds else 0,
        second_levels=slev, second_fmt=sfmt,
        entry=entry.address if entry else 0,
        entry_name=(entry.structure or entry.stage) if entry else "", rid_pasid=pasid is None)


class VtdEcsAdapter(ProbeMixin, VtdAdapter):
    """Intel VT-d 2.x extended-context mode (2.x sec. 9.4, 9.5): the context
    entry holds the second-level table and the PASID-table pointer; with
    NESTE (a VM's device) the PASID table is the guest's, at a GPA in its
    RAM: the 2017 thread's design. The second stage is per device, so a
    PASID entry cannot name another VM's (that edit raises ValueError)."""

    ttm = "extended"

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.known = set()

    def attach(self, rid, *, second_root=None, second_levels=4, owner="host", guest_alloc=None):
        self.known.add((rid, None))
        if owner != "host" and guest_alloc is not None:
            return self.driver.attach(rid, did=self._did(owner), second_root=second_root,
                                      second_levels=second_levels, nested=True,
                                      pasid_table=guest_alloc())
        if second_root is None:
            # Extended context entries always name a second-level table:
            # an empty one blocks requests without PASID.
            second_root = self.alloc.alloc()
        return self.driver.attach(rid, did=self._did(owner), second_root=second_root,
                                  second_levels=second_levels)

    def bind(self, rid, pasid, **kw):
        dev = self.driver.devices.get(rid)
        if kw.get("nested") and dev is not None and kw.get("second_root") != dev.second_root:
            raise ValueError("second_of: in extended-context mode a PASID uses its device's "
                             "second stage (context entry); allowed: the device's own VM")
        self.known.add((rid, pasid))
        return super().bind(rid, pasid, **kw)

    def modify(self, rid, pasid, *, first_root=None, second_root=None):
        if second_root is not None:
            raise ValueError("second_of: in extended-context mode the second stage is the "
                             "device's (context entry), not a PASID's; allowed: first_of")
        return super().modify(rid, pasid, first_root=first_root)

    def structures(self):
        out = ProbeMixin.structures(self)
        names = {"root table": "root table", "context table": "context table"}
        return [(p, n, names.get(k, "PASID table" if k.startswith("pasid") else k), d)
                for p, n, k, d in out]

    def flush(self, rid, pasid, va=0, size=None):
        return VtdAdapter.flush(self, rid, pasid, va, size)


class SmmuAdapter(ProbeMixin):
    """Arm SMMUv3 (IHI 0070) through ``svmkit.smmuv3.Driver``: a device's
    requester id is its StreamID (a two-level stream table of 16-bit
    StreamIDs, sec. 3.3.2), a PASID its SubstreamID (a CD, sec. 5.4). A
    VM's device is a stage 2 stream; binding a process in the VM makes it
    nested, with the guest's CD table in the VM's RAM (sec. 3.3.2.1). The
    host's processes are stage 1 streams."""

    def __init__(self, s, mem, alloc, *, caches=None, invalidate=True):
        from svmkit.smmuv3 import Driver, Iommu
        self.s, self.mem, self.alloc = s, mem, alloc
        self.minfo = info(s.model)
        ssid = s.options.get("pasid_bits", self.minfo.pasid_bits)
        oas = max(x for x in (32, 36, 40, 42, 44, 48) if x <= max(32, min(48, s.phys_bits)))
        self.iommu = Iommu.new(mem, alloc, sid_bits=16, strtab_fmt="2lvl", split=8, oas=oas,
                               ssid_bits=ssid, caches=caches != "off")
        self.root = self.iommu.strtab_base if hasattr(self.iommu, "strtab_base") else 0
        self._plain = Iommu(mem, strtab_base=self.root, log2size=16, strtab_fmt="2lvl",
                            split=8, oas=oas, ssid_bits=ssid, caches=False)
        self.driver = Driver(mem, alloc, self.iommu, invalidate=invalidate)
        self.known = set()
        self._guest = {}

    def attach(self, rid, *, second_root=None, second_levels=4, owner="host", guest_alloc=None):
        self.known.add((rid, None))
        if second_root is not None:
            self._guest[rid] = guest_alloc
            return self.driver.attach(rid, config="s2", second_root=second_root,
                                      second_levels=second_levels)
        return self.driver.attach(rid, config="s1", s1dss="terminate")

    def bind(self, rid, pasid, *, first_root, first_levels=4, nested=False, second_root=None,
             second_levels=4):
        self.known.add((rid, pasid))
        kw = dict(first_root=first_root, first_levels=first_levels)
        if nested:
            kw.update(nested=True, second_root=second_root, second_levels=second_levels,
                      guest_alloc=self._guest.get(rid))
        return self.driver.bind(rid, pasid, **kw)

    def unbind(self, rid, pasid):
        return self.driver.unbind(rid, pasid)

    def modify(self, rid, pasid, *, first_root=None, second_root=None):
        if second_root is not None:
            raise ValueError("second_of: in SMMUv3 stage 2 is the stream's (STE), not a "
                             "SubstreamID's; allowed: first_of")
        return self.driver.modify(rid, pasid, first_root=first_root)

    def flush(self, rid, pasid, va=0, size=None):
        return list(self.driver.flush(rid, pasid).invalidations)

    ops = staticmethod(VtdAdapter.ops)

    def translate(self, rid, address, *, pasid=None, access="r", privileged=False):
        return self.iommu.translate(rid, address, pasid=pasid, access=access,
                                    privileged=privileged)


class _AmdHostTable:
    """An AMD v1 host page table built with ``svmkit.amdvi.tables.map_page``
    (an AMD v1 PDE names its next level, 48882 2.2.3, so it needs a builder
    that knows the level it writes at). Offers what the scenario builder
    uses of a ``PageTable``: ``root``, ``fmt``, ``levels``, ``tables``,
    ``map``."""

    def __init__(self, mem, alloc, levels, phys_bits):
        from svmkit import formats
        self.mem, self.alloc, self.levels = mem, alloc, levels
        self.fmt = formats.get("amd_v1")
        self.d = self.fmt.descriptor(levels, phys_bits)
        self.phys_bits = phys_bits
        self.root = alloc.alloc()

    def map(self, va, pa, page_size=4096, **perms):
        from svmkit.amdvi.tables import map_page
        level = next(lv for lv, sz in self.fmt.page_sizes.items() if sz == page_size)
        writes = map_page(self.mem, self._frames, self.root, va, pa, self.fmt, self.d,
                          level=level, **perms)
        return writes[-1][0]

    @property
    def _frames(self):
        return self.alloc if hasattr(self.alloc, "alloc") else _Alloc(self.alloc)

    @property
    def tables(self):
        from svmkit.graphs import leaves
        t = {}
        leaves(self.mem, self.root, "amd_v1", self.levels, phys_bits=self.phys_bits, tables=t)
        return t


class _Alloc:
    def __init__(self, fn):
        self.alloc = fn


class _Guest:
    """A VM's memory as the AMD-Vi driver asks for it: ``alloc()`` a zeroed
    guest frame (a GPA), ``to_hpa(gpa)``."""

    def __init__(self, alloc, to_host):
        self.alloc, self.to_hpa = alloc, to_host


class AmdAdapter(ProbeMixin):
    """AMD-Vi (48882) through ``svmkit.amdvi.Driver``: a device's DTE
    (sec. 2.2.2) with the VM's host page table (AMD v1) and a GCR3 table;
    a PASID is a GCR3 entry holding the guest's CR3 (sec. 2.2.6). With a
    host table the GCR3 table is the guest's, in its RAM. One Driver per
    owner (the host's, each VMM's) over the one IOMMU."""

    def __init__(self, s, mem, alloc, *, caches=None, invalidate=True):
        from svmkit.amdvi import CacheConfig, Iommu
        self.s, self.mem, self.alloc = s, mem, alloc
        self.minfo = info(s.model)
        self.invalidate = invalidate
        self.root = alloc.alloc(512)            # 65536 DTEs of 32 bytes
        if caches == "off":
            caches = CacheConfig(enabled=False)
        self.iommu = Iommu(mem, device_table=self.root, phys_bits=s.phys_bits, caches=caches)
        self._plain = Iommu(mem, device_table=self.root, phys_bits=s.phys_bits,
                            caches=CacheConfig(enabled=False))
        self.known, self.drivers, self.of = set(), {}, {}

    def new_table(self, mem, alloc, fmt, levels, phys_bits):
        return _AmdHostTable(mem, alloc, levels, phys_bits)

    def _driver(self, owner, guest=None):
        from svmkit.amdvi import Driver
        if owner not in self.drivers:
            self.drivers[owner] = Driver(self.mem, self.alloc, self.iommu, guest=guest,
                                         invalidate=self.invalidate)
        return self.drivers[owner]

    def attach(self, rid, *, second_root=None, second_levels=4, owner="host", guest_alloc=None,
               guest_to_host=None):
        self.known.add((rid, None))
        guest = _Guest(guest_alloc, guest_to_host) if guest_alloc is not None else None
        drv = self._driver(owner, guest)
        self.of[rid] = drv
        return drv.attach(rid, second_root=second_root, second_levels=second_levels)

    def bind(self, rid, pasid, *, first_root, first_levels=4, nested=False, second_root=None,
             second_levels=4):
        self.known.add((rid, pasid))
        return self.of[rid].bind(rid, pasid, first_root=first_root, first_levels=first_levels,
                                 nested=nested, second_root=second_root,
                                 second_levels=second_levels)

    def unbind(self, rid, pasid):
        return self.of[rid].unbind(rid, pasid)

    def modify(self, rid, pasid, *, first_root=None, second_root=None):
        if second_root is not None:
            raise ValueError("second_of: in AMD-Vi the host table is the device's (DTE), not "
                             "a PASID's; allowed: first_of")
        return self.of[rid].modify(rid, pasid, first_root=first_root)

    def flush(self, rid, pasid, va=0, size=None):
        """INVALIDATE_IOMMU_PAGES for the PASID over all addresses (48882
        sec. 2.4.3), as the driver does after a GCR3 change."""
        from svmkit.amdvi import commands
        dte = self.of[rid].dte(rid)
        cmd = commands.invalidate_iommu_pages(dte["domain_id"], pasid=pasid)
        if self.invalidate:
            self.iommu.invalidate(cmd)
        return [cmd]

    ops = staticmethod(VtdAdapter.ops)

    def translate(self, rid, address, *, pasid=None, access="r", privileged=False):
        return self.iommu.translate(rid, address, pasid=pasid, access=access,
                                    privileged=privileged)


ADAPTERS = {"vtd": VtdAdapter, "vtd-ecs": VtdEcsAdapter, "smmuv3": SmmuAdapter,
            "amdvi": AmdAdapter}


def adapter_for(s, mem, alloc, **kw):
    """The adapter of scenario ``s``'s model; ValueError when scenarios do
    not build that model yet."""
    cls = ADAPTERS.get(s.model)
    if cls is None:
        raise ValueError(f"model={s.model!r} cannot be built by scenarios yet; allowed: "
                         f"{', '.join(ADAPTERS)}")
    try:
        return cls(s, mem, alloc, **kw)
    except ImportError as e:
        # The model's package (svmkit.smmuv3, svmkit.amdvi ...) is not in this build.
        raise ValueError(f"model={s.model!r} needs {e.name or 'its model package'}, which "
                         "is not installed in this build") from None
