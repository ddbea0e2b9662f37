"""The AMD-Vi IOMMU model: device table, GCR3 tables, host (v1) and guest (x86-64) tables.

48882 2.2 "Data Structures": a request from DeviceID ``bus << 8 | devfn`` selects its DTE
(2.2.2) in the device table. Then:

* without a PASID, the host table (Mode levels of :mod:`svmkit.formats.amd_v1`, 2.2.3)
  translates the address (a GPA or an IOVA); Mode 0 passes it through untranslated;
* with a PASID and GV=1, the GCR3 table (GLX + 1 levels) indexed by the PASID gives
  the guest CR3, and the guest's x86-64 tables (4 or 5 levels, the DTE's GuestPagingMode)
  translate the address (a GVA). With Mode != 0 the translation is nested (48882 2.2, "Nested
  Translation"): the GCR3 table root, every GCR3 entry pointer, the guest CR3, every guest
  table pointer and the final GPA are GPAs that the host table translates. This is how an
  iommufd nested domain works on AMD: the guest's DTE fields GV, GLX, GCR3 root and
  GuestPagingMode are copied into the host DTE, whose Mode/root are the host's
  (``IOMMU_HWPT_DATA_AMD_GUEST``).

Faults are values (:class:`Fault`): ``stage`` is "dte", "gcr3", "first" (guest tables) or
"second" (host tables), ``code`` the event code of 48882 2.5 and ``name`` its name; the
event the IOMMU would log, with its flags, is ``Walk.event`` and joins ``Iommu.events``
(unless the DTE's SA bit suppresses IO_PAGE_FAULT logging).

Caches (2.4 "Commands" say what each invalidation drops): a DTE cache (by DeviceID), a GCR3
cache (by DomainID and PASID) and an IOTLB (by DomainID, PASID or none, page). Page
directory caches are not modelled: a miss walks every level.
"""

from collections import OrderedDict
from dataclasses import dataclass

from .. import walks as W
from ..formats import amd_v1, x86_64
from ..memory import Memory
from ..walker import faults as F
from ..walker import reference
from . import commands as C
from .dte import (DTE_SIZE, GCR3_ADDR, GCR3_RESERVED, GCR3_V, GPM_LEVELS, decode_dte,
                  gcr3_index)
from .events import EVENT_CODES, FLAGS, Event, io_page_fault_flags

__all__ = ["Iommu", "Fault", "Ref", "CacheConfig", "Config"]

U64 = (1 << 64) - 1
PAGE_SHIFTS = (12, 21, 30, 39, 48)


@dataclass(frozen=True)
class Ref(W.Ref):
    """A memory reference, as :class:`svmkit.Ref`, with the whole DTE for a DTE read
    (``qwords``; ``value`` is qword 0) and, for a host-table reference made to find a GCR3
    table entry in guest memory, what it ``locates`` ("gcr3-entry", "gcr3-table-entry");
    the same two fields as the SMMUv3 model's references."""

    qwords: tuple = ()
    locates: str | None = None


@dataclass(frozen=True)
class Fault(W.Fault):
    """An AMD-Vi translation fault: the core :class:`svmkit.Fault` fields plus the event's
    ``name`` (e.g. "IO_PAGE_FAULT") and its ``flags`` (48882 2.5.3)."""

    name: str = ""
    flags: int = 0

    def __str__(self):
        return (f"{self.name} ({self.code:#x}): {self.reason} at {self.stage} "
                f"level {self.level}, address {self.address:#x}")


@dataclass(frozen=True)
class CacheConfig:
    """Sizes of the modelled caches; ``enabled=False`` turns them all off (every
    translation reads every structure)."""

    enabled: bool = True
    dte_entries: int = 64
    gcr3_entries: int = 64
    iotlb_entries: int = 512

    def __post_init__(self):
        for name in ("dte_entries", "gcr3_entries", "iotlb_entries"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r}; allowed: at least 1")


