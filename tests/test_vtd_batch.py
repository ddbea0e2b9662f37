"""translate_many (compiled, IOTLB in the loop) agrees with translate."""

import numpy as np
import pytest

from svmkit.vtd import CacheConfig
from test_vtd_rig import Rig

SID = 0x0310


def system(kind, caches=None):
    rig = Rig(caches=caches if caches is not None else CacheConfig(iotlb_sets=4, iotlb_ways=2))
    rig.drv.attach(SID)
    if kind == "nested":
        sl, t = rig.guest(frames=256)
        for i in range(0, 64):
            t.map(0x40_0000 + i * 0x1000, (i * 7 % 200 + 20) * 0x1000, write=i % 3 != 0)
        t.map(0x4000_0000, 0x20_0000, 1 << 21)
        rig.drv.bind(SID, 1, first_root=t.root, nested=True, second_root=sl.root)
    elif kind == "first":
        t = rig.fl()
        for i in range(0, 64):
            t.map(0x40_0000 + i * 0x1000, 0x100_0000 + i * 0x3000, write=i % 3 != 0,
                  user=i % 5 != 0)
        t.map(0x4000_0000, 0x20_0000, 1 << 21, g=True)
        rig.drv.bind(SID, 1, first_root=t.root)
    elif kind == "second":
        t = rig.sl(3)
        for i in range(0, 64):
            t.map(0x40_0000 + i * 0x1000, 0x100_0000 + i * 0x3000, w=i % 3 != 0)
        t.map(0x4000_0000, 0x20_0000, 1 << 21)
        rig.drv.bind_second(SID, 1, second_root=t.root, second_levels=3)
    else:
        rig.drv.bind_pass_through(SID, 1)
    return rig


def addresses(seed, n=600):
    rng = np.random.default_rng(seed)
    va = 0x40_0000 + rng.integers(0, 80, n) * 0x1000 + rng.integers(0, 4096, n)
    big = 0x4000_0000 + rng.integers(0, 1 << 21, n)
    far = rng.integers(0, 1 << 62, n, dtype=np.int64)
    pick = rng.integers(0, 10, n)
    return np.where(pick < 7, va, np.where(pick < 9, big, far)).astype(np.uint64)


@pytest.mark.parametrize("kind", ["first", "second", "nested", "pass-through"])
@pytest.mark.parametrize("access", ["r", "w"])
def test_batch_matches_one_by_one(kind, access):
    vas = addresses(hash((kind, access)) % 1000)
    a, b = system(kind), system(kind)
    pa, code = a.iommu.translate_many(SID, vas, pasid=1, access=access)
    for i, va in enumerate(vas):
        w = b.iommu.translate(SID, int(va), pasid=1, access=access)
        assert (int(pa[i]), int(code[i])) == ((w.pa, 0) if w.ok else (0, w.fault.code)), i
    assert a.iommu.iotlb.hits == b.iommu.iotlb.hits
    assert a.iommu.iotlb.misses == b.iommu.iotlb.misses
    assert (a.iommu.iotlb.flags == b.iommu.iotlb.flags).all()
    assert [f.code for f in a.iommu.faults] == [f.code for f in b.iommu.faults][:256]
    assert 0 < np.count_nonzero(code == 0) < len(vas) or kind == "pass-through"


def test_batch_shares_the_iotlb_with_translate():
    rig = system("nested")
    rig.iommu.translate_many(SID, np.array([0x40_0000], np.uint64), pasid=1)
    w = rig.iommu.translate(SID, 0x40_0000, pasid=1)
    assert w.cache["iotlb"] == "hit"


def test_batch_structure_fault_and_arguments():
    rig = system("first")
    pa, code = rig.iommu.translate_many(SID, np.arange(4, dtype=np.uint64) << 12, pasid=9)
    assert (code == 0x59).all() and (pa == 0).all()
    with pytest.raises(ValueError, match="addresses"):
        rig.iommu.translate_many(SID, [[1]], pasid=1)
    with pytest.raises(ValueError, match="access"):
        rig.iommu.translate_many(SID, [1], pasid=1, access="q")
    pa, code = rig.iommu.translate_many(SID, np.array([], np.uint64), pasid=1)
    assert len(pa) == 0


@pytest.mark.parametrize("kind", ["second", "nested"])
def test_batch_matches_one_by_one_above_haw(kind):
    """Second-level entries whose address is above HAW (0x84) next to ones
    with another reserved bit (0x7A) and good ones: the same numbers, PAs
    and IOTLB state from the batch as from translate."""
    from svmkit.pagetable import PageTable
    from test_vtd_rig import GUEST_BASE

    def build():
        rig = Rig(haw=40, sl_large_pages=1,
                  caches=CacheConfig(iotlb_sets=4, iotlb_ways=2))
        sl = PageTable(rig.mem, rig.alloc.alloc, fmt="vtd_sl", levels=4, phys_bits=52)
        for i in range(64):
            pa = (1 << 41) + i * 0x1000 if i % 4 == 0 else 0x100_0000 + i * 0x3000
            sl.map(0x40_0000 + i * 0x1000, pa, w=i % 3 != 0)
        sl.map(0x4000_0000, 1 << 41, 1 << 30)              # PS reserved, and above HAW
        rig.drv.attach(SID)
        if kind == "second":
            rig.drv.bind_second(SID, 1, second_root=sl.root)
        else:
            for i in range(32):
                sl.map(i * 0x1000, GUEST_BASE + i * 0x1000)
            free = list(range(31 * 0x1000, 0, -0x1000))
            t = PageTable(rig.mem, free.pop, fmt="x86_64", levels=4,
                          to_host=lambda g: GUEST_BASE + g)
            for i in range(80):
                t.map(0x40_0000 + i * 0x1000, 0x40_0000 + i * 0x1000)
            t.map(0x4000_0000, 0x4000_0000, 1 << 30)
            rig.drv.bind(SID, 1, first_root=t.root, nested=True, second_root=sl.root)
        return rig

    rng = np.random.default_rng(7)
    vas = np.where(rng.integers(0, 10, 400) < 8,
                   0x40_0000 + rng.integers(0, 80, 400) * 0x1000,
                   0x4000_0000 + rng.integers(0, 1 << 21, 400)).astype(np.uint64)
    for access in ("r", "w"):
        a, b = build(), build()
        pa, code = a.iommu.translate_many(SID, vas, pasid=1, access=access)
        for i, va in enumerate(vas):
            w = b.iommu.translate(SID, int(va), pasid=1, access=access)
            assert (int(pa[i]), int(code[i])) == ((w.pa, 0) if w.ok else (0, w.fault.code)), i
        assert {0, 0x84, 0x7A} <= set(code.tolist())
        assert a.iommu.iotlb.hits == b.iommu.iotlb.hits
        assert (a.iommu.iotlb.flags == b.iommu.iotlb.flags).all()
        assert [f.code for f in a.iommu.faults] == [f.code for f in b.iommu.faults][:256]
