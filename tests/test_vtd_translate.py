"""VT-d translate: every PGTT mode, depth and page size, refs and cache reports."""

import pytest

from svmkit.vtd import CacheConfig
from test_vtd_rig import GUEST_BASE, Rig

SID = 0x0310            # bus 3, device 2, function 0
NOCACHE = CacheConfig(enabled=False)
SIZES = {4096: "4k", 1 << 21: "2m", 1 << 30: "1g"}
STRUCTS = ["root-entry", "context-entry", "pasid-directory-entry", "pasid-entry"]


def structure_names(w):
    return [r.structure for r in w.refs]


@pytest.mark.parametrize("levels", [4, 5])
@pytest.mark.parametrize("size", list(SIZES))
def test_first_level_only(levels, size):
    rig = Rig(caches=NOCACHE)
    fl = rig.fl(levels)
    va, pa = 0x7F_C000_0000 + 3 * size, 0x2_4000_0000 + 5 * size
    fl.map(va, pa, size)
    rig.drv.attach(SID, did=4)
    rig.drv.bind(SID, 77, first_root=fl.root, first_levels=levels)
    w = rig.iommu.translate(SID, va + 0x123, pasid=77)
    assert w.ok and w.pa == pa + 0x123 and w.page_size == size
    leaf_level = {4096: 1, 1 << 21: 2, 1 << 30: 3}[size]
    walked = levels - leaf_level + 1
    assert structure_names(w)[:4] == STRUCTS
    assert [r.stage for r in w.refs[4:]] == ["first"] * walked
    assert [r.level for r in w.refs[4:]] == list(range(levels, leaf_level - 1, -1))
    assert w.fmt == "x86_64" and w.levels == levels and not w.nested


@pytest.mark.parametrize("levels", [3, 4, 5])
@pytest.mark.parametrize("size", list(SIZES))
def test_second_level_only(levels, size):
    rig = Rig(caches=NOCACHE)
    sl = rig.sl(levels)
    iova, pa = 0x40_0000_0000 % (1 << (12 + 9 * levels)) + 7 * size, 0x3_0000_0000 + size
    sl.map(iova, pa, size)
    rig.drv.attach(SID, did=4)
    rig.drv.bind_second(SID, 9, second_root=sl.root, second_levels=levels)
    w = rig.iommu.translate(SID, iova + 8, pasid=9, access="w")
    assert w.ok and w.pa == pa + 8 and w.page_size == size
    leaf_level = {4096: 1, 1 << 21: 2, 1 << 30: 3}[size]
    assert [r.stage for r in w.refs[4:]] == ["second"] * (levels - leaf_level + 1)
    assert w.fmt == "vtd_sl" and w.levels == levels


@pytest.mark.parametrize("fl_levels,sl_levels", [(4, 4), (4, 3), (5, 5), (4, 5), (5, 4)])
def test_nested_reference_count(fl_levels, sl_levels):
    """n first-level tables over m second-level levels: n(m+1)+m reads,
    plus the four structure entries (HPAs in scalable mode)."""
    rig = Rig(caches=NOCACHE)
    sl, gpt = rig.guest(fl_levels, sl_levels)
    gpt.map(0x5555_0000_0000 % (1 << (12 + 9 * fl_levels - 1)), 0x7000)
    va = 0x5555_0000_0000 % (1 << (12 + 9 * fl_levels - 1))
    rig.drv.attach(SID, did=2)
    rig.drv.bind(SID, 1, first_root=gpt.root, first_levels=fl_levels, nested=True,
                 second_root=sl.root, second_levels=sl_levels)
    w = rig.iommu.translate(SID, va + 0x40, pasid=1)
    assert w.ok, w.fault
    assert w.pa == GUEST_BASE + 0x7040 and w.gpa == 0x7040
    n, m = fl_levels, sl_levels
    assert len(w.refs) == 4 + n * (m + 1) + m
    walk = w.refs[4:]
    # each first-level read is preceded by the m second-level reads that locate it
    for k in range(n):
        block = walk[k * (m + 1):(k + 1) * (m + 1)]
        assert [r.stage for r in block] == ["second"] * m + ["first"]
        assert {r.guest_level for r in block[:m]} == {n - k}
    assert {r.guest_level for r in walk[-m:]} == {0}
    assert w.nested and w.second_levels == m


