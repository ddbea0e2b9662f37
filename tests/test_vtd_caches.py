"""Caches: a change without the right invalidation leaves a stale
translation that keeps being used; after the right one it is gone."""

import pytest

from svmkit.vtd import (CacheConfig, ContextCacheInv, IotlbInv, PasidCacheInv,
                        PasidIotlbInv)
from svmkit.vtd.caches import Cache, Iotlb
from test_vtd_rig import GUEST_BASE, Rig

SID = 0x0310


def system(**kw):
    """PASID 1: first-level table `fl` (0x1000 -> 0x9000, 0x2000 -> 0xA000),
    PASID 2: second-level `sl` (same mappings), on a driver that does
    NOT execute its invalidations (the tests issue them)."""
    rig = Rig(invalidate=False, **kw)
    fl, sl = rig.fl(), rig.sl()
    for t in (fl, sl):
        t.map(0x1000, 0x9000)
        t.map(0x2000, 0xA000)
    rig.drv.attach(SID, did=1)
    rig.drv.bind(SID, 1, first_root=fl.root, did=10)
    rig.drv.bind_second(SID, 2, second_root=sl.root, did=20)
    return rig, fl, sl


def pa(rig, va, pasid, **kw):
    w = rig.iommu.translate(SID, va, pasid=pasid, **kw)
    return w.pa if w.ok else w.fault.code


def test_iotlb_first_level_stale_until_pasid_based_invalidation():
    rig, fl, sl = system()
    assert pa(rig, 0x1000, 1) == 0x9000
    slot = fl.unmap(0x1000)
    fl.map(0x1000, 0xC000)
    assert pa(rig, 0x1000, 1) == 0x9000                  # stale, from the IOTLB
    # the wrong invalidations leave it: another PASID, another domain, a
    # page-selective IOTLB invalidation (second-level mappings only)
    rig.iommu.invalidate(PasidIotlbInv("page", did=10, pasid=2, addr=0x1000))
    rig.iommu.invalidate(PasidIotlbInv("page", did=20, pasid=1, addr=0x1000))
    rig.iommu.invalidate(IotlbInv("page", did=10, addr=0x1000))
    rig.iommu.invalidate(PasidCacheInv("pasid", did=10, pasid=1))
    assert pa(rig, 0x1000, 1) == 0x9000
    before = len(rig.iommu.iotlb)
    rig.iommu.invalidate(PasidIotlbInv("page", did=10, pasid=1, addr=0x1000))
    assert len(rig.iommu.iotlb) == before - 1
    assert pa(rig, 0x1000, 1) == 0xC000
    assert slot is not None


@pytest.mark.parametrize("desc", [
    PasidIotlbInv("pasid", did=10, pasid=1),
    IotlbInv("domain", did=10),
    IotlbInv("global"),
])
def test_iotlb_first_level_coarser_invalidations(desc):
    rig, fl, sl = system()
    pa(rig, 0x1000, 1)
    fl.unmap(0x1000)
    assert pa(rig, 0x1000, 1) == 0x9000
    rig.iommu.invalidate(desc)
    assert pa(rig, 0x1000, 1) == 0x71                   # now not present


def test_iotlb_second_level_page_selective():
    rig, fl, sl = system()
    assert pa(rig, 0x2000, 2) == 0xA000
    sl.unmap(0x2000)
    assert pa(rig, 0x2000, 2) == 0xA000
    rig.iommu.invalidate(PasidIotlbInv("page", did=20, pasid=2, addr=0x2000))  # FL only
    rig.iommu.invalidate(IotlbInv("page", did=20, addr=0x3000))             # other page
    assert pa(rig, 0x2000, 2) == 0xA000
    rig.iommu.invalidate(IotlbInv("page", did=20, addr=0x0000, am=2))       # 0x0-0x3fff
    assert pa(rig, 0x2000, 2) == 0x79


def test_nested_second_level_change_needs_domain_invalidation():
    """The IOTLB is tagged by the input address (the guest VA): a
    page-selective invalidation of the GPA does not find it."""
    rig = Rig(invalidate=False)
    sl, gpt = rig.guest()
    gpt.map(0x40_0000, 0x5000)
    rig.drv.attach(SID, did=1)
    rig.drv.bind(SID, 3, first_root=gpt.root, nested=True, second_root=sl.root, did=30)
    assert pa(rig, 0x40_0000, 3) == GUEST_BASE + 0x5000
    sl.unmap(0x5000)
    sl.map(0x5000, 0x77000)
    ops = rig.drv.invalidate_range(SID, 3, 0x5000, second_level=True)
    assert [d.name for d in ops.invalidations] == ["iotlb_inv_dsc"]
    assert ops.invalidations[0].granularity == "domain"
    rig.iommu.invalidate(IotlbInv("page", did=30, addr=0x5000))
    assert pa(rig, 0x40_0000, 3) == GUEST_BASE + 0x5000      # still stale
    rig.iommu.invalidate(ops.invalidations[0])
    assert pa(rig, 0x40_0000, 3) == 0x77000


