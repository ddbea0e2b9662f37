"""``svmkit.walk`` and ``svmkit.translate``: the public face of the walkers.

:func:`walk` makes one translation and returns a :class:`Walk` that holds every memory
reference; :func:`translate` makes many at compiled speed and returns arrays. Both check
their arguments (ValueError naming the argument and what is allowed) and never raise for
anything found in memory: a fault is a value.
"""

from dataclasses import dataclass, field

import numpy as np

from . import formats
from ._jit import HAVE_NUMBA
from .memory import MAX_PHYS, Memory
from .walker import faults as F
from .walker import reference

U64 = (1 << 64) - 1
ENGINES = ("auto", "jit", "reference")


@dataclass(frozen=True)
class Ref:
    """One memory reference: the entry ``value`` read at host-physical ``address``.

    ``stage`` is "first" or "second" (models add "root", "context", ...); ``level`` the level
    in that stage; ``guest_level``, for a second-stage reference of a nested walk, the guest
    level whose table it locates (0 for the final GPA), else None; ``structure`` the spec
    name of what was read ("pml4e", "sl-pte", "pasid-entry" ...).
    """

    stage: str
    level: int
    address: int
    value: int
    guest_level: int | None = None
    structure: str = ""


@dataclass(frozen=True)
class Fault:
    """Why a translation failed: ``reason`` (a stable short name, see
    :data:`svmkit.walker.faults.REASONS`), the ``stage`` and ``level`` where, the input
    ``address`` of that stage (the VA, or the GPA for a second-stage fault), the
    architecture's number ``code`` (None where there is none) and the ``access``."""

    stage: str
    level: int
    reason: str
    address: int
    code: int | None = None
    access: str = "r"

    def __str__(self):
        code = "" if self.code is None else f" (code {self.code:#x})"
        return (f"{self.reason} at {self.stage}-stage level {self.level}, "
                f"address {self.address:#x}{code}")


@dataclass
class Walk:
    """The result of a translation: ``ok``, ``pa``, ``page_size``, ``fault``, ``refs``.

    Also ``va`` (the input), ``gpa`` (the first stage's output in a nested walk), and the
    stages' configuration (``fmt``, ``levels``, ``second_fmt``, ``second_levels``,
    ``nested``), which renderers and widgets use to lay out the walk. IOMMU models fill
    ``cache`` (hits and misses) and ``config`` (what they decoded from their structures).
    """

    va: int
    ok: bool
    pa: int | None
    page_size: int | None
    fault: Fault | None
    refs: list = field(default_factory=list)
    gpa: int | None = None
    fmt: str = "x86_64"
    levels: int = 4
    second_fmt: str | None = None
    second_levels: int | None = None
    nested: bool = False
    access: str = "r"
    cache: dict | None = None     # an IOMMU model's cache hits and misses for this walk
    config: object = None         # the configuration a model decoded from its structures

    def __repr__(self):
        head = f"Walk(va={self.va:#x}, "
        if self.ok:
            return head + f"pa={self.pa:#x}, page_size={self.page_size:#x}, refs={len(self.refs)})"
        return head + f"fault={self.fault}, refs={len(self.refs)})"


@dataclass(frozen=True)
class Config:
    """Checked arguments of a walk: what the walkers need, with descriptors built."""

    fmt: object
    levels: int
    d1: np.ndarray
    second_fmt: object
    second_levels: int
    d2: np.ndarray
    root: int
    second_root: int
    nested: bool
    access: int
    user: bool
    wp: bool


def _address(value, name, limit, align=1):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}={value!r} is not an integer address")
    value = int(value)
    if not 0 <= value < limit:
        raise ValueError(f"{name}={value:#x} is out of range; allowed: 0 to {limit - 1:#x}")
    if value % align:
        raise ValueError(f"{name}={value:#x} is not {align // 1024} KiB aligned")
    return value


