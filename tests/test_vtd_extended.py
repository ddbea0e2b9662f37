"""VT-d 2.x extended-context mode, and the comparison with scalable mode."""

import pytest

from svmkit.vtd import CacheConfig
from svmkit.vtd.compare import compare_modes, ownership, render_comparison
from test_vtd_rig import GUEST_BASE, Rig

SID = 0x0288                       # bus 2, devfn 0x88: the upper context table
NOCACHE = CacheConfig(enabled=False)


def test_extended_requests_without_pasid_use_the_second_level():
    rig = Rig(ttm="extended", caches=NOCACHE)
    sl = rig.sl()
    sl.map(0x1000, 0x9000)
    rig.drv.attach(SID, did=5, second_root=sl.root)
    w = rig.iommu.translate(SID, 0x1000)
    assert w.ok and w.pa == 0x9000
    assert [r.structure for r in w.refs[:2]] == ["root-entry", "context-entry"]
    assert w.refs[0].address == rig.iommu.root_table + 16 * 2 + 8      # UP half
    assert [r.stage for r in w.refs[2:]] == ["second"] * 4


def test_extended_host_pasid_table_first_level():
    rig = Rig(ttm="extended", caches=NOCACHE)
    sl, fl = rig.sl(), rig.fl(5)
    fl.map(0x7000_0000, 0x4000_0000, 1 << 21)
    rig.drv.attach(SID, second_root=sl.root)
    rig.drv.bind(SID, 17, first_root=fl.root, first_levels=5)
    w = rig.iommu.translate(SID, 0x7000_0010, pasid=17)
    assert w.ok and w.pa == 0x4000_0010 and w.page_size == 1 << 21
    assert [r.structure for r in w.refs[:3]] == ["root-entry", "context-entry", "pasid-entry"]
    assert w.refs[2].address == rig.drv.devices[SID].pasid_table + 8 * 17
    assert len(w.refs) == 3 + 4


def test_extended_nested_pasid_table_is_a_gpa():
    rig = Rig(ttm="extended", caches=NOCACHE)
    sl, gpt = rig.guest()
    gpt.map(0x40_0000, 0x5000)
    table = rig.galloc()                             # the guest's own PASID table
    rig.drv.attach(SID, second_root=sl.root, pasid_table=table, nested=True)
    ops = rig.drv.bind(SID, 3, first_root=gpt.root)
    # the guest's write lands in guest RAM
    assert ops.writes[-1][0] == GUEST_BASE + table + 8 * 3
    w = rig.iommu.translate(SID, 0x40_0000, pasid=3)
    assert w.ok and w.pa == GUEST_BASE + 0x5000
    stages = [r.stage for r in w.refs]
    # root, context, 4 second-level reads to find the PASID entry, the entry, 24
    assert stages[:7] == ["root", "context"] + ["second"] * 4 + ["pasid-entry"]
    assert len(w.refs) == 7 + 24
    assert w.refs[6].address == GUEST_BASE + table + 8 * 3


def test_extended_faults():
    rig = Rig(ttm="extended", caches=NOCACHE)
    sl, gpt = rig.guest()
    rig.drv.attach(SID, second_root=sl.root, pasid_table=0x7F_0000, nested=True, pts=4)
    assert rig.iommu.translate(SID, 0, pasid=1).fault.code == 0x75   # table GPA unmapped
    assert rig.iommu.translate(SID, 0, pasid=1 << 9).fault.code == 0x46  # beyond PTS
    assert rig.iommu.translate(0x0300, 0).fault.code == 0x1          # legacy numbering
    with pytest.raises(ValueError, match="pasid_table"):
        rig.drv.attach(0x0301, second_root=sl.root, nested=True)


def test_ownership_scalable_against_extended():
    r = compare_modes([0x40_0000 + 0x1000 * i for i in range(4)], caches=NOCACHE)
    sc, ex = r["scalable"], r["extended"]
    assert sc["refs"] == [28] * 4 and ex["refs"] == [31] * 4
    assert sc["structure_refs"][0] == 4 and ex["structure_refs"][0] == 7
    own_sc = {o.structure: o for o in sc["ownership"]}
    own_ex = {o.structure: o for o in ex["ownership"]}
    assert own_sc["pasid-entry"].owner == "host" and own_sc["pasid-entry"].space == "HPA"
    assert own_sc["pasid-entry"].host_must.startswith("shadow")
    assert own_ex["pasid-entry"].owner == "guest" and own_ex["pasid-entry"].space == "GPA"
    assert "pasid-directory-entry" not in own_ex
    assert own_sc["first-level tables"].owner == own_ex["first-level tables"].owner == "guest"
    text = render_comparison(r)
    assert all(len(line) <= 72 and line.isascii() for line in text.splitlines())


def test_with_caches_both_modes_cost_the_same_after_the_first():
    """Neighbouring pages: the paging-structure caches (with nested
    combined entries) leave the guest PTE and the final SL-PTE to read."""
    r = compare_modes([0x40_0000 + 0x1000 * i for i in range(4)])
    assert r["scalable"]["refs"][1:] == r["extended"]["refs"][1:] == [2] * 3


def test_ownership_of_a_faulting_request_is_empty():
    rig = Rig()
    assert ownership(rig.iommu, SID, 1) == []


def test_extended_modify_and_unbind():
    rig = Rig(ttm="extended", invalidate=False)
    sl, gpt = rig.guest()
    gpt.map(0x40_0000, 0x5000)
    gpt2 = rig.fl()
    table = rig.galloc()
    rig.drv.attach(SID, did=3, second_root=sl.root, pasid_table=table, nested=True)
    rig.drv.bind(SID, 3, first_root=gpt.root)
    assert rig.iommu.translate(SID, 0x40_0000, pasid=3).ok
    ops = rig.drv.modify(SID, 3, first_levels=5, first_root=gpt2.root)
    assert [d.name for d in ops.invalidations] == ["pc_inv_dsc", "p_iotlb_inv_dsc"]
    assert ops.writes[0][0] == GUEST_BASE + table + 8 * 3        # in guest memory
    assert rig.iommu.translate(SID, 0x40_0000, pasid=3).ok       # stale: not executed
    for d in ops.invalidations:
        rig.iommu.invalidate(d)
    w = rig.iommu.translate(SID, 0x40_0000, pasid=3)
    assert not w.ok and w.config is not None and w.config.first_levels == 5
    ops = rig.drv.unbind(SID, 3)
    for d in ops.invalidations:
        rig.iommu.invalidate(d)
    assert rig.iommu.translate(SID, 0x40_0000, pasid=3).fault.code == 0x59
