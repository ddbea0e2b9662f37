"""VT-d translation caches (VT-d §6.2) and their configuration.

- context-cache (§6.2.2): context entries, tagged by source-id; in
  scalable mode (and VT-d 2.x extended mode) it holds the decoded context
  entry. Invalidated by context-cache invalidation (global, domain, device).
- PASID-cache (§6.2.3): PASID-table entries, tagged by the domain-id the
  entry holds and the PASID (with the source-id, since two devices may use
  the same PASID number through different PASID tables). Invalidated by
  PASID-cache invalidation (global, domain, PASID within domain).
- IOTLB (§6.2.4): translations, tagged by domain-id, PASID (RID_PASID for
  requests without one; -1 in legacy mode), the input page and its size.
  First-level translations with G=1 are global: they match any PASID of
  the domain and survive PASID-selective "all non-global" invalidation
  (§6.5.2.4). Each entry keeps the rights of the walk that filled it and
  whether the page is already dirty; a request the entry cannot satisfy
  walks the tables again (which then reports the fault, if any).

- paging-structure caches (§6.2.5): `Cache` objects in `Iommu` (fl_psc,
  sl_psc); see `Iommu._psc_lookup`.

The IOTLB lives in numpy arrays so that `translate_many` (numba) and
`translate` (Python) share it. Replacement: "lru", "fifo" or "random".
"""
from __future__ import annotations

import random as _random
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .._jit import njit

__all__ = ["CacheConfig", "Cache", "Iotlb", "POLICIES", "SIZE_SHIFTS"]

POLICIES = {"lru": 0, "fifo": 1, "random": 2}
#: IOTLB page sizes: one sub-array each, probed in this order.
SIZE_SHIFTS = (12, 21, 30)

# IOTLB flag bits
F_VALID, F_R, F_W, F_X, F_U, F_DIRTY, F_GLOBAL, F_WSUP, F_FL = (1 << i for i in range(9))
# F_WSUP: a supervisor write without WPE may write (first-level R/W not
# enforced); F_FL: filled by a first-level or nested walk (PGTT 001b/011b)