@dataclass(frozen=True)
class Config:
    """What the device table and GCR3 table select for (``device_id``, ``pasid``):
    ``kind`` ("untranslated" for V=0, "pass-through" for Mode 0, "second" (host table),
    "first" (guest tables, native SVA) or "nested"), the stage roots and depths (the
    guest table in ``x86_64``, the host table in ``amd_v1``), ``domain_id``, and the
    ``entry`` (HPA) that chose them, ``entry_name`` "dte" or "gcr3-entry"."""

    device_id: int
    pasid: int | None
    kind: str
    domain_id: int = 0
    first_root: int = 0
    first_levels: int = 4
    first_fmt: str = "x86_64"
    second_root: int = 0
    second_levels: int = 0
    second_fmt: str = "amd_v1"
    entry: int = 0
    entry_name: str = ""


class _Cache:
    """A fully associative LRU cache that counts hits and misses."""

    def __init__(self, entries, enabled):
        self.entries, self.enabled = entries, enabled
        self._d = OrderedDict()
        self.hits = self.misses = 0

    def lookup(self, key):
        if self.enabled and key in self._d:
            self._d.move_to_end(key)
            self.hits += 1
            return self._d[key]
        self.misses += 1
        return None

    def fill(self, key, value):
        if not self.enabled:
            return
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.entries:
            self._d.popitem(last=False)

    def peek(self, key):
        """The cached value or None, without counting or reordering."""
        return self._d.get(key) if self.enabled else None

    def drop(self, pred=None):
        for k in [k for k in self._d if pred is None or pred(k, self._d[k])]:
            del self._d[k]

    def __len__(self):
        return len(self._d)

    def keys(self):
        return list(self._d)