def test_nested_large_pages_both_stages():
    rig = Rig(caches=NOCACHE)
    sl = rig.sl(4)
    gfree = iter(range(0x10_0000, 0x20_0000, 0x1000))
    from svmkit.pagetable import PageTable
    sl.map(0, GUEST_BASE, 1 << 30)                  # guest RAM: one 1 GiB SL page
    gpt = PageTable(rig.mem, lambda: next(gfree), fmt="x86_64", levels=4,
                    to_host=lambda g: GUEST_BASE + g)
    gpt.map(0x4000_0000, 0x20_0000, 1 << 21)        # a 2 MiB first-level page
    rig.drv.attach(SID)
    rig.drv.bind(SID, 3, first_root=gpt.root, nested=True, second_root=sl.root)
    w = rig.iommu.translate(SID, 0x4000_1234, pasid=3)
    assert w.ok and w.pa == GUEST_BASE + 0x20_1234
    assert w.page_size == 1 << 21                   # the smaller of the two stages
    # 3 first-level reads, each located by 2 SL reads (1 GiB leaf at level 3), + 2
    assert len(w.refs) == 4 + 3 * 3 + 2


def test_pass_through():
    rig = Rig(caches=NOCACHE)
    rig.drv.attach(SID, pgtt="pass-through")
    w = rig.iommu.translate(SID, 0x1234_5678)
    assert w.ok and w.pa == 0x1234_5678
    assert structure_names(w) == STRUCTS
    w = rig.iommu.translate(SID, 1 << 50)
    assert not w.ok and w.fault.code == 0x83


def test_requests_without_pasid_use_rid_pasid():
    rig = Rig(caches=NOCACHE)
    sl_a, sl_b = rig.sl(), rig.sl()
    sl_a.map(0x1000, 0xA000)
    sl_b.map(0x1000, 0xB000)
    rig.drv.attach(SID, rid_pasid=0x2345, second_root=sl_b.root)
    rig.drv.bind_second(SID, 0, second_root=sl_a.root)
    w = rig.iommu.translate(SID, 0x1000)
    assert w.ok and w.pa == 0xB000
    assert w.config.pasid == 0x2345
    # the directory entry of PASID 0x2345 is entry 0x2345 >> 6
    d = rig.drv.devices[SID]
    assert w.refs[2].address == d.pasid_dir + 8 * (0x2345 >> 6)
    assert rig.iommu.translate(SID, 0x1000, pasid=0).pa == 0xA000


@pytest.mark.parametrize("sid", [0x0000, 0x0008, 0x007F, 0x0080, 0x00FF, 0x0310, 0x0390,
                                 0xFF07, 0xFFFF])
def test_devices_on_any_bus_and_devfn(sid):
    """Bus 0 and others; devfn below 128 (lower context table) and from 128
    (upper), each device with its own tables."""
    rig = Rig(caches=NOCACHE)
    tables = {}
    for s in (sid, sid ^ 0x80, sid ^ 0x100):        # neighbours share root entries
        sl = rig.sl()
        sl.map(0x1000, 0x10_0000 * (s + 1))
        rig.drv.attach(s, second_root=sl.root)
        tables[s] = sl
    for s in tables:
        w = rig.iommu.translate(s, 0x1000)
        assert w.ok and w.pa == 0x10_0000 * (s + 1)
        bus, devfn = s >> 8, s & 0xFF
        root = w.refs[0]
        assert root.address == rig.iommu.root_table + 16 * bus + (8 if devfn >= 128 else 0)


def test_pasids_spread_over_the_directory():
    rig = Rig(caches=NOCACHE)
    rig.drv.attach(SID)
    pasids = [0, 1, 63, 64, 65, 0x1234, 0x3FFF, 0x4000, 0x8_0000, 0xF_FFC0, 0xF_FFFF]
    for p in pasids:
        fl = rig.fl()
        fl.map(0x40_0000, 0x100_0000 + p * 0x1000)
        rig.drv.bind(SID, p, first_root=fl.root)
    d = rig.drv.devices[SID]
    for p in pasids:
        w = rig.iommu.translate(SID, 0x40_0000, pasid=p)
        assert w.ok and w.pa == 0x100_0000 + p * 0x1000
        assert w.refs[2].address == d.pasid_dir + 8 * (p >> 6)
        assert w.refs[3].address % 4096 == 64 * (p & 0x3F)


def test_supervisor_requests_need_sre_and_honour_wpe():
    rig = Rig(caches=NOCACHE)
    fl = rig.fl()
    fl.map(0x1000, 0x9000, write=False, user=False)
    rig.drv.attach(SID)
    rig.drv.bind(SID, 1, first_root=fl.root)                 # SRE clear
    rig.drv.bind(SID, 2, first_root=fl.root, sre=True)       # WPE clear
    rig.drv.bind(SID, 3, first_root=fl.root, sre=True, wpe=True)
    assert rig.iommu.translate(SID, 0x1000, pasid=1, privileged=True).fault.code == 0x5D
    assert rig.iommu.translate(SID, 0x1000, pasid=1).fault.code == 0x81    # user, U/S=0
    assert rig.iommu.translate(SID, 0x1000, pasid=2, privileged=True, access="w").ok
    w = rig.iommu.translate(SID, 0x1000, pasid=3, privileged=True, access="w")
    assert w.fault.code == 0x85