def test_global_pages_survive_pasid_selective_invalidation():
    rig, fl, sl = system()
    fl.map(0x3000, 0xD000, g=True)
    rig.drv.bind(SID, 4, first_root=fl.root, did=10)          # same table, same domain
    assert pa(rig, 0x3000, 1) == 0xD000
    assert rig.iommu.translate(SID, 0x3000, pasid=4).cache["iotlb"] == "hit"  # global
    fl.unmap(0x3000)
    rig.iommu.invalidate(PasidIotlbInv("pasid", did=10, pasid=1))
    assert pa(rig, 0x3000, 1) == 0xD000                       # global: kept
    rig.iommu.invalidate(PasidIotlbInv("page", did=10, pasid=1, addr=0x3000))
    assert pa(rig, 0x3000, 1) == 0x71


def test_pasid_cache_stale_until_pasid_cache_invalidation():
    rig, fl, sl = system()
    fl2 = rig.fl()
    fl2.map(0x5000, 0xE000)
    assert pa(rig, 0x1000, 1) == 0x9000
    ops = rig.drv.modify(SID, 1, first_root=fl2.root)
    names = [d.name for d in ops.invalidations]
    assert names == ["pc_inv_dsc", "p_iotlb_inv_dsc"]
    # the PASID cache still holds the old FLPTPTR: a new address walks the old table
    assert pa(rig, 0x5000, 1) == 0x71
    assert pa(rig, 0x2000, 1) == 0xA000
    rig.iommu.invalidate(PasidCacheInv("pasid", did=99, pasid=1))   # wrong domain
    assert pa(rig, 0x5000, 1) == 0x71
    rig.iommu.invalidate(ops.invalidations[0])
    assert rig.iommu.translate(SID, 0x5000, pasid=1).config.first_root == fl2.root
    # the new FLPTPTR is used, but the first-level paging-structure cache
    # (tagged by DID and PASID) still holds the old table's upper entries
    assert pa(rig, 0x5000, 1) == 0x71
    # and the IOTLB the old table's translations
    assert pa(rig, 0x1000, 1) == 0x9000
    rig.iommu.invalidate(ops.invalidations[1])
    assert pa(rig, 0x5000, 1) == 0xE000
    assert pa(rig, 0x1000, 1) == 0x71


def test_first_level_paging_structure_cache():
    """Re-pointing a PDPTE at another page directory: the PDPTE cached in
    the paging-structure cache keeps the old one until a PASID-based
    invalidation without IH."""
    rig, fl, sl = system()
    assert pa(rig, 0x1000, 1) == 0x9000
    w = rig.iommu.translate(SID, 0x2000, pasid=1)
    assert w.cache["first-psc"] == "hit pde" and len(w.refs) == 1      # only the PTE
    fl2 = rig.fl()
    fl2.map(0x1000, 0xF000)
    pdpte = fl2.root                                     # steal fl2's PML4E -> PDPT
    fl_pml4e = rig.mem.read_u64(fl.root)
    rig.mem.write_u64(fl.root, rig.mem.read_u64(fl2.root))
    w = rig.iommu.translate(SID, 0x1000, pasid=1, access="w")   # IOTLB: clean, walks
    assert w.pa == 0x9000 and w.cache["first-psc"] == "hit pde"
    rig.iommu.invalidate(PasidIotlbInv("page", did=10, pasid=1, addr=0x1000, ih=1))
    assert pa(rig, 0x1000, 1) == 0x9000                  # IH=1: PSC kept, stale
    rig.iommu.invalidate(PasidIotlbInv("page", did=10, pasid=1, addr=0x1000))
    w = rig.iommu.translate(SID, 0x1000, pasid=1)
    assert w.pa == 0xF000 and w.cache["first-psc"] == "miss" and len(w.refs) == 4
    assert fl_pml4e and pdpte