class Iommu:
    """An AMD-Vi IOMMU reading ``mem`` (a :class:`svmkit.Memory`).

    ``device_table`` is the host-physical base of the device table (the Device Table Base
    Address register, MMIO 0x0000; 48882 3.4.1); it covers all 65536 DeviceIDs.
    ``phys_bits`` is the system physical address width; ``caches`` a :class:`CacheConfig`
    (None: the defaults)."""

    def __init__(self, mem, *, device_table, phys_bits=52, caches=None):
        if not isinstance(mem, Memory):
            raise ValueError(f"mem={mem!r} is not a svmkit.Memory")
        if not isinstance(device_table, int) or device_table % 4096 or device_table < 0:
            raise ValueError(f"device_table={device_table!r}; allowed: a 4 KiB aligned "
                             "host-physical address")
        if not 32 <= phys_bits <= 52:
            raise ValueError(f"phys_bits={phys_bits!r}; allowed: 32 to 52")
        self.mem, self.device_table, self.phys_bits = mem, device_table, phys_bits
        self.caches = caches or CacheConfig()
        on = self.caches.enabled
        self.dte_cache = _Cache(self.caches.dte_entries, on)
        self.gcr3_cache = _Cache(self.caches.gcr3_entries, on)
        self.iotlb = _Cache(self.caches.iotlb_entries, on)
        self.events = []          # the event log (48882 2.5), oldest first
        self.commands = []        # commands executed, in order

    @classmethod
    def new(cls, mem, alloc, **options):
        """An IOMMU with a fresh zeroed device table (every DTE V=0) of 65536 entries
        (2 MiB) from ``alloc`` (a FrameAllocator)."""
        return cls(mem, device_table=alloc.alloc(512), **options)

    @property
    def faults(self):
        """The logged events (the same list as ``events``; the name the other models use)."""
        return self.events

    def configure(self, device_id, *, pasid=None):
        """What the structures in memory select for (``device_id``, ``pasid``), read without
        the caches: a :class:`Config`, or the :class:`Fault` a request would meet in the DTE
        or the GCR3 table."""
        _check_device(device_id)
        if pasid is not None and (not isinstance(pasid, int) or not 0 <= pasid < 1 << 20):
            raise ValueError(f"pasid={pasid!r} is not allowed; allowed: None or 0 to 2**20-1")
        return _Translation(self, device_id, 0, pasid, "r", False, cached=False).configure()

    def dte_address(self, device_id):
        return self.device_table + DTE_SIZE * device_id

    def read_dte(self, device_id):
        """The decoded DTE of ``device_id`` as memory holds it now (no cache, no refs)."""
        _check_device(device_id)
        a = self.dte_address(device_id)
        return decode_dte([self.mem.read_u64(a + 8 * i) for i in range(4)])

    # -- translation -------------------------------------------------------------------------

    def translate(self, device_id, address, *, pasid=None, access="r", privileged=False):
        """Translate one request; returns a :class:`svmkit.Walk` with ``.cache`` (hit or
        miss per cache) and ``.event`` (the event logged, or None)."""
        _check_device(device_id)
        address = W._address(address, "address", 1 << 64)
        if access not in F.ACCESSES:
            raise ValueError(f"access={access!r} is not allowed; allowed: 'r', 'w', 'x'")
        if pasid is not None and (not isinstance(pasid, int) or not 0 <= pasid < 1 << 20):
            raise ValueError(f"pasid={pasid!r} is not allowed; allowed: None or 0 to 2**20-1")
        t = _Translation(self, device_id, address, pasid, access, bool(privileged))
        w = t.run()
        if w.fault is not None:
            ev = Event(w.fault.code, device_id, w.fault.address, w.fault.flags,
                       pasid if w.fault.flags & 1 else None, t.domain_id)
            w.event = ev
            suppressed = t.sa and ev.name == "IO_PAGE_FAULT"
            if not suppressed:
                self.events.append(ev)
        return w

    def translate_many(self, device_id, addresses, *, pasid=None, access="r"):
        """``(pa, code)`` arrays for many requests of one device and PASID: uint64 addresses
        (0 on a fault) and the event code of each fault (0 for success).

        The DTE and GCR3 entry are read once (:meth:`configure`); the page walks run
        compiled through :func:`svmkit.translate`. Like the hardware with every cache
        invalidated: the caches are neither used nor filled, and no event is logged."""
        import numpy as np
        from .. import walks as core
        _check_device(device_id)
        if access not in F.ACCESSES:
            raise ValueError(f"access={access!r} is not allowed; allowed: 'r', 'w', 'x'")
        arr = np.asarray(addresses)
        if arr.dtype.kind not in "iu" or arr.ndim != 1:
            raise ValueError("addresses must be a one-dimensional array of integer addresses")
        vas = arr.astype(np.uint64)
        pa = np.zeros(len(vas), dtype=np.uint64)
        code = np.zeros(len(vas), dtype=np.int32)
        cfg = self.configure(device_id, pasid=pasid)
        if isinstance(cfg, Fault):
            code[:] = cfg.code
            return pa, code
        if cfg.kind == "untranslated":
            return vas.copy(), code
        dte = self.read_dte(device_id)
        if not dte["iw" if access == "w" else "ir"]:
            code[:] = EVENT_CODES["IO_PAGE_FAULT"]
            return pa, code
        if cfg.kind == "pass-through":
            return vas.copy(), code
        if cfg.kind == "second":
            kw = dict(root=cfg.second_root, fmt="amd_v1", levels=cfg.second_levels)
        else:
            kw = dict(root=cfg.first_root, fmt="x86_64", levels=cfg.first_levels,
                      user=True)
            if cfg.kind == "nested":
                kw.update(second_root=cfg.second_root, second_fmt="amd_v1",
                          second_levels=cfg.second_levels)
        out, fault = core.translate(self.mem, vas, access=access,
                                    phys_bits=self.phys_bits, **kw)
        ok = fault == 0
        pa[ok] = out[ok]
        nonexistent = F.REASONS.index("non-existent-memory")
        code[~ok] = np.where((fault[~ok] & 15) == nonexistent,
                             EVENT_CODES["PAGE_TAB_HARDWARE_ERROR"],
                             EVENT_CODES["IO_PAGE_FAULT"])
        return pa, code

    # -- invalidation ------------------------------------------------------------------------

    def invalidate(self, cmd):
        """Execute one command (48882 2.4) against the caches."""
        if not isinstance(cmd, C.Command):
            raise ValueError(f"cmd={cmd!r} is not an svmkit.amdvi.commands.Command")
        self.commands.append(cmd)
        if cmd.name == "INVALIDATE_DEVTAB_ENTRY":
            self.dte_cache.drop(lambda k, v: k == cmd.device_id)
        elif cmd.name == "INVALIDATE_IOMMU_PAGES":
            base, size = cmd.range()
            did = cmd.domain_id

            def hit(k, v):
                kd, kp, shift, vpn = k
                lo, hi = vpn << shift, (vpn + 1) << shift
                overlaps = lo < base + size and base < hi
                if kd != did:
                    return False
                if cmd.gn:
                    return kp == cmd.pasid and overlaps
                # a host (GN=0) invalidation also drops the guest translations of the
                # domain: they were combined with host entries whose GPAs are unknown here
                return kp != -1 or overlaps
            self.iotlb.drop(hit)
            if cmd.gn:
                self.gcr3_cache.drop(lambda k, v: k == (did, cmd.pasid))
        elif cmd.name == "INVALIDATE_IOMMU_ALL":
            for c in (self.dte_cache, self.gcr3_cache, self.iotlb):
                c.drop()
        # COMPLETION_WAIT, INVALIDATE_IOTLB_PAGES (device TLB), INVALIDATE_INTERRUPT_TABLE
        # and the PPR commands change nothing this model caches.

    def cache_stats(self):
        return {name: {"hits": c.hits, "misses": c.misses, "entries": len(c)}
                for name, c in (("dte", self.dte_cache), ("gcr3", self.gcr3_cache),
                                ("iotlb", self.iotlb))}


