"""The driver's operations: the writes and invalidations each one makes."""

import pytest

from svmkit.vtd import Driver, Iommu, Ops
from svmkit.vtd import structures as S
from test_vtd_rig import Rig

SID = 0x0310


def applied(mem, ops):
    """Every write's new value is in memory (for a write not overwritten later)."""
    last = {}
    for pa, old, new, what in ops.writes:
        last[pa] = new
    return all(mem.read_u64(pa) == v for pa, v in last.items())


def test_attach_writes_root_context_and_rid_pasid_entry():
    rig = Rig()
    sl = rig.sl()
    sl.map(0x1000, 0x9000)
    ops = rig.drv.attach(SID, did=6, second_root=sl.root)
    what = [w[3] for w in ops.writes]
    assert what[0].startswith("root-entry bus 0x03 lower")
    assert any(w.startswith("context-entry 03:02.0") for w in what)
    assert what[-1] == "pasid-entry 0x0 (second) qword 0"      # present bit last
    assert ops.invalidations == [] and applied(rig.mem, ops)
    assert all(old == 0 for pa, old, new, w in ops.writes)
    # a second device on the same bus reuses the context table
    ops2 = rig.drv.attach(SID + 1)
    assert not any(w[3].startswith("root-entry") for w in ops2.writes)
    # devfn >= 128 fills the upper half of the root entry
    ops3 = rig.drv.attach(0x0390)
    assert ops3.writes[0][3] == "root-entry bus 0x03 upper"
    assert ops3.writes[0][0] == rig.iommu.root_table + 16 * 3 + 8


def test_context_entry_qword_with_present_bit_is_written_last():
    rig = Rig()
    ops = rig.drv.attach(SID, rid_pasid=5)
    ctx = [w for w in ops.writes if w[3].startswith("context-entry")]
    assert [w[3][-7:] for w in ctx] == ["qword 1", "qword 0"]
    e = S.sm_context_entry.decode(tuple(rig.mem.read_u64(ctx[1][0] + 8 * i) for i in range(4)))
    assert e["p"] and e["paside"] and e["rid_pasid"] == 5
    assert e["pasiddirptr"] == rig.drv.devices[SID].pasid_dir
    assert S.pasid_dir_size(e["pdts"]) * 64 >= 1 << rig.iommu.pasid_width


def test_bind_allocates_the_pasid_table_once():
    rig = Rig()
    fl = rig.fl()
    rig.drv.attach(SID)
    ops = rig.drv.bind(SID, 0x41, first_root=fl.root)
    assert ops.writes[0][3] == "pasid-directory-entry 0x1"
    ops = rig.drv.bind(SID, 0x42, first_root=fl.root)
    assert not any("directory" in w[3] for w in ops.writes)
    assert rig.drv.alloc_pasid(SID, 0x43).steps == []
    assert len(rig.drv.alloc_pasid(SID, 0x80).writes) == 1


def test_modify_and_unbind_invalidate_in_order():
    rig = Rig(invalidate=False)
    fl, sl = rig.fl(), rig.sl()
    rig.drv.attach(SID, did=1, ats=True)
    rig.drv.bind(SID, 9, first_root=fl.root, did=7)
    ops = rig.drv.modify(SID, 9, pgtt="second", second_root=sl.root, did=8)
    assert [d.name for d in ops.invalidations] == ["pc_inv_dsc", "p_iotlb_inv_dsc",
                                                   "p_dev_tlb_inv_dsc"]
    assert ops.invalidations[0].did == 7                       # the old domain
    assert rig.iommu.invalidations == []                       # listed, not executed
    assert applied(rig.mem, ops)
    ops = rig.drv.unbind(SID, 9)
    kinds = [s[0] for s in ops.steps]
    assert kinds[0] == "write" and kinds[1:4] == ["invalidate"] * 3
    assert ops.invalidations[1].name == "iotlb_inv_dsc"        # PGTT was second-level
    assert ops.invalidations[1].did == 8
    assert rig.mem.read_u64(ops.writes[0][0]) == 2             # P clear, FPD set
    assert "(P=0)" in ops.writes[0][3]


def test_detach_invalidates_every_domain():
    rig = Rig()
    fl = rig.fl()
    rig.drv.attach(SID, did=1)
    rig.drv.bind(SID, 1, first_root=fl.root, did=4)
    ops = rig.drv.detach(SID)
    names = [(d.name, getattr(d, "did", None)) for d in ops.invalidations]
    assert names[0] == ("cc_inv_dsc", 1)
    assert ("pc_inv_dsc", 4) in names and ("iotlb_inv_dsc", 4) in names
    assert ("pc_inv_dsc", 1) in names
    assert len(rig.iommu.invalidations) == len(ops.invalidations)
    assert SID not in rig.drv.devices
    assert "context-entry" in str(ops) and all(len(x) <= 72 for x in str(ops).splitlines())


def test_ops_add_and_render():
    a = Ops([("write", 0x1000, 0, 1, "x")])
    b = Ops([("write", 0x2000, 0, 2, "y")])
    assert (a + b).writes == [(0x1000, 0, 1, "x"), (0x2000, 0, 2, "y")]


def test_wrong_arguments():
    rig = Rig()
    fl = rig.fl()
    with pytest.raises(ValueError, match="not attached"):
        rig.drv.bind(SID, 1, first_root=fl.root)
    rig.drv.attach(SID)
    with pytest.raises(ValueError, match="already attached"):
        rig.drv.attach(SID)
    rig.drv.bind(SID, 1, first_root=fl.root)
    with pytest.raises(ValueError, match="already bound"):
        rig.drv.bind(SID, 1, first_root=fl.root)
    with pytest.raises(ValueError, match="not bound"):
        rig.drv.unbind(SID, 2)
    with pytest.raises(ValueError, match="pasid"):
        rig.drv.bind(SID, 1 << 20, first_root=fl.root)
    with pytest.raises(ValueError, match="second_root"):
        rig.drv.bind(SID, 3, first_root=fl.root, nested=True)
    with pytest.raises(ValueError, match="first_levels"):
        rig.drv.bind(SID, 3, first_root=fl.root, first_levels=3)
    with pytest.raises(ValueError, match="bogus"):
        rig.drv.modify(SID, 1, bogus=1)
    with pytest.raises(ValueError, match="pgtt"):
        rig.drv.modify(SID, 1, pgtt="third")
    legacy = Rig(ttm="legacy")
    with pytest.raises(ValueError, match="ttm"):
        Driver(legacy.mem, legacy.alloc, legacy.iommu)


def test_iommu_wrong_arguments():
    rig = Rig()
    for kw, name in [(dict(ttm="x"), "ttm"), (dict(haw=30), "haw"), (dict(root_table=0x1001),
                     "root_table"), (dict(sl_levels=(2,)), "sl_levels"),
                     (dict(pasid_width=21), "pasid_width"), (dict(caches=1), "caches")]:
        args = dict(root_table=0x1000)
        args.update(kw)
        with pytest.raises(ValueError, match=name):
            Iommu(rig.mem, **args)