def configure(*, root, fmt="x86_64", levels=4, access="r", user=False, phys_bits=52,
              second_root=None, second_fmt="vtd_sl", second_levels=4, wp=True,
              second_ad=False, second_phys_bits=None):
    """Check the arguments shared by :func:`walk` and :func:`translate`; see :func:`walk`."""
    f1 = formats.get(fmt, "fmt")
    f1.check_levels(levels, "levels")
    if access not in F.ACCESSES:
        raise ValueError(f"access={access!r} is not allowed; allowed: 'r', 'w', 'x'")
    root = _address(root, "root", MAX_PHYS, 4096)
    d1 = f1.descriptor(levels, phys_bits)
    nested = second_root is not None
    f2 = formats.get(second_fmt, "second_fmt")
    if nested:
        f2.check_levels(second_levels, "second_levels")
        second_root = _address(second_root, "second_root", MAX_PHYS, 4096)
        spb = phys_bits if second_phys_bits is None else second_phys_bits
        d2 = f2.descriptor(second_levels, spb, **({"ad": True} if second_ad else {}))
    else:
        second_root, d2 = 0, d1
    return Config(f1, levels, d1, f2, second_levels, d2, root, second_root, nested,
                  F.ACCESSES.index(access), bool(user), bool(wp))


def walk(mem, va, *, root, fmt="x86_64", levels=4, access="r", user=False, phys_bits=52,
         second_root=None, second_fmt="vtd_sl", second_levels=4, wp=True, second_ad=False,
         second_phys_bits=None, engine="auto"):
    """Translate ``va`` through the tables at ``root`` and return a :class:`Walk`.

    Without ``second_root`` the walk is one-dimensional: ``root`` is a host-physical address
    (a CPU's CR3, a first-level-only IOMMU, or with ``fmt="vtd_sl"`` a second-level walk of
    a GPA). With ``second_root`` it is nested: ``root`` and every first-stage table pointer
    are guest-physical and each goes through the second stage (``second_fmt``,
    ``second_levels``), and so does the final GPA (VT-d 3.8).

    ``access`` is "r", "w" or "x"; ``user`` marks a user-mode request; ``wp`` is write
    protection for supervisor writes (CR0.WP, VT-d WPE); ``second_ad`` enables the second
    stage's accessed/dirty flags (VT-d SSADE); ``phys_bits`` is MAXPHYADDR or the host
    address width; ``engine`` picks the numba walker ("jit"), the plain-Python one
    ("reference") or numba when installed ("auto").
    """
    if not isinstance(mem, Memory):
        raise ValueError(f"mem={mem!r} is not a svmkit.Memory")
    va = _address(va, "va", 1 << 64)
    cfg = configure(root=root, fmt=fmt, levels=levels, access=access, user=user,
                    phys_bits=phys_bits, second_root=second_root, second_fmt=second_fmt,
                    second_levels=second_levels, wp=wp, second_ad=second_ad,
                    second_phys_bits=second_phys_bits)
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is not allowed; allowed: {', '.join(ENGINES)}")
    if engine == "reference" or (engine == "auto" and not HAVE_NUMBA):
        raw = []
        reason, stage, level, where, pa, size, gpa = reference.walk(
            mem, va, cfg.root, cfg.d1, cfg.second_root, cfg.d2, cfg.nested, cfg.access,
            cfg.user, cfg.wp, raw)
    else:
        from .walker import jit
        refs = np.zeros((jit.MAX_REFS, jit.REF_COLUMNS), dtype=np.int64)
        keys, slots, frames, size_ = mem.arrays()
        va64 = np.int64(va - (1 << 64) if va >> 63 else va)
        reason, stage, level, where, pa, size, n, gpa = jit.walk_nb(
            keys, slots, frames, size_, va64, cfg.root, cfg.d1, cfg.second_root, cfg.d2,
            cfg.nested, cfg.access, cfg.user, cfg.wp, refs, 0)
        raw = [tuple(int(x) for x in row) for row in refs[:n]]
    return make_walk(cfg, va, raw, reason, stage, level, where, pa, size, gpa)


def make_walk(cfg, va, raw, reason, stage, level, where, pa, size, gpa):
    """A :class:`Walk` from a walker's raw result (either engine)."""
    # a one-dimensional walk is named after its format's stage: a second-level walk of a
    # GPA alone is "second", though the walker ran it as its only (first) stage
    names = F.STAGES if cfg.nested else (cfg.fmt.stage_name, cfg.fmt.stage_name)
    refs = []
    for st, lv, address, value, guest_level in raw:
        f, d = (cfg.fmt, cfg.d1) if st == F.FIRST else (cfg.second_fmt, cfg.d2)
        leaf = f.is_leaf(value, lv, d)
        refs.append(Ref(names[st], int(lv), int(address), int(value) & U64,
                        None if guest_level < 0 else int(guest_level),
                        f.structure(lv, leaf)))
    access = F.ACCESSES[cfg.access]
    fault = None
    if reason:
        f = cfg.fmt if stage == F.FIRST else cfg.second_fmt
        name = F.REASONS[reason]
        user = cfg.user if stage == F.FIRST else False
        fault = Fault(names[stage], int(level), name, int(where) & U64,
                      f.fault_code(name, access, user), access)
    return Walk(
        va=va, ok=not reason, pa=None if reason else int(pa), page_size=None if reason else int(size),
        fault=fault, refs=refs, gpa=int(gpa) if cfg.nested and (gpa or not reason) else None,
        fmt=cfg.fmt.name, levels=cfg.levels,
        second_fmt=cfg.second_fmt.name if cfg.nested else None,
        second_levels=cfg.second_levels if cfg.nested else None,
        nested=cfg.nested, access=access)