@dataclass(frozen=True)
class CacheConfig:
    """Sizes and replacement of the modelled caches. `enabled=False` turns
    them all off (every translation walks every structure)."""
    enabled: bool = True
    context_entries: int = 64
    pasid_entries: int = 64
    iotlb_sets: int = 64
    iotlb_ways: int = 8
    psc_entries: int = 32
    policy: str = "lru"
    seed: int = 0

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise ValueError(f"policy: {self.policy!r}; allowed: {sorted(POLICIES)}")
        for name in ("context_entries", "pasid_entries", "iotlb_ways", "psc_entries"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: at least 1")
        s = self.iotlb_sets
        if s < 1 or s & (s - 1):
            raise ValueError("iotlb_sets: a power of two")


class Cache:
    """A fully associative cache of `entries` items with a replacement
    policy; keys are tuples, values anything. Counts hits and misses."""

    def __init__(self, entries, policy="lru", seed=0, enabled=True):
        if policy not in POLICIES:
            raise ValueError(f"policy: {policy!r}; allowed: {sorted(POLICIES)}")
        self.entries, self.policy, self.enabled = entries, policy, enabled
        self._d = OrderedDict()
        self._rng = _random.Random(seed)
        self.hits = self.misses = 0

    def lookup(self, key, count=True):
        """The cached value or None (counting a hit or a miss, unless
        `count` is False: a peek that neither counts nor refreshes)."""
        if not self.enabled:
            return None
        v = self._d.get(key)
        if not count:
            return v
        if v is None:
            self.misses += 1
            return None
        self.hits += 1
        if self.policy == "lru":
            self._d.move_to_end(key)
        return v

    def fill(self, key, value):
        if not self.enabled:
            return
        if key not in self._d and len(self._d) >= self.entries:
            if self.policy == "random":
                victim = self._rng.choice(list(self._d))
                del self._d[victim]
            else:
                self._d.popitem(last=False)
        self._d[key] = value
        self._d.move_to_end(key)

    def invalidate(self, pred=None):
        """Drop the entries for which pred(key, value) is true (all if None);
        returns how many were dropped."""
        if pred is None:
            n = len(self._d)
            self._d.clear()
            return n
        gone = [k for k, v in self._d.items() if pred(k, v)]
        for k in gone:
            del self._d[k]
        return len(gone)

    def __len__(self):
        return len(self._d)

    def items(self):
        return list(self._d.items())


# --- IOTLB ----------------------------------------------------------------

@njit
def iotlb_lookup(tag_did, tag_pasid, tag_vpn, pa_base, flags, stamp, clock,
                 policy, did, pasid, addr, need, dirty_needed):
    """Find a translation of `addr` for (did, pasid) whose rights cover
    `need` (flag bits) and, if `dirty_needed`, that is already dirty.

    Returns (hit, pa, page_shift); refreshes the LRU stamp on a hit."""
    nsets = tag_did.shape[1]
    for s in range(3):
        shift = 12 + 9 * s
        vpn = addr >> shift
        row = vpn & (nsets - 1)
        for w in range(tag_did.shape[2]):
            f = flags[s, row, w]
            if f & 1 == 0:
                continue
            if tag_vpn[s, row, w] != vpn or tag_did[s, row, w] != did:
                continue
            if tag_pasid[s, row, w] != pasid and f & 64 == 0:
                continue
            if f & need != need:
                return False, np.int64(0), np.int64(0)
            if dirty_needed and f & 32 == 0:
                return False, np.int64(0), np.int64(0)
            if policy == 0:
                clock[0] += 1
                stamp[s, row, w] = clock[0]
            return True, pa_base[s, row, w] | (addr & ((np.int64(1) << shift) - 1)), np.int64(shift)
    return False, np.int64(0), np.int64(0)


@njit
def iotlb_fill(tag_did, tag_pasid, tag_vpn, pa_base, flags, stamp, clock, rng,
               policy, did, pasid, addr, shift, pa, fl):
    """Insert a translation (replacing a stale one of the same tag, else a
    free way, else the policy's victim)."""
    s = (shift - 12) // 9
    vpn = addr >> shift
    row = vpn & (tag_did.shape[1] - 1)
    ways = tag_did.shape[2]
    victim = -1
    for w in range(ways):
        if flags[s, row, w] & 1 and tag_vpn[s, row, w] == vpn and \
                tag_did[s, row, w] == did and tag_pasid[s, row, w] == pasid:
            victim = w
            break
    if victim < 0:
        for w in range(ways):
            if flags[s, row, w] & 1 == 0:
                victim = w
                break
    if victim < 0:
        if policy == 2:
            x = rng[0]
            x ^= (x << 13) & np.int64(0x7FFFFFFFFFFFFFFF)
            x ^= x >> 7
            x ^= (x << 17) & np.int64(0x7FFFFFFFFFFFFFFF)
            rng[0] = x
            victim = (x & 0x7FFFFFFF) % ways
        else:
            victim = 0
            for w in range(1, ways):
                if stamp[s, row, w] < stamp[s, row, victim]:
                    victim = w
    clock[0] += 1
    tag_did[s, row, victim] = did
    tag_pasid[s, row, victim] = pasid
    tag_vpn[s, row, victim] = vpn
    pa_base[s, row, victim] = pa & ~((np.int64(1) << shift) - 1)
    flags[s, row, victim] = fl | 1
    stamp[s, row, victim] = clock[0]


def _i64(addr):
    """A 64-bit address as the int64 the arrays (and translate_many) hold."""
    return addr - (1 << 64) if addr >> 63 else addr


class Iotlb:
    """The IOTLB: three set-associative arrays (4 KiB, 2 MiB, 1 GiB pages),
    each `sets` x `ways`. All state is in numpy arrays (`arrays()`)."""

    def __init__(self, sets=64, ways=8, policy="lru", seed=0, enabled=True):
        if policy not in POLICIES:
            raise ValueError(f"policy: {policy!r}; allowed: {sorted(POLICIES)}")
        shape = (3, sets, ways)
        self.tag_did = np.zeros(shape, np.int64)
        self.tag_pasid = np.zeros(shape, np.int64)
        self.tag_vpn = np.zeros(shape, np.int64)
        self.pa_base = np.zeros(shape, np.int64)
        self.flags = np.zeros(shape, np.int64)
        self.stamp = np.zeros(shape, np.int64)
        self.clock = np.zeros(1, np.int64)
        self.rng = np.array([seed * 2654435761 + 88172645463325252 & 0x7FFFFFFFFFFFFFFF or 1],
                            np.int64)
        self.policy = policy
        self.policy_id = POLICIES[policy]
        self.enabled = enabled
        self.hits = self.misses = 0

    def arrays(self):
        return (self.tag_did, self.tag_pasid, self.tag_vpn, self.pa_base, self.flags,
                self.stamp, self.clock)

    def lookup(self, did, pasid, addr, need, dirty_needed):
        """(pa, page_size) of a usable cached translation, or None."""
        if not self.enabled:
            return None
        hit, pa, shift = iotlb_lookup(*self.arrays(), self.policy_id, did, pasid, _i64(addr),
                                      need, dirty_needed)
        if hit:
            self.hits += 1
            return int(pa), 1 << int(shift)
        self.misses += 1
        return None

    def fill(self, did, pasid, addr, page_size, pa, fl):
        if not self.enabled:
            return
        shift = page_size.bit_length() - 1
        if shift not in SIZE_SHIFTS:
            raise ValueError(f"page_size: {page_size:#x}; allowed: 4 KiB, 2 MiB, 1 GiB")
        iotlb_fill(*self.arrays(), self.rng, self.policy_id, did, pasid, _i64(addr), shift,
                   pa, fl)

    def entries(self):
        """The valid entries as dicts (for display and tests)."""
        out = []
        for s, row, w in zip(*np.nonzero(self.flags & F_VALID)):
            shift = SIZE_SHIFTS[s]
            out.append({"did": int(self.tag_did[s, row, w]),
                        "pasid": int(self.tag_pasid[s, row, w]),
                        "address": int(self.tag_vpn[s, row, w]) << shift,
                        "page_size": 1 << shift, "pa": int(self.pa_base[s, row, w]),
                        "flags": int(self.flags[s, row, w])})
        return out

    def __len__(self):
        return int(np.count_nonzero(self.flags & F_VALID))

    def invalidate(self, *, did=None, pasid=None, addr=None, am=0, keep_global=False,
                   first_level=None):
        """Drop entries matching every given tag: `did`, `pasid` (global
        entries match any PASID of their domain unless `keep_global`, which
        keeps them), the 2^am pages at `addr` (an entry overlapping the
        range goes), and with `first_level` True/False only entries filled
        by first-level/nested walks or only the others. Returns how many
        were dropped."""
        sel = (self.flags & F_VALID) != 0
        if first_level is not None:
            fl = (self.flags & F_FL) != 0
            sel &= fl if first_level else ~fl
        if did is not None:
            sel &= self.tag_did == did
        if pasid is not None:
            glob = (self.flags & F_GLOBAL) != 0
            if keep_global:
                sel &= (self.tag_pasid == pasid) & ~glob
            else:
                sel &= (self.tag_pasid == pasid) | glob
        if addr is not None:
            lo = addr & ~((1 << (12 + am)) - 1)
            hi = lo + (1 << (12 + am))
            for s, shift in enumerate(SIZE_SHIFTS):
                base = self.tag_vpn[s] << shift
                sel[s] &= (base < hi) & (base + (1 << shift) > lo)
        n = int(np.count_nonzero(sel))
        self.flags[sel] = 0
        return n