def test_second_level_paging_structure_cache_and_nested_combined_entries():
    rig = Rig(invalidate=False)
    sl, gpt = rig.guest()
    gpt.map(0x40_0000, 0x5000)
    gpt.map(0x40_1000, 0x6000)
    rig.drv.attach(SID, did=1)
    rig.drv.bind(SID, 3, first_root=gpt.root, nested=True, second_root=sl.root, did=30)
    w = rig.iommu.translate(SID, 0x40_0000, pasid=3)
    # the guest's tables sit in neighbouring frames: after the first
    # second-level walk, the SL-PML4E..SL-PDE come from the second-level
    # paging-structure cache and each later SL walk reads only the SL-PTE
    stages = [r.stage for r in w.refs[4:]]
    assert stages == ["second"] * 4 + ["first"] + ["second", "first"] * 3 + ["second"]
    assert w.cache["second-psc"] == 4                    # SL walks that started cached
    w = rig.iommu.translate(SID, 0x40_1000, pasid=3)
    # the PDE comes from a nested combined entry, which also holds where
    # the guest's page table sits in host memory: no SL walk to find it
    assert w.cache["first-psc"] == "hit pde" and w.cache["combined"] == "hit"
    assert [r.structure for r in w.refs] == ["pte", "sl-pte"]
    assert w.pa == GUEST_BASE + 0x6000
    # the host moves the guest's page-table frame (a second-level change)
    pt_gpa = (w.refs[0].address & ~0xFFF) - GUEST_BASE
    new_hpa = rig.alloc.alloc()
    rig.mem.write(new_hpa, rig.mem.read(GUEST_BASE + pt_gpa, 4096))
    rig.mem.write_u64(new_hpa + 8, 0x7000 | 7)           # the copy maps 0x40_1000 elsewhere
    sl.unmap(pt_gpa)
    sl.map(pt_gpa, new_hpa)
    rig.iommu.invalidate(IotlbInv("page", did=30, addr=0x40_1000, ih=1))  # leaf only
    rig.iommu.invalidate(PasidIotlbInv("page", did=30, pasid=3, addr=0x40_1000, ih=1))
    assert pa(rig, 0x40_1000, 3) == GUEST_BASE + 0x6000  # combined entry: old frame
    rig.iommu.invalidate(IotlbInv("domain", did=30))
    assert pa(rig, 0x40_1000, 3) == GUEST_BASE + 0x7000


def test_iotlb_domain_invalidation_drops_paging_structure_caches():
    rig, fl, sl = system()
    pa(rig, 0x1000, 1)
    pa(rig, 0x1000, 2)
    assert len(rig.iommu.fl_psc) == 3 and len(rig.iommu.sl_psc) == 3
    rig.iommu.invalidate(IotlbInv("domain", did=20))
    assert len(rig.iommu.fl_psc) == 3 and len(rig.iommu.sl_psc) == 0
    rig.iommu.invalidate(IotlbInv("global"))
    assert len(rig.iommu.fl_psc) == 0


def test_switching_pgtt_without_invalidation_keeps_old_type():
    rig, fl, sl = system()
    sl.map(0x3000, 0xF000)
    assert pa(rig, 0x1000, 1) == 0x9000
    rig.drv.modify(SID, 1, pgtt="second", second_root=sl.root, second_levels=4)
    assert pa(rig, 0x3000, 1) == 0x71                   # still first-level (cached entry)
    rig.iommu.invalidate(PasidCacheInv("domain", did=10))
    assert pa(rig, 0x3000, 1) == 0xF000


def test_context_cache_stale_until_context_invalidation():
    rig, fl, sl = system()
    assert pa(rig, 0x1000, 1) == 0x9000
    refs = rig.iommu.translate(SID, 0x1000, pasid=7).refs
    assert refs[0].structure == "pasid-directory-entry"     # context from the cache
    ops = rig.drv.detach(SID)
    names = [d.name for d in ops.invalidations]
    assert names[0] == "cc_inv_dsc" and "pc_inv_dsc" in names and "iotlb_inv_dsc" in names
    assert pa(rig, 0x2000, 1) == 0xA000          # context, PASID cache and IOTLB stale
    rig.iommu.invalidate(ContextCacheInv("device", sid=SID ^ 1))     # other function
    rig.iommu.invalidate(PasidCacheInv("global"))
    rig.iommu.invalidate(IotlbInv("global"))
    w = rig.iommu.translate(SID, 0x2000, pasid=1)
    assert w.ok and w.cache["context"] == "hit"  # the context entry is still cached
    rig.iommu.invalidate(ContextCacheInv("device", sid=SID ^ 1, fm=1))   # masks bit 0
    assert pa(rig, 0x2000, 1) == 0x41


def test_context_cache_domain_and_global():
    rig, fl, sl = system()
    pa(rig, 0x1000, 1)
    assert len(rig.iommu.context_cache) == 1
    rig.iommu.invalidate(ContextCacheInv("domain", did=1))
    assert len(rig.iommu.context_cache) == 0
    pa(rig, 0x1000, 1)
    rig.iommu.invalidate(ContextCacheInv("global"))
    assert len(rig.iommu.context_cache) == 0