def translate(mem, vas, *, root, fmt="x86_64", levels=4, access="r", user=False,
              phys_bits=52, second_root=None, second_fmt="vtd_sl", second_levels=4, wp=True,
              second_ad=False, second_phys_bits=None, specialize=False):
    """Translate every address of ``vas`` (compiled, no Python per address).

    Returns ``(pa, fault)``: uint64 physical addresses (0 where the translation faulted) and
    int32 fault codes: 0 for success, else ``reason | stage << 4`` with ``reason`` an index of
    :data:`svmkit.walker.faults.REASONS` (1 not-present, 2 reserved-bit, 3 permission,
    4 non-existent-memory, 5 address-width, 6 access-flag, 7 address-size, 8 ad-permission)
    and ``stage`` 0 for first, 1 for second: 0x11 is a not-present second-stage entry.
    :func:`fault_name` spells a code out. Keywords as for :func:`walk`.

    ``specialize=True`` walks with a walker compiled for exactly this configuration
    (:func:`svmkit.walker.jit.specialized`): the same walk, with the formats, levels and
    access as constants, about 1.4 times as fast per address. Its first use compiles it,
    which takes about as long as compiling the generic walker (a minute on a small machine);
    numba's disk cache keeps it for later processes. Worth it for large or repeated batches
    of one configuration; results are the same either way.
    """
    if not isinstance(mem, Memory):
        raise ValueError(f"mem={mem!r} is not a svmkit.Memory")
    arr = np.asarray(vas)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise ValueError("vas must be a one-dimensional array of integer addresses")
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        raise ValueError("vas holds a negative address; allowed: 0 to 2**64-1")
    cfg = configure(root=root, fmt=fmt, levels=levels, access=access, user=user,
                    phys_bits=phys_bits, second_root=second_root, second_fmt=second_fmt,
                    second_levels=second_levels, wp=wp, second_ad=second_ad,
                    second_phys_bits=second_phys_bits)
    vas64 = np.ascontiguousarray(arr.astype(np.uint64)).view(np.int64)
    pa = np.zeros(len(vas64), dtype=np.int64)
    fault = np.zeros(len(vas64), dtype=np.int32)
    keys, slots, frames, size = mem.arrays()
    if HAVE_NUMBA:
        from .walker import jit
        if specialize:
            fn = jit.specialized(*jit.batch_descriptors(cfg.d1, cfg.d2, cfg.access, cfg.user,
                                                        cfg.wp), cfg.nested)
            fn(keys, slots, frames, size, vas64, cfg.root, cfg.second_root,
               np.empty((jit.MAX_REFS, jit.REF_COLUMNS), dtype=np.int64), pa, fault,
               np.zeros((0, 8), dtype=np.int64))
        else:
            jit.translate_nb(keys, slots, frames, size, vas64, cfg.root, cfg.d1,
                             cfg.second_root, cfg.d2, cfg.nested, cfg.access, cfg.user,
                             cfg.wp, pa, fault)
    else:  # Pyodide: the reference serves, one address at a time
        for i, va in enumerate(vas64.view(np.uint64)):
            raw = []
            r = reference.walk(mem, int(va), cfg.root, cfg.d1, cfg.second_root, cfg.d2,
                               cfg.nested, cfg.access, cfg.user, cfg.wp, raw)
            pa[i], fault[i] = (r[4], 0) if r[0] == 0 else (0, r[0] | r[1] << 4)
    return pa.view(np.uint64), fault


def fault_name(code):
    """``"second-stage not-present"`` for a :func:`translate` code; "ok" for 0."""
    code = int(code)
    if code == 0:
        return "ok"
    return f"{F.STAGES[code >> 4]}-stage {F.REASONS[code & 15]}"
