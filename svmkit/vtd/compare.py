"""Scalable mode against the VT-d 2.x extended-context mode, for a guest
with shared virtual memory (nested translation).

In the 2017 discussion of VFIO SVM virtualization (see
/work/shared/context/), the design on the table was to "bind the guest's
PASID table": with VT-d 2.x extended-context entries, the host writes the
guest-physical address of the guest's own PASID table into the context
entry (NESTE=1), and the hardware translates that address through the
second level. The guest owns its PASID table; the host only forwards the
guest's invalidations. Scalable mode (VT-d 3.0) moved the PASID table
into host-physical memory: the host owns every PASID entry and must
shadow the guest's (copy FLPTPTR and flags on each trapped PASID-cache
invalidation), while the first-level tables stay the guest's.

`ownership(iommu, source_id, pasid)` lists who owns what one request uses;
`compare_modes(vas)` runs one guest in both modes and counts references.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..memory import FrameAllocator, Memory
from ..pagetable import PageTable
from .caches import CacheConfig
from .driver import Driver
from .iommu import Iommu

__all__ = ["Owned", "ownership", "compare_modes", "render_comparison"]


@dataclass(frozen=True)
class Owned:
    """One structure a request uses: `space` is the address space its
    pointer is in ("HPA" or "GPA"); `owner` "host" or "guest";
    `host_must` what the VMM does to keep the hardware's copy right."""
    structure: str
    space: str
    owner: str
    host_must: str


def ownership(iommu, source_id, pasid=None):
    """Who owns each structure a request of (source_id, pasid) goes
    through, in the IOMMU's mode; [] if the request faults in the
    structures."""
    cfg, err = iommu.configure(source_id, pasid=pasid)
    if err is not None:
        return []
    nested = cfg.pgtt == "nested"
    out = [Owned("root-entry", "HPA", "host", "nothing"),
           Owned("context-entry", "HPA", "host", "nothing")]
    if cfg.mode == "scalable":
        out.append(Owned("pasid-directory-entry", "HPA", "host", "nothing"))
        out.append(Owned("pasid-entry", "HPA", "host",
                         "shadow guest entry, trap pc_inv"
                         if nested else "nothing"))
    elif cfg.mode == "extended" and pasid is not None:
        out.append(Owned("pasid-entry", "GPA" if nested else "HPA",
                         "guest" if nested else "host",
                         "forward guest pc_inv" if nested
                         else "nothing"))
    if cfg.pgtt in ("first", "nested"):
        out.append(Owned("first-level tables", "GPA" if nested else "HPA",
                         "guest" if nested else "host",
                         "forward guest p_iotlb_inv" if nested else "nothing"))
    if cfg.pgtt in ("second", "nested"):
        out.append(Owned("second-level tables", "HPA", "host", "nothing"))
    return out


def _guest_system(ttm, fl_levels, sl_levels, guest_frames, caches):
    """A host with a guest: second-level tables map guest RAM (GPA 0..) to
    host frames; the guest's first-level tables (and, in extended mode, its
    PASID table) live in guest RAM."""
    mem = Memory(1 << 40)
    host = FrameAllocator(mem, 0x10_0000, 0x1000_0000)
    iommu = Iommu(mem, root_table=host.alloc(), ttm=ttm, caches=caches)
    drv = Driver(mem, host, iommu)
    guest_base = 0x2_0000_0000
    sl = PageTable(mem, host.alloc, fmt="vtd_sl", levels=sl_levels, phys_bits=iommu.haw)
    for i in range(guest_frames):
        sl.map(i * 4096, guest_base + i * 4096)
    free = list(range((guest_frames - 1) * 4096, 0, -4096))
    gpt = PageTable(mem, free.pop, fmt="x86_64", levels=fl_levels,
                    to_host=lambda gpa: guest_base + gpa)
    return mem, iommu, drv, sl, gpt, free


def compare_modes(vas, *, source_id=0x0100, pasid=1, fl_levels=4, sl_levels=4,
                  caches=None, access="r"):
    """Run one guest SVM scenario in scalable and in extended-context mode.

    The guest maps each VA of `vas` (4 KiB pages) in its first-level
    table; the device then reads each VA with `pasid`. Returns, per mode,
    a dict: `refs` (memory references of each translation), `structure_refs`
    (those to root/context/PASID structures and to the second level for
    the PASID table), `ops` (the driver's setup Ops) and `ownership`."""
    if caches is None:
        caches = CacheConfig()
    out = {}
    for ttm in ("scalable", "extended"):
        mem, iommu, drv, sl, gpt, free = _guest_system(ttm, fl_levels, sl_levels,
                                                        len(vas) * 4 + 64, caches)
        for i, va in enumerate(vas):
            gpt.map(va, free.pop())
        if ttm == "scalable":
            ops = drv.attach(source_id)
            ops += drv.bind(source_id, pasid, first_root=gpt.root, first_levels=fl_levels,
                            nested=True, second_root=sl.root, second_levels=sl_levels)
        else:
            pasid_table = free.pop()                     # the guest's own PASID table
            ops = drv.attach(source_id, second_root=sl.root, second_levels=sl_levels,
                             pasid_table=pasid_table, nested=True)
            ops += drv.bind(source_id, pasid, first_root=gpt.root, first_levels=fl_levels)
        refs, srefs = [], []
        for va in vas:
            w = iommu.translate(source_id, va, pasid=pasid, access=access)
            if not w.ok:
                raise RuntimeError(f"{ttm}: {w.fault}")  # the scenario is built to succeed
            refs.append(len(w.refs))
            srefs.append(sum(1 for r in w.refs if r.stage not in ("first", "second")
                             or r.guest_level is None and r.stage == "second"
                             and w.nested and _before_first(w.refs, r)))
        out[ttm] = {"refs": refs, "structure_refs": srefs, "ops": ops,
                    "ownership": ownership(iommu, source_id, pasid)}
    return out


def _before_first(refs, r):
    """True if `r` comes before the first first-level reference (a
    second-level walk for a structure, not for the guest's tables)."""
    for x in refs:
        if x is r:
            return True
        if x.stage == "first":
            return False
    return False


def render_comparison(result):
    """Plain text (72 columns) of `compare_modes`' result."""
    lines = []
    for ttm, r in result.items():
        n = len(r["refs"])
        lines.append(f"{ttm} mode: {n} translations, {sum(r['refs'])} references "
                     f"({sum(r['refs']) / max(n, 1):.1f} each)")
        lines.append(f"  first translation: {r['refs'][0]} references, "
                     f"{r['structure_refs'][0]} to structures")
        lines.append(f"  setup: {len(r['ops'].writes)} writes, "
                     f"{len(r['ops'].invalidations)} invalidations")
        for o in r["ownership"]:
            lines.append(f"  {o.structure:<22} {o.space} {o.owner:<5} {o.host_must}"[:72])
    return "\n".join(lines)