def _state(cache, found):
    """What a lookup did, as the per-translation ``Walk.cache`` reports it (the words the
    VT-d model uses): "hit", "miss", or "off" for a disabled cache."""
    if not cache.enabled:
        return "off"
    return "miss" if found is None else "hit"


def _check_device(device_id):
    if isinstance(device_id, bool) or not isinstance(device_id, int) \
            or not 0 <= device_id <= 0xFFFF:
        raise ValueError(f"device_id={device_id!r} is not allowed; allowed: 0 to 0xffff "
                         "(bus << 8 | devfn)")


class _Translation:
    """One request, read top to bottom: DTE, then the host walk, or the GCR3 table and the
    guest walk (nested when the DTE's Mode is not 0)."""

    def __init__(self, iommu, device_id, address, pasid, access, privileged, cached=True):
        self.io, self.mem = iommu, iommu.mem
        if cached:
            self.dte_cache, self.gcr3_cache, self.iotlb = (iommu.dte_cache, iommu.gcr3_cache,
                                                           iommu.iotlb)
        else:
            self.dte_cache = self.gcr3_cache = self.iotlb = _Cache(1, False)
        self.device_id, self.address, self.pasid = device_id, address, pasid
        self.access, self.acc = access, F.ACCESSES.index(access)
        self.user = pasid is not None and not privileged
        self.refs, self.cache = [], {}
        self.domain_id, self.sa = 0, False
        self.mode = self.cr3 = self.gcr3_pa = None
        self.walk_info = {"fmt": "amd_v1", "levels": 0}

    # results
    def walk(self, ok, pa=None, size=None, fault=None, gpa=None):
        w = W.Walk(va=self.address, ok=ok, pa=pa, page_size=size, fault=fault,
                   refs=self.refs, gpa=gpa, access=self.access, cache=self.cache,
                   config=self.config(), **self.walk_info)
        w.event = None
        return w

    def config(self):
        """The :class:`Config` decoded so far (None before a usable DTE)."""
        cfg = getattr(self, "cfg", None)
        if cfg is None or self.mode is None:
            return None
        common = dict(device_id=self.device_id, pasid=self.pasid, domain_id=self.domain_id)
        dte_pa = self.io.dte_address(self.device_id)
        if not cfg["v"]:
            return Config(kind="untranslated", entry=dte_pa, entry_name="dte", **common)
        second = dict(second_root=cfg["host_pt_root"], second_levels=self.mode)
        if self.pasid is None:
            if self.mode == 0:
                return Config(kind="pass-through", entry=dte_pa, entry_name="dte", **common)
            return Config(kind="second", entry=dte_pa, entry_name="dte", **second, **common)
        if self.cr3 is None:
            return None
        first = dict(first_root=self.cr3, first_levels=GPM_LEVELS[cfg["gpm"]],
                     entry=self.gcr3_pa, entry_name="gcr3-entry")
        if self.mode == 0:
            return Config(kind="first", **first, **common)
        return Config(kind="nested", **first, **second, **common)

    def fault(self, stage, level, reason, name, address=None, *, present=None):
        code = EVENT_CODES[name]
        flags = 0
        if name in ("IO_PAGE_FAULT", "ILLEGAL_DEV_TABLE_ENTRY"):
            flags = io_page_fault_flags(reason, self.access, gn=self.pasid is not None,
                                        user=self.user, present=present)
        if name == "ILLEGAL_DEV_TABLE_ENTRY":
            # 48882 2.5.2 defines only GN, I, RW, RZ and TR for this event
            flags &= sum(1 << FLAGS[f] for f in ("gn", "i", "rw", "rz", "tr"))
        f = Fault(stage, level, reason, self.address if address is None else address, code,
                  self.access, name=name, flags=flags)
        return self.walk(False, fault=f)

    def ref(self, stage, level, address, value, structure, guest_level=None, **extra):
        self.refs.append(Ref(stage, level, address, value & U64, guest_level, structure,
                             **extra))

    def raw_refs(self, raw, fmt1, d1, fmt2, d2, locates=None):
        for st, lv, a, v, gl in raw:
            f, d = (fmt1, d1) if st == F.FIRST else (fmt2, d2)
            self.ref(F.STAGES[st], int(lv), int(a), int(v),
                     f.structure(lv, f.is_leaf(v, lv, d)), None if gl < 0 else int(gl),
                     locates=locates)

    def walk_fault(self, reason, stage, level, where):
        name = F.REASONS[reason]
        ev = "PAGE_TAB_HARDWARE_ERROR" if name == "non-existent-memory" else "IO_PAGE_FAULT"
        return self.fault(F.STAGES[stage], int(level), name, ev, int(where) & U64)

    # steps
    def run(self):
        err = self.dte()
        if err is not None:
            return err
        if not self.cfg["v"]:
            # 48882 2.2.2: V=0, the request passes untranslated
            self.walk_info = {"fmt": "pass-through", "levels": 0}
            return self.walk(True, self.address, 1 << 12)
        need_w = self.access == "w"
        if (need_w and not self.cfg["iw"]) or (not need_w and not self.cfg["ir"]):
            return self.fault("dte", 0, "permission", "IO_PAGE_FAULT")
        if self.pasid is not None and not self.cfg["gv"]:
            return self.fault("dte", 0, "pasid-disabled", "INVALID_DEVICE_REQUEST")
        hit = self.iotlb_lookup()
        if hit is not None:
            return hit
        if self.pasid is None:
            return self.host_only()
        return self.guest()

    def dte(self):
        """Read and check the DTE: None (``self.cfg``, ``self.mode``, ``self.d2`` set) or
        the faulting walk."""
        cfg = self.dte_cache.lookup(self.device_id)
        self.cache["dte"] = _state(self.dte_cache, cfg)
        if cfg is None:
            a = self.io.dte_address(self.device_id)
            if a + DTE_SIZE > self.mem.size:
                return self.fault("dte", 0, "non-existent-memory", "DEV_TAB_HARDWARE_ERROR")
            q = [self.mem.read_u64(a + 8 * i) for i in range(4)]
            self.ref("dte", 0, a, q[0], "dte", qwords=tuple(q))
            cfg = decode_dte(q)
            self.dte_cache.fill(self.device_id, cfg)
        self.domain_id, self.sa = cfg["domain_id"], bool(cfg["sa"])
        self.cfg, self.mode, self.d2 = cfg, None, None     # mode set once the DTE is usable
        if not cfg["v"]:
            self.mode = 0
            return None
        if cfg["reserved"]:
            return self.fault("dte", 0, "reserved-bit", "ILLEGAL_DEV_TABLE_ENTRY")
        if not cfg["tv"]:
            return self.fault("dte", 0, "not-present", "IO_PAGE_FAULT", present=False)
        mode = cfg["mode"]
        if mode not in (0, 1, 2, 3, 4, 5) or (cfg["gv"] and (cfg["glx"] == 3 or
                                                             cfg["gpm"] not in GPM_LEVELS)):
            # Mode 7, GLX 3 and GuestPagingMode 2/3 are reserved; Mode 6 is not modelled
            return self.fault("dte", 0, "invalid-entry", "ILLEGAL_DEV_TABLE_ENTRY")
        self.mode = mode
        self.d2 = amd_v1.FORMAT.descriptor(mode, self.io.phys_bits, had=bool(cfg["had"])) \
            if mode else None
        return None

    def configure(self):
        """The translation the structures select (no access check): a Config or a Fault."""
        err = self.dte()
        if err is None and self.pasid is not None and self.cfg["v"] and not self.cfg["gv"]:
            err = self.fault("dte", 0, "pasid-disabled", "INVALID_DEVICE_REQUEST")
        if err is not None:
            return err.fault
        if self.cfg["v"] and self.pasid is not None:
            err, _ = self.gcr3()
            if err is not None:
                return err.fault
        return self.config()

    def iotlb_key(self, shift):
        return (self.domain_id, -1 if self.pasid is None else self.pasid, shift,
                self.address >> shift)

    def iotlb_lookup(self):
        if self.pasid is None and self.mode == 0:
            self.cache["iotlb"] = "none"        # untranslated: nothing to cache
            return None
        if not self.iotlb.enabled:
            self.cache["iotlb"] = "off"
            return None
        right = (self.access, self.user)
        for shift in PAGE_SHIFTS:
            e = self.iotlb.peek(self.iotlb_key(shift))
            if e is not None and right in e[1]:
                self.iotlb.lookup(self.iotlb_key(shift))     # counts the hit, LRU
                self.cache["iotlb"] = "hit"
                pa = e[0] | (self.address & ((1 << shift) - 1))
                self.cr3, self.gcr3_pa = e[2]        # what the filling walk found
                self.set_info()
                return self.walk(True, pa, 1 << shift)
        self.iotlb.misses += 1
        self.cache["iotlb"] = "miss"
        return None

    def iotlb_fill(self, pa, size):
        shift = size.bit_length() - 1
        key = self.iotlb_key(shift)
        old = self.iotlb.peek(key)
        rights = (old[1] if old else frozenset()) | {(self.access, self.user)}
        # the guest CR3 and GCR3 entry ride along for Walk.config, not for translation
        self.iotlb.fill(key, (pa & ~(size - 1), rights, (self.cr3, self.gcr3_pa)))

    def set_info(self):
        if self.pasid is None:
            self.walk_info = {"fmt": "amd_v1", "levels": self.mode}
        else:
            self.walk_info = {"fmt": "x86_64", "levels": GPM_LEVELS[self.cfg["gpm"]],
                              "second_fmt": "amd_v1" if self.mode else None,
                              "second_levels": self.mode or None, "nested": bool(self.mode)}

    def host_only(self):
        self.set_info()
        if self.mode == 0:                      # translation disabled: untranslated
            self.walk_info = {"fmt": "pass-through", "levels": 0}
            return self.walk(True, self.address, 1 << 12)
        raw = []
        reason, stage, level, where, out, size = reference.stage_walk(
            self.mem, self.address, self.cfg["host_pt_root"], self.d2, self.acc, False,
            True, raw, F.SECOND, -1)
        self.raw_refs(raw, None, None, amd_v1.FORMAT, self.d2)
        if reason:
            return self.walk_fault(reason, stage, level, where)
        self.iotlb_fill(out, size)
        return self.walk(True, out, size)

    def host(self, gpa, locates):
        """Host-translate a GPA the IOMMU must read (a GCR3 table entry): (fault, hpa)."""
        if self.mode == 0:
            return None, gpa
        raw = []
        reason, stage, level, where, out, _ = reference.stage_walk(
            self.mem, gpa, self.cfg["host_pt_root"], self.d2, F.R, False, True, raw,
            F.SECOND, -1)
        self.raw_refs(raw, None, None, amd_v1.FORMAT, self.d2, locates)
        if reason:
            return self.walk_fault(reason, stage, level, gpa), 0
        return None, out

    def gcr3(self):
        """The guest CR3 for the PASID: from the GCR3 cache or a GCR3 table walk."""
        key = (self.domain_id, self.pasid)
        cached = self.gcr3_cache.lookup(key)
        self.cache["gcr3"] = _state(self.gcr3_cache, cached)
        if cached is not None:
            self.cr3, self.gcr3_pa = cached
            return None, self.cr3
        glx = self.cfg["glx"]
        if self.pasid >> (9 * (glx + 1)):
            return self.fault("gcr3", glx, "pasid-range", "IO_PAGE_FAULT"), 0
        table = self.cfg["gcr3_root"]
        for level in range(glx, -1, -1):
            name = "gcr3-entry" if level == 0 else "gcr3-table-entry"
            err, hpa = self.host(table + 8 * gcr3_index(self.pasid, level), name)
            if err is not None:
                return err, 0
            if hpa + 8 > self.mem.size:
                return self.fault("gcr3", level, "non-existent-memory",
                                  "PAGE_TAB_HARDWARE_ERROR"), 0
            e = self.mem.read_u64(hpa)
            self.ref("gcr3", level, hpa, e, name)
            if not e & GCR3_V:
                return self.fault("gcr3", level, "not-present", "IO_PAGE_FAULT",
                                  present=False), 0
            if e & GCR3_RESERVED:
                return self.fault("gcr3", level, "reserved-bit", "IO_PAGE_FAULT"), 0
            table = e & GCR3_ADDR
        self.cr3, self.gcr3_pa = table, hpa
        self.gcr3_cache.fill(key, (table, hpa))
        return None, table

    def guest(self):
        self.set_info()
        err, cr3 = self.gcr3()
        if err is not None:
            return err
        levels = GPM_LEVELS[self.cfg["gpm"]]
        d1 = x86_64.FORMAT.descriptor(levels, self.io.phys_bits)
        raw = []
        nested = self.mode != 0
        reason, stage, level, where, pa, size, gpa = reference.walk(
            self.mem, self.address, cr3, d1, self.cfg["host_pt_root"] if nested else 0,
            self.d2 if nested else d1, nested, self.acc, self.user, True, raw)
        self.raw_refs(raw, x86_64.FORMAT, d1, amd_v1.FORMAT, self.d2)
        if reason:
            return self.walk_fault(reason, stage, level, where)
        self.iotlb_fill(pa, size)
        return self.walk(True, pa, size, gpa=gpa if nested else None)