def test_driver_that_invalidates_leaves_nothing_stale():
    rig = Rig()                                   # invalidate=True
    fl, fl2 = rig.fl(), rig.fl()
    fl.map(0x1000, 0x9000)
    fl2.map(0x1000, 0xB000)
    rig.drv.attach(SID)
    rig.drv.bind(SID, 1, first_root=fl.root)
    assert pa(rig, 0x1000, 1) == 0x9000
    rig.drv.modify(SID, 1, first_root=fl2.root)
    assert pa(rig, 0x1000, 1) == 0xB000
    fl2.unmap(0x1000)
    rig.drv.invalidate_range(SID, 1, 0x1000)
    assert pa(rig, 0x1000, 1) == 0x71
    rig.drv.unbind(SID, 1)
    assert pa(rig, 0x1000, 1) == 0x59


def test_caches_disabled_walk_every_time():
    rig, fl, sl = system(caches=CacheConfig(enabled=False))
    for _ in range(3):
        w = rig.iommu.translate(SID, 0x1000, pasid=1)
        assert len(w.refs) == 8 and w.cache["iotlb"] == "off"


@pytest.mark.parametrize("policy,survivor", [("lru", 0x1000), ("fifo", 0x2000)])
def test_iotlb_replacement(policy, survivor):
    """One set of two ways: after A, B, A, C the LRU victim is B, the FIFO
    victim A."""
    t = Iotlb(sets=1, ways=2, policy=policy)
    for va in (0x1000, 0x2000):
        t.fill(1, 1, va, 4096, va + 0x10000, 0b11)
    assert t.lookup(1, 1, 0x1000, 2, False) is not None
    t.fill(1, 1, 0x3000, 4096, 0x13000, 0b11)
    assert t.lookup(1, 1, survivor, 2, False) is not None
    other = 0x1000 ^ 0x2000 ^ survivor                  # the victim
    assert t.lookup(1, 1, other, 2, False) is None
    assert len(t) == 2


def test_iotlb_random_replacement_stays_within_ways():
    t = Iotlb(sets=1, ways=4, policy="random", seed=3)
    for i in range(50):
        t.fill(1, 1, i << 12, 4096, i << 12, 0b11)
    assert len(t) == 4
    assert t.lookup(1, 1, 49 << 12, 2, False) is not None


def test_small_iotlb_evicts_and_walks_again():
    rig, fl, sl = system(caches=CacheConfig(iotlb_sets=1, iotlb_ways=1))
    assert rig.iommu.translate(SID, 0x1000, pasid=1).cache["iotlb"] == "miss"
    assert rig.iommu.translate(SID, 0x2000, pasid=1).cache["iotlb"] == "miss"
    assert rig.iommu.translate(SID, 0x1000, pasid=1).cache["iotlb"] == "miss"


def test_generic_cache_policies():
    for policy in ("lru", "fifo", "random"):
        c = Cache(2, policy, seed=1)
        c.fill(("a",), 1)
        c.fill(("b",), 2)
        c.lookup(("a",))
        c.fill(("c",), 3)
        assert len(c) == 2 and c.lookup(("c",)) == 3
        if policy == "lru":
            assert c.lookup(("a",)) == 1 and c.lookup(("b",)) is None
        if policy == "fifo":
            assert c.lookup(("a",)) is None and c.lookup(("b",)) == 2
    with pytest.raises(ValueError, match="policy"):
        Cache(2, "mru")
    with pytest.raises(ValueError, match="iotlb_sets"):
        CacheConfig(iotlb_sets=3)


def test_second_level_only_paging_structure_cache():
    """Second-level-only PASID: re-pointing the SL-PML4E at another table
    stays invisible while the SL-PDE is cached; a page-selective IOTLB
    invalidation with IH=0 drops the domain's second-level PSC entries."""
    rig, fl, sl = system()
    other = rig.sl()
    other.map(0x1000, 0xF000)
    assert pa(rig, 0x1000, 2) == 0x9000
    w = rig.iommu.translate(SID, 0x2000, pasid=2)
    assert [r.structure for r in w.refs] == ["sl-pte"] and w.cache["second-psc"] == 1
    rig.mem.write_u64(sl.root, rig.mem.read_u64(other.root))
    rig.iommu.invalidate(IotlbInv("page", did=20, addr=0x1000, ih=1))
    assert pa(rig, 0x1000, 2) == 0x9000                  # IOTLB entry gone, PSC stale
    rig.iommu.invalidate(IotlbInv("page", did=20, addr=0x1000))
    assert pa(rig, 0x1000, 2) == 0xF000
