"""The five SVM set-ups of the comparison, each built through its IOMMU model's Driver.

One scenario: a process whose address space (a 4- or 5-level x86-64 / VMSAv8-64 table) is
bound to a device at PASID ``p``; in four set-ups the process runs in a VM, so its table
and some IOMMU structures live in guest memory behind an m-level second-stage table with
4 KiB pages. Each builder makes the set-up in a fresh :class:`svmkit.Memory` with every
cache of the model turned off, translates one address of the process with the model's
``translate`` and returns a :class:`Measured`: the real walk, and the Driver's :class:`Ops`
for a further PASID's bind and for its unbind (what a PASID-table change costs).

A model that is not installed (an IOMMU branch not merged yet) makes its builder raise
:class:`Unavailable`; the comparison then says "model not available" for that column.
"""

import importlib
from dataclasses import dataclass, field

from ..formats import get as get_format
from ..formats import x86_64
from ..memory import FrameAllocator, Memory

__all__ = ["SETUPS", "LABELS", "Measured", "Unavailable", "Unsupported", "build",
           "split_refs", "FIRST_FORMAT", "SETUP_ARCH", "NATIVE_ARCHS"]

SETUPS = ("vtd-sm", "vtd-ecs", "smmuv3", "amdvi", "native")
LABELS = {
    "vtd-sm": "VT-d scalable",
    "vtd-ecs": "VT-d ext-ctx",
    "smmuv3": "SMMUv3 nested",
    "amdvi": "AMD-Vi nested",
    "native": "native SVA",
}
#: the IOMMU model of each VM set-up (the native one's is an argument)
SETUP_ARCH = {"vtd-sm": "vtd", "vtd-ecs": "vtd", "smmuv3": "smmuv3", "amdvi": "amdvi"}
#: the format of the process's tables in each set-up's architecture
FIRST_FORMAT = {"vtd": "x86_64", "amdvi": "x86_64", "smmuv3": "arm64_s1"}
DEV = 0x0310             # 03:02.0: requester id / StreamID / DeviceID
VA = 0x7F_3456_7000      # the process address the device reads (fits 39-bit tables)


class Unavailable(Exception):
    """The model a set-up needs is not part of this svmkit."""
    label = "model not available"


class Unsupported(Unavailable):
    """The model exists but cannot build the set-up with these depths."""
    label = "not supported"


@dataclass
class Measured:
    """One set-up, measured: ``walk`` (the model's translate result, caches off), the
    first-stage depth ``n`` and second-stage depth ``m`` (0 without a VM), the Driver's
    ``bind_ops`` for a second PASID and ``unbind_ops`` for it, and ``arch``."""
    setup: str
    arch: str
    walk: object
    n: int
    m: int
    bind_ops: object = None
    unbind_ops: object = None
    notes: list = field(default_factory=list)

    @property
    def refs(self):
        return len(self.walk.refs)

    @property
    def structure_refs(self):
        return split_refs(self.walk, self.n, self.m)[0]

    @property
    def walk_refs(self):
        return split_refs(self.walk, self.n, self.m)[1]


def split_refs(walk, n, m):
    """(structure reads, page-walk reads) of a walk: everything before the page walk of
    the process is the IOMMU's structures (with the second-stage reads that locate them);
    the page walk starts at the second-stage walk that locates the guest's top table
    (``guest_level == n``), or, without a VM, at the first first-stage read."""
    for i, r in enumerate(walk.refs):
        if m and r.stage == "second" and r.guest_level == n:
            return i, len(walk.refs) - i
        if not m and r.stage == "first":
            return i, len(walk.refs) - i
    return len(walk.refs), 0


def _model(name):
    try:
        return importlib.import_module(f"svmkit.{name}")
    except ImportError as e:
        raise Unavailable(f"svmkit.{name} is not installed ({e})") from None


class _World:
    """Host memory and, for a VM, its guest-physical space behind a second-stage table."""

    def __init__(self, second_fmt=None, m=4):
        from ..amdvi.tables import GuestSpace
        from .. import formats
        self.mem = Memory()
        self.alloc = FrameAllocator(self.mem, base=0x100000)
        self.guest = None
        if second_fmt is not None:
            self.host_root = self.alloc.alloc()
            self.guest = GuestSpace(self.mem, self.alloc, self.host_root,
                                    formats.get(second_fmt), m)

    def process(self, n, fmt=x86_64.FORMAT, **leaf):
        """A process table of ``n`` levels mapping VA, in guest memory when there is a VM;
        returns its root (a GPA in a VM)."""
        from ..pagetable import map_page
        space = self.guest or self.alloc
        to_hpa = self.guest.to_hpa if self.guest else None
        root, page = space.alloc(), space.alloc()
        map_page(self.mem, space, root, VA, page, fmt, fmt.descriptor(n), to_host=to_hpa,
                 **leaf)
        return root


# -- the builders ---------------------------------------------------------------------------