def test_cache_reports_and_refs_only_what_was_read():
    rig = Rig()
    fl = rig.fl()
    fl.map(0x1000, 0x9000)
    fl.map(0x2000, 0xA000)
    rig.drv.attach(SID)
    rig.drv.bind(SID, 5, first_root=fl.root)
    w = rig.iommu.translate(SID, 0x1000, pasid=5)
    assert w.cache == {"context": "miss", "pasid": "miss", "iotlb": "miss", "first-psc": "miss"}
    assert len(w.refs) == 8
    w = rig.iommu.translate(SID, 0x1008, pasid=5)
    assert w.cache == {"context": "hit", "pasid": "hit", "iotlb": "hit"} and w.refs == []
    assert w.pa == 0x9008
    w = rig.iommu.translate(SID, 0x2000, pasid=5)
    # the PML4E, PDPTE and PDE come from the paging-structure cache
    assert w.cache["iotlb"] == "miss" and [r.structure for r in w.refs] == ["pte"]
    assert w.cache["first-psc"] == "hit pde"
    # a write to a page cached clean walks again (to set D), then hits
    w = rig.iommu.translate(SID, 0x2000, pasid=5, access="w")
    assert w.cache["iotlb"] == "miss" and len(w.refs) == 1
    assert rig.iommu.translate(SID, 0x2000, pasid=5, access="w").cache["iotlb"] == "hit"


def test_walk_sets_accessed_and_dirty():
    rig = Rig()
    fl = rig.fl()
    slot = fl.map(0x1000, 0x9000)
    rig.drv.attach(SID)
    rig.drv.bind(SID, 5, first_root=fl.root)
    rig.iommu.translate(SID, 0x1000, pasid=5, access="w")
    assert rig.mem.read_u64(slot) & 0x60 == 0x60


@pytest.mark.parametrize("bad", ["source_id", "address", "pasid", "access"])
def test_wrong_arguments_raise_value_error(bad):
    rig = Rig()
    kw = dict(source_id=1, address=0, pasid=None, access="r")
    kw[bad] = {"source_id": 0x10000, "address": -1, "pasid": 1 << 20, "access": "rw"}[bad]
    with pytest.raises(ValueError, match=bad):
        rig.iommu.translate(kw.pop("source_id"), kw.pop("address"), **kw)


def test_rid_priv_makes_requests_without_pasid_supervisor():
    rig = Rig(caches=NOCACHE)
    fl = rig.fl()
    fl.map(0x1000, 0x9000, user=False)
    rig.drv.attach(SID, rid_priv=True)
    rig.drv.bind(SID, 0, first_root=fl.root)             # RID_PASID 0, SRE clear
    assert rig.iommu.translate(SID, 0x1000).fault.code == 0x5D
    rig.drv.modify(SID, 0, sre=1)
    w = rig.iommu.translate(SID, 0x1000, privileged=False)   # ignored without PASID
    assert w.ok and w.config.privileged


def test_capability_knobs():
    rig = Rig(caches=NOCACHE, fl_1g=False, sl_large_pages=0)
    fl, sl = rig.fl(), rig.sl()
    fl.map(0x4000_0000, 0x4000_0000, 1 << 30)
    fl.map(0x20_0000, 0x20_0000, 1 << 21)
    sl.map(0x20_0000, 0x20_0000, 1 << 21)
    rig.drv.attach(SID)
    rig.drv.bind(SID, 1, first_root=fl.root)
    rig.drv.bind_second(SID, 2, second_root=sl.root)
    assert rig.iommu.translate(SID, 0x4000_0000, pasid=1).fault.code == 0x72   # no FL1GP
    assert rig.iommu.translate(SID, 0x20_0000, pasid=1).ok
    assert rig.iommu.translate(SID, 0x20_0000, pasid=2).fault.code == 0x7A    # no SLLPS


def test_pointers_above_haw_are_reserved():
    rig = Rig(caches=NOCACHE, haw=40)
    fl = rig.fl()
    rig.drv.attach(SID)
    rig.drv.bind(SID, 1, first_root=fl.root)
    w = rig.iommu.translate(SID, 0, pasid=1)
    d = w.refs[2].address
    rig.mem.write_u64(d, rig.mem.read_u64(d) | 1 << 41)
    assert rig.iommu.translate(SID, 0, pasid=1).fault.code == 0x52
