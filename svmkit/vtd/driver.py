"""What an OS (or VMM) driver does to VT-d structures, step by step.

Every method returns an `Ops`: the 64-bit memory writes it made, as
(pa, old, new, what), and the invalidation descriptors it issued, in the
order a careful driver issues them (VT-d §6.5.3 "Invalidation
considerations", §6.5.3.3 guidance to software; the order mirrors Linux
drivers/iommu/intel/pasid.c):

- an entry going from not present to present needs no invalidation (the
  model, like hardware without caching mode, never caches a not-present
  entry, CAP_REG.CM=0);
- changing or clearing a present PASID-table entry: write it, then
  PASID-cache invalidation (PASID-selective, the old DID), then the IOTLB
  (PASID-based for first-level and nested entries, domain-selective for
  second-level and pass-through ones), then the device TLB if ATS is on;
- clearing a present context entry: context-cache (device-selective),
  PASID-cache and IOTLB (domain-selective, for every domain the device
  used), device TLB.

With `invalidate=False` the driver still lists the descriptors but does not
execute them: the stale translations they would remove stay in the caches.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..walks import walk as _walk
from . import invalidation as inv
from . import structures as S

__all__ = ["Driver", "Ops"]


@dataclass
class Ops:
    """The steps of one driver operation, in order: ("write", pa, old,
    new, what) and ("invalidate", descriptor)."""
    steps: list = field(default_factory=list)

    @property
    def writes(self):
        """The memory writes: (pa, old, new, what)."""
        return [s[1:] for s in self.steps if s[0] == "write"]

    @property
    def invalidations(self):
        """The invalidation descriptors issued."""
        return [s[1] for s in self.steps if s[0] == "invalidate"]

    def __add__(self, other):
        return Ops(self.steps + other.steps)

    def __str__(self):
        lines = []
        for s in self.steps:
            if s[0] == "write":
                pa, old, new, what = s[1:]
                lines.append(f"write {pa:#014x} {old:#018x} -> {new:#018x}"[:72])
                lines.append(f"      {what}"[:72])
            else:
                lines.append(f"inv   {s[1]}"[:72])
        return "\n".join(lines)


@dataclass
class _Device:
    source_id: int
    did: int
    ats: bool = False
    pasid_dir: int = 0
    pdts: int = 0
    # extended mode
    pasid_table: int = 0
    pts: int = 0
    nested: bool = False
    second_root: int = 0
    second_levels: int = 4
    dids: set = field(default_factory=set)


# with S=1 the lowest clear address bit gives the range: bits 62:12 set and
# bit 63 clear mean every address (VT-d §6.5.2.5)
ALL_ADDRESSES = 0x7FFF_FFFF_FFFF_F000

_FRIENDLY = {"first_root": "flptptr", "second_root": "slptptr"}


class Driver:
    """The driver of one `Iommu` (scalable or extended mode). `alloc` hands
    out zeroed 4 KiB frames: a `svmkit.FrameAllocator` (which can also
    give contiguous runs, for PASID directories) or a callable."""

    def __init__(self, mem, alloc, iommu, *, invalidate=True):
        if iommu.mem is not mem:
            raise ValueError("iommu: must translate through the same Memory as mem")
        if iommu.ttm == "legacy":
            raise ValueError("iommu: the Driver models scalable and extended mode; "
                             "allowed ttm: 'scalable', 'extended'")
        self.mem, self.iommu, self.invalidate = mem, iommu, bool(invalidate)
        self._alloc = alloc
        self.devices = {}

    # -- helpers --------------------------------------------------------------
    def _frames(self, n=1):
        if hasattr(self._alloc, "alloc"):
            return self._alloc.alloc(n)
        if n != 1:
            raise ValueError("alloc: a callable allocator gives single frames; pass a "
                             "FrameAllocator for PASID directories above one page (pdts > 2)")
        pa = self._alloc()
        self.mem.write(pa, bytes(4096))
        return pa

    def _write(self, ops, pa, new, what):
        old = self.mem.read_u64(pa)
        if old != new:
            self.mem.write_u64(pa, new)
            ops.steps.append(("write", pa, old, new, what))

    def _write_entry(self, ops, pa, qwords, what, present_last=True):
        """Write an entry's qwords, the one with the present bit last."""
        order = list(range(1, len(qwords))) + [0] if present_last else list(range(len(qwords)))
        for i in order:
            self._write(ops, pa + 8 * i, qwords[i], f"{what} qword {i}")

    def _inv(self, ops, desc):
        ops.steps.append(("invalidate", desc))
        if self.invalidate:
            self.iommu.invalidate(desc)

    def _dev(self, source_id):
        d = self.devices.get(source_id)
        if d is None:
            raise ValueError(f"source_id={source_id:#06x} is not attached; attach it first")
        return d

    def _check_pasid(self, pasid):
        if not isinstance(pasid, int) or not 0 <= pasid < 1 << self.iommu.pasid_width:
            raise ValueError(f"pasid={pasid!r}; allowed: 0 to {(1 << self.iommu.pasid_width) - 1}")

    def _read_entry(self, pa, n):
        return tuple(self.mem.read_u64(pa + 8 * i) for i in range(n))

    # -- context ----------------------------------------------------------------
    def attach(self, source_id, *, did=1, rid_pasid=0, rid_priv=False, pdts=None,
               second_root=None, second_levels=4, pgtt=None, fpd=False, ats=False,
               pasid_table=None, pts=4, nested=False):
        """Set up the device's context: root entry (with a new context table
        if the bus has none), context entry, PASID directory (scalable) and,
        when `pgtt` or `second_root` is given, the RID_PASID entry that
        requests without PASID use ("second" with `second_root`, or
        "pass-through"); `rid_priv` makes requests without PASID supervisor
        requests (VT-d §9.4). Extended mode: `pasid_table` is the PASID table
        (a GPA owned by the guest when `nested`; allocated here when None),
        `pts` its size field; `second_root` the second-level table."""
        if not isinstance(source_id, int) or not 0 <= source_id <= 0xFFFF:
            raise ValueError(f"source_id={source_id!r}; allowed: 0 to 0xffff")
        if source_id in self.devices:
            raise ValueError(f"source_id={source_id:#06x} is already attached; detach it first")
        if not isinstance(did, int) or not 0 <= did <= 0xFFFF:
            raise ValueError(f"did={did!r}; allowed: 0 to 0xffff")
        ops = Ops()
        iommu = self.iommu
        bus, devfn = source_id >> 8, source_id & 0xFF
        rpa = iommu.root_table + 16 * bus
        upper = devfn >= 128
        root = S.sm_root_entry.decode(self._read_entry(rpa, 2))
        present, ctp = (root["up"], root["uctp"]) if upper else (root["lp"], root["lctp"])
        if not present:
            ctp = self._frames()
            half = S.sm_root_entry.encode(up=1, uctp=ctp) if upper else \
                S.sm_root_entry.encode(lp=1, lctp=ctp)
            q = 1 if upper else 0
            self._write(ops, rpa + 8 * q, half[q],
                        f"root-entry bus {bus:#04x} {'upper' if upper else 'lower'}")
        cpa = ctp + 32 * (devfn & 0x7F)
        dev = _Device(source_id, did, bool(ats))
        dev.dids.add(did)
        name = f"context-entry {bus:02x}:{devfn >> 3:02x}.{devfn & 7}"
        if iommu.ttm == "scalable":
            if pdts is None:
                pdts = min(7, max(0, iommu.pasid_width - 13))
            if pdts not in range(8):
                raise ValueError(f"pdts={pdts!r}; allowed: 0 to 7")
            frames = max(1, (S.pasid_dir_size(pdts) * 8) // 4096)
            dev.pasid_dir, dev.pdts = self._frames(frames), pdts
            if rid_pasid >> iommu.pasid_width:
                raise ValueError(f"rid_pasid={rid_pasid!r} beyond the PASID width")
            ce = S.sm_context_entry.encode(p=1, fpd=int(fpd), dte=int(ats), paside=1, pdts=pdts,
                                           pasiddirptr=dev.pasid_dir, rid_pasid=rid_pasid,
                                           rid_priv=int(rid_priv))
            self._write_entry(ops, cpa, ce, name)
            self.devices[source_id] = dev
            if pgtt is None and second_root is not None:
                pgtt = "second"
            if pgtt == "second":
                ops += self.bind_second(source_id, rid_pasid, second_root=second_root,
                                        second_levels=second_levels)
            elif pgtt == "pass-through":
                ops += self.bind_pass_through(source_id, rid_pasid)
            elif pgtt is not None:
                raise ValueError(f"pgtt={pgtt!r}; allowed for RID_PASID: 'second', "
                                 "'pass-through' or None")
            return ops
        # extended-context mode (VT-d 2.x)
        if second_root is None:
            raise ValueError("second_root: extended-context entries need a second-level table")
        if second_levels not in S.AW_LEVELS.values():
            raise ValueError(f"second_levels={second_levels!r}; allowed: 3, 4, 5")
        if pts not in range(16):
            raise ValueError(f"pts={pts!r}; allowed: 0 to 15")
        if pasid_table is None:
            if nested:
                raise ValueError("pasid_table: in nested mode the guest owns the PASID table; "
                                 "pass its guest-physical address")
            pasid_table = self._frames(max(1, S.ext_pasid_table_size(pts) * 8 // 4096))
        aw = {v: k for k, v in S.AW_LEVELS.items()}[second_levels]
        dev.pasid_table, dev.pts, dev.nested = pasid_table, pts, bool(nested)
        dev.second_root, dev.second_levels = second_root, second_levels
        ce = S.ext_context_entry.encode(p=1, fpd=int(fpd), t=5 if ats else 4,
                                        neste=int(nested), paside=1, slptptr=second_root,
                                        aw=aw, did=did, pts=pts, pasidptr=pasid_table)
        self._write_entry(ops, cpa, ce, name)
        self.devices[source_id] = dev
        return ops

    def detach(self, source_id):
        """Tear the device's context down: clear the context entry, then
        invalidate the context-cache (device), the PASID-cache and IOTLB
        (every domain the device used) and the device TLB."""
        dev = self._dev(source_id)
        ops = Ops()
        bus, devfn = source_id >> 8, source_id & 0xFF
        rpa = self.iommu.root_table + 16 * bus
        root = S.sm_root_entry.decode(self._read_entry(rpa, 2))
        ctp = root["uctp"] if devfn >= 128 else root["lctp"]
        cpa = ctp + 32 * (devfn & 0x7F)
        name = f"context-entry {bus:02x}:{devfn >> 3:02x}.{devfn & 7}"
        self._write(ops, cpa, 0, f"{name} qword 0")
        self._inv(ops, inv.ContextCacheInv("device", did=dev.did, sid=source_id))
        for did in sorted(dev.dids):
            self._inv(ops, inv.PasidCacheInv("domain", did=did))
            self._inv(ops, inv.IotlbInv("domain", did=did))
        if dev.ats:
            self._inv(ops, inv.DevTlbInv(source_id, addr=ALL_ADDRESSES, size=1))
        for i in range(1, 4):
            self._write(ops, cpa + 8 * i, 0, f"{name} qword {i}")
        del self.devices[source_id]
        return ops

    # -- PASIDs -------------------------------------------------------------------
    def _pasid_entry_pa(self, ops, dev, pasid, create):
        """Where the PASID's entry is (allocating its PASID table if
        `create`); None if there is none."""
        if self.iommu.ttm == "extended":
            gpa = dev.pasid_table + 8 * pasid
            return self._to_host(dev, gpa) if dev.nested else gpa
        if pasid >> 6 >= S.pasid_dir_size(dev.pdts):
            raise ValueError(f"pasid={pasid:#x} beyond the PASID directory (pdts={dev.pdts})")
        dpa = dev.pasid_dir + 8 * (pasid >> 6)
        de = S.pasid_dir_entry.decode((self.mem.read_u64(dpa),))
        if not de["p"]:
            if not create:
                return None
            table = self._frames()
            self._write(ops, dpa, S.pasid_dir_entry.encode(p=1, ptp=table)[0],
                        f"pasid-directory-entry {pasid >> 6:#x}")
            de["ptp"] = table
        return de["ptp"] + 64 * (pasid & 0x3F)

    def _to_host(self, dev, gpa):
        """HPA of a guest-physical address through the device's second level."""
        w = _walk(self.mem, gpa, root=dev.second_root, fmt="vtd_sl",
                  levels=dev.second_levels, phys_bits=self.iommu.haw, engine="reference")
        if not w.ok:
            raise ValueError(f"pasid_table: GPA {gpa:#x} is not mapped by the second level "
                             f"({w.fault})")
        return w.pa

    def alloc_pasid(self, source_id, pasid):
        """Make room for `pasid`: the PASID table its directory entry
        points at (scalable mode). Returns the Ops (empty if it exists)."""
        dev = self._dev(source_id)
        self._check_pasid(pasid)
        ops = Ops()
        if self.iommu.ttm == "scalable":
            self._pasid_entry_pa(ops, dev, pasid, True)
        return ops

    def _install(self, source_id, pasid, fields, what):
        """Write a new PASID entry (it must not be present)."""
        dev = self._dev(source_id)
        self._check_pasid(pasid)
        ops = Ops()
        pa = self._pasid_entry_pa(ops, dev, pasid, True)
        st = S.pasid_entry if self.iommu.ttm == "scalable" else S.ext_pasid_entry
        cur = self._read_entry(pa, st.qwords)
        if st.decode(cur)["p"]:
            raise ValueError(f"pasid={pasid:#x} is already bound on {source_id:#06x}; "
                             "use modify or unbind")
        if "did" in fields:
            dev.dids.add(fields["did"])
        if self.iommu.ttm == "extended" and dev.nested:
            what += ", in guest memory"
        self._write_entry(ops, pa, st.encode(p=1, **fields),
                          f"pasid-entry {pasid:#x} ({what})")
        return ops

    def _fields(self, kind, dev, *, first_root=None, first_levels=4, second_root=None,
                second_levels=4, did=None, sre=False, wpe=False, ssade=False, fpd=False):
        if self.iommu.ttm == "extended":
            if first_levels not in (4, 5):
                raise ValueError(f"first_levels={first_levels!r}; allowed: 4, 5")
            return dict(flptptr=first_root, flpm=first_levels - 4, sre=int(sre))
        f = dict(pgtt=S.PGTT[kind], did=dev.did if did is None else did, fpd=int(fpd))
        if kind in ("first", "nested"):
            if first_levels not in (4, 5):
                raise ValueError(f"first_levels={first_levels!r}; allowed: 4, 5")
            f.update(flptptr=first_root, flpm=first_levels - 4, sre=int(sre), wpe=int(wpe))
        if kind in ("second", "nested"):
            if second_root is None:
                raise ValueError(f"second_root: PGTT {kind!r} needs a second-level table")
            aw = {v: k for k, v in S.AW_LEVELS.items()}.get(second_levels)
            if aw is None:
                raise ValueError(f"second_levels={second_levels!r}; allowed: 3, 4, 5")
            f.update(slptptr=second_root, aw=aw, ssade=int(ssade))
        return f

    def bind(self, source_id, pasid, *, first_root, first_levels=4, nested=False,
             second_root=None, second_levels=4, did=None, sre=False, wpe=False,
             ssade=False, fpd=False):
        """Bind a first-level table (a process's CR3, or a guest's CR3 when
        `nested`: then `first_root` is a GPA and `second_root` the host's
        second-level table) to `pasid`: PGTT 001b or 011b (VT-d §9.6)."""
        dev = self._dev(source_id)
        kind = "nested" if nested else "first"
        return self._install(source_id, pasid, self._fields(
            kind, dev, first_root=first_root, first_levels=first_levels,
            second_root=second_root, second_levels=second_levels, did=did, sre=sre,
            wpe=wpe, ssade=ssade, fpd=fpd), kind)

    def bind_second(self, source_id, pasid, *, second_root, second_levels=4, did=None,
                    ssade=False):
        """Second-level-only translation for `pasid` (PGTT 010b)."""
        if self.iommu.ttm != "scalable":
            raise ValueError("bind_second: scalable mode only (extended mode has the "
                             "second level in the context entry)")
        dev = self._dev(source_id)
        return self._install(source_id, pasid, self._fields(
            "second", dev, second_root=second_root, second_levels=second_levels, did=did,
            ssade=ssade), "second")

    def bind_pass_through(self, source_id, pasid, *, did=None):
        """Pass-through for `pasid` (PGTT 100b)."""
        if self.iommu.ttm != "scalable":
            raise ValueError("bind_pass_through: scalable mode only")
        dev = self._dev(source_id)
        return self._install(source_id, pasid, self._fields("pass-through", dev, did=did),
                             "pass-through")

    def _flush_pasid(self, ops, dev, pasid, old):
        """Invalidations after a present PASID entry changed (old fields)."""
        if self.iommu.ttm == "scalable":
            did = old["did"]
            self._inv(ops, inv.PasidCacheInv("pasid", did=did, pasid=pasid))
            if S.PGTT_NAMES.get(old["pgtt"]) in ("first", "nested"):
                self._inv(ops, inv.PasidIotlbInv("pasid", did=did, pasid=pasid))
            else:
                self._inv(ops, inv.IotlbInv("domain", did=did))
        else:
            self._inv(ops, inv.PasidCacheInv("pasid", did=dev.did, pasid=pasid))
            self._inv(ops, inv.PasidIotlbInv("pasid", did=dev.did, pasid=pasid))
        if dev.ats:
            self._inv(ops, inv.PasidDevTlbInv(dev.source_id, pasid, addr=ALL_ADDRESSES,
                                              size=1, glob=1))

    def _bound(self, source_id, pasid):
        """The present PASID entry of a bound PASID: ``(dev, ops, pa, structure, qwords,
        fields)``; ValueError when the PASID is not bound."""
        dev = self._dev(source_id)
        self._check_pasid(pasid)
        ops = Ops()
        pa = self._pasid_entry_pa(ops, dev, pasid, False)
        st = S.pasid_entry if self.iommu.ttm == "scalable" else S.ext_pasid_entry
        cur = None if pa is None else self._read_entry(pa, st.qwords)
        if cur is None or not st.decode(cur)["p"]:
            raise ValueError(f"pasid={pasid:#x} is not bound on {source_id:#06x}")
        return dev, ops, pa, st, cur, st.decode(cur)

    def modify(self, source_id, pasid, **fields):
        """Change fields of a present PASID entry in place, then invalidate.
        Fields by their spec names (`pgtt`, `did`, `flptptr`, `flpm`,
        `slptptr`, `aw`, `sre`, `wpe`, `fpd`, ...) or `first_root`,
        `second_root`, `first_levels`, `second_levels`; `pgtt` also takes
        "first", "second", "nested", "pass-through"."""
        dev, ops, pa, st, cur, old = self._bound(source_id, pasid)
        new = dict(old)
        for k, v in fields.items():
            if k == "pgtt" and isinstance(v, str):
                if v not in S.PGTT:
                    raise ValueError(f"pgtt={v!r}; allowed: {', '.join(S.PGTT)}")
                v = S.PGTT[v]
            elif k == "first_levels":
                k, v = "flpm", v - 4
            elif k == "second_levels":
                k, v = "aw", {lv: a for a, lv in S.AW_LEVELS.items()}.get(v, -1)
            k = _FRIENDLY.get(k, k)
            if k not in st.fields:
                raise ValueError(f"{k}: not a field of {st.name}; allowed: {sorted(st.fields)}")
            new[k] = v
        if "did" in new:
            dev.dids.add(new["did"])
        q = st.encode(**new)
        for i in range(st.qwords):            # in place: qword 0 (P) is rewritten last
            j = (i + 1) % st.qwords
            self._write(ops, pa + 8 * j, q[j], f"pasid-entry {pasid:#x} qword {j}")
        self._flush_pasid(ops, dev, pasid, old)
        return ops

    def unbind(self, source_id, pasid):
        """Tear a PASID down: clear P (keeping FPD set so that the late
        requests of a dying context are not logged), invalidate, then clear
        the rest of the entry."""
        dev, ops, pa, st, cur, old = self._bound(source_id, pasid)
        fpd = 2 if self.iommu.ttm == "scalable" else 0
        self._write(ops, pa, (cur[0] & ~1) | fpd, f"pasid-entry {pasid:#x} qword 0 (P=0)")
        self._flush_pasid(ops, dev, pasid, old)
        for i in range(1, st.qwords):
            self._write(ops, pa + 8 * i, 0, f"pasid-entry {pasid:#x} qword {i}")
        self._write(ops, pa, fpd, f"pasid-entry {pasid:#x} qword 0")
        return ops

    def invalidate_range(self, source_id, pasid, address, size=4096, *, second_level=False):
        """The invalidation after changing a page table: for the first-level
        table of `pasid` (PASID-based, page-selective), or with
        `second_level` for its second-level table (page-selective IOTLB
        for second-level-only PASIDs; domain-selective when the PASID is
        nested, because the IOTLB is tagged by input address, not by GPA)."""
        dev = self._dev(source_id)
        self._check_pasid(pasid)
        if size < 4096 or size & (size - 1):
            raise ValueError(f"size={size!r}; allowed: a power of two, at least 4096")
        ops = Ops()
        am = size.bit_length() - 13
        addr = address & ~(size - 1)
        pa = self._pasid_entry_pa(ops, dev, pasid, False)
        if self.iommu.ttm == "scalable" and pa is not None:
            e = S.pasid_entry.decode(self._read_entry(pa, 8))
            did, kind = e["did"], S.PGTT_NAMES.get(e["pgtt"])
        else:
            did, kind = dev.did, "nested" if dev.nested else "first"
        if second_level and kind == "nested":
            self._inv(ops, inv.IotlbInv("domain", did=did))
        elif second_level or kind == "second":
            self._inv(ops, inv.IotlbInv("page", did=did, addr=addr, am=am))
        else:
            self._inv(ops, inv.PasidIotlbInv("page", did=did, pasid=pasid, addr=addr, am=am))
        if dev.ats:
            self._inv(ops, inv.PasidDevTlbInv(source_id, pasid, addr=addr, size=int(am > 0)))
        return ops