def _measure(io, drv, process, p, n, kw, later_kw=None):
    """Bind PASID ``p`` to a new process table, translate VA through it, then bind PASID
    p + 1 (a PASID-table change on a device already set up) and unbind it. Returns
    ``(walk, bind_ops, unbind_ops)``."""
    drv.bind(DEV, p, first_root=process(), first_levels=n, **kw)
    walk = io.translate(DEV, VA, pasid=p)
    bind_ops = drv.bind(DEV, p + 1, first_root=process(), first_levels=n,
                        **(kw if later_kw is None else later_kw))
    return walk, bind_ops, drv.unbind(DEV, p + 1)


def _vtd(ttm, nested, p, n, m):
    vtd = _model("vtd")
    w = _World("vtd_sl" if nested else None, m)
    io = vtd.Iommu(w.mem, root_table=w.alloc.alloc(), ttm=ttm,
                   caches=vtd.CacheConfig(enabled=False))
    drv = vtd.Driver(w.mem, w.alloc, io)
    if ttm == "extended":
        # VT-d 2.x: the guest owns the PASID table; its GPA goes in the extended context
        drv.attach(DEV, did=1, second_root=w.host_root, second_levels=m,
                   pasid_table=w.guest.alloc(), nested=True)
    else:
        drv.attach(DEV, did=1)
    kw = dict(nested=True, second_root=w.host_root, second_levels=m) if nested else {}
    return _measure(io, drv, lambda: w.process(n), p, n, kw)


def _amdvi(nested, p, n, m):
    from .. import amdvi
    w = _World("amd_v1" if nested else None, m)
    io = amdvi.Iommu(w.mem, device_table=w.alloc.alloc(512),
                     caches=amdvi.CacheConfig(enabled=False))
    drv = amdvi.Driver(w.mem, w.alloc, io, guest=w.guest)
    kw = dict(nested=True, second_root=w.host_root, second_levels=m) if nested else {}
    return _measure(io, drv, lambda: w.process(n), p, n, kw)


def _smmuv3(nested, p, n, m):
    smmu = _model("smmuv3")
    from ..formats import get
    s1, s2 = get("arm64_s1"), get("arm64_s2")
    for name, fmt, levels in (("n", s1, n), ("m", s2, m if nested else None)):
        if levels is not None and levels not in fmt.levels_allowed:
            raise Unsupported(f"{name}={levels}: {fmt.name} allows "
                              f"{', '.join(map(str, fmt.levels_allowed))}")
    mem = Memory()
    alloc = FrameAllocator(mem, base=0x100000)
    io = smmu.Iommu.new(mem, alloc, sid_bits=10, caches=False)
    drv = smmu.Driver(mem, alloc, io)
    d1 = s1.descriptor(n, 48)
    kw = {}
    if nested:
        # the guest's stage-1 tables and CD table live in IPA space (IHI 0070 5.2)
        d2 = s2.descriptor(m, 48)
        s2root = smmu.new_root(alloc, d2)
        space = smmu.Guest(mem, alloc, s2root, d2)
        kw = dict(nested=True, second_root=s2root, second_levels=m,
                  guest_alloc=space.alloc)
        where = space
    else:
        space, where = alloc, mem

    def process():
        root = smmu.new_root(space, d1)
        smmu.map_page(where, space, root, VA, space.alloc(), s1, d1)
        return root

    later = {k: v for k, v in kw.items() if k != "guest_alloc"}    # attach-only keyword
    return _measure(io, drv, process, p, n, kw, later)


NATIVE_ARCHS = ("vtd", "smmuv3", "amdvi")


def build(setup, *, p=5, n=4, m=4, native_arch="auto"):
    """Build ``setup`` (one of :data:`SETUPS`) and measure it; :class:`Unavailable` when
    its model is missing. ``native_arch`` picks the IOMMU of the native set-up ("vtd",
    "smmuv3", "amdvi", or "auto": the first of these that is installed)."""
    if setup not in SETUPS:
        raise ValueError(f"setup={setup!r}; allowed: {', '.join(SETUPS)}")
    if native_arch not in NATIVE_ARCHS + ("auto",):
        raise ValueError(f"native_arch={native_arch!r}; allowed: auto, "
                         f"{', '.join(NATIVE_ARCHS)}")
    if setup == "native" and native_arch == "auto":
        for arch in NATIVE_ARCHS:
            try:
                return build(setup, p=p, n=n, m=m, native_arch=arch)
            except Unavailable:
                continue
        raise Unavailable("no IOMMU model is installed")
    arch = SETUP_ARCH.get(setup, native_arch)
    try:
        first = get_format(FIRST_FORMAT[arch])
    except ValueError:
        raise Unavailable(f"format {FIRST_FORMAT[arch]} is not installed") from None
    if n not in first.levels_allowed:
        raise Unsupported(f"n={n}: {first.name} allows "
                          f"{', '.join(map(str, first.levels_allowed))}")
    nested = setup != "native"
    if arch == "vtd":
        walk, b, u = _vtd("extended" if setup == "vtd-ecs" else "scalable", nested, p, n, m)
    elif arch == "smmuv3":
        walk, b, u = _smmuv3(nested, p, n, m)
    else:
        walk, b, u = _amdvi(nested, p, n, m)
    return Measured(setup, arch, walk, n, 0 if setup == "native" else m, b, u)
