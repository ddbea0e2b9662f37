"""The SMMUv3 driver: the writes and commands of attach, bind, unbind, modify, detach."""

import pytest

from svmkit import FrameAllocator, Memory
from svmkit.formats import arm64_s1, arm64_s2
from svmkit.smmuv3 import Driver, Guest, Iommu, map_page, new_root
from svmkit.smmuv3.structures import CD, L1STD, STE

S1, S2 = arm64_s1.FORMAT, arm64_s2.FORMAT
VA, PA = 0x5555_0000_0000, 0x2_0000_0000
D1 = S1.descriptor(4, 48)


def system(invalidate=True, **kw):
    mem = Memory(1 << 36)
    alloc = FrameAllocator(mem, 0x100000)
    smmu = Iommu.new(mem, alloc, **kw)
    return mem, alloc, smmu, Driver(mem, alloc, smmu, invalidate=invalidate)


def tables(mem, alloc):
    root = new_root(alloc, D1)
    map_page(mem, alloc, root, VA, PA, S1, D1)
    return root


def names(ops):
    return [c.name for c in ops.commands]


def test_writes_are_recorded_as_they_land():
    mem, alloc, smmu, drv = system()
    ops = drv.bind(3, 1, first_root=tables(mem, alloc))
    for pa, old, new, what in ops.writes:
        assert mem.read_u64(pa) == new and old == 0 and what
    ste_writes = [w for w in ops.writes if w[3].startswith("ste")]
    assert ste_writes[-1][3].endswith("dword 0")          # V lands last
    assert STE.decode(STE.read(mem, smmu.strtab_base + 3 * 64))["v"] == 1
    assert names(ops) == ["CMD_CFGI_STE", "CMD_SYNC", "CMD_CFGI_CD", "CMD_SYNC"]
    assert smmu.commands == ops.commands


def test_rebinding_invalidates_the_old_asid():
    mem, alloc, smmu, drv = system()
    root = tables(mem, alloc)
    drv.bind(3, 1, first_root=root, asid=7)
    ops = drv.bind(3, 1, first_root=root, asid=8)
    assert names(ops) == ["CMD_CFGI_CD", "CMD_SYNC", "CMD_TLBI_NH_ASID", "CMD_SYNC"]
    assert ops.commands[2].asid == 7
    assert [w[3] for w in ops.writes] == ["cd 0x3:0x1 (at %#x) dword 0"
                                          % (drv.streams[3].cd_table + 64)]


def test_unbind_and_detach():
    mem, alloc, smmu, drv = system()
    drv.bind(3, 1, first_root=tables(mem, alloc))
    assert smmu.translate(3, VA, pasid=1).ok
    ops = drv.unbind(3, 1)
    assert names(ops) == ["CMD_CFGI_CD", "CMD_SYNC", "CMD_TLBI_NH_ASID", "CMD_SYNC"]
    assert smmu.translate(3, VA, pasid=1).fault.name == "C_BAD_CD"
    ops = drv.detach(3)
    assert names(ops) == ["CMD_CFGI_STE", "CMD_SYNC"]        # no ASID left to invalidate
    f = smmu.translate(3, VA, pasid=1).fault
    assert f.reason == "abort" and f.name is None
    drv.attach(3, config="bypass")
    drv.detach(3, to="invalid")
    assert smmu.translate(3, VA).fault.name == "C_BAD_STE"


def test_without_invalidation_the_commands_are_listed_not_run():
    mem, alloc, smmu, drv = system(invalidate=False)
    drv.bind(3, 1, first_root=tables(mem, alloc))
    assert smmu.translate(3, VA, pasid=1).ok
    ops = drv.detach(3)
    assert "CMD_CFGI_STE" in names(ops) and smmu.commands == []
    assert smmu.translate(3, VA, pasid=1).ok                # stale STE
    for cmd in ops.commands:
        smmu.invalidate(cmd)
    assert not smmu.translate(3, VA, pasid=1).ok


def test_two_level_stream_table_grows():
    mem, alloc, smmu, drv = system(sid_bits=16, strtab_fmt="2lvl", split=6)
    ops = drv.attach(0x1FF, config="bypass")
    l1 = ops.writes[0]
    assert l1[0] == smmu.strtab_base + (0x1FF >> 6) * 8
    assert L1STD.decode((l1[2],))["span"] == 7
    assert names(ops)[:2] == ["CMD_CFGI_STE", "CMD_SYNC"] and not ops.commands[0].leaf
    ops = drv.attach(0x1C0, config="bypass")                # same level 2 table
    assert not any(w[3].startswith("l1-std") for w in ops.writes)
    assert smmu.translate(0x1C0, 0x1234).pa == 0x1234


def test_two_level_cd_table_grows():
    mem, alloc, smmu, drv = system()
    drv.attach(2, s1fmt="2lvl-4k", s1cdmax=12)
    root = tables(mem, alloc)
    ops = drv.bind(2, 0x41, first_root=root)
    assert ops.writes[0][3].startswith("l1-cd 0x1")
    assert names(ops)[:2] == ["CMD_CFGI_CD", "CMD_SYNC"] and not ops.commands[0].leaf
    ops = drv.bind(2, 0x42, first_root=root)
    assert not any(w[3].startswith("l1-cd") for w in ops.writes)
    assert smmu.translate(2, VA, pasid=0x42).ok


def test_nested_bind_writes_the_guest_cd_through_stage_2():
    mem, alloc, smmu, drv = system()
    d2 = S2.descriptor(4, 48)
    s2root = new_root(alloc, d2)
    guest = Guest(mem, alloc, s2root, d2)
    s1root = new_root(guest, D1)
    map_page(guest, guest, s1root, VA, 0x9000_0000, S1, D1)
    guest.map(0x9000_0000, PA)
    ops = drv.bind(0x20, 5, first_root=s1root, nested=True, second_root=s2root,
                   guest_alloc=guest.alloc)
    table = drv.streams[0x20].cd_table
    assert table >= 0x4000_0000                              # an IPA of the guest
    ste = STE.decode(STE.read(mem, smmu.strtab_base + 0x20 * 64))
    assert (ste["config"], ste["s1contextptr"], ste["s2ttb"]) == (0b111, table, s2root)
    cd_writes = [w for w in ops.writes if w[3].startswith("cd")]
    assert cd_writes and all(w[0] >> 12 == guest.to_host(table + 5 * 64) >> 12
                             for w in cd_writes)
    assert CD.decode(CD.read(mem, guest.to_host(table + 5 * 64)))["ttb0"] == s1root
    w = smmu.translate(0x20, VA + 4, pasid=5)
    assert w.ok and w.pa == PA + 4
    with pytest.raises(ValueError, match="nested"):
        drv.bind(0x20, 6, first_root=s1root)


def test_modify_ste_and_flush_stage_2():
    mem, alloc, smmu, drv = system()
    d2 = S2.descriptor(4, 48)
    s2root = new_root(alloc, d2)
    drv.attach(4, config="s2", second_root=s2root)
    ops = drv.modify_ste(4, s2r=0)
    assert names(ops) == ["CMD_CFGI_STE", "CMD_SYNC", "CMD_TLBI_S12_VMALL", "CMD_SYNC"]
    assert not smmu.translate(4, 0x1000).fault.recorded
    assert names(drv.flush(4, address=0x1000, stage=2)) == ["CMD_TLBI_S2_IPA", "CMD_SYNC"]


def test_bad_arguments():
    mem, alloc, smmu, drv = system()
    root = tables(mem, alloc)
    drv.attach(1, s1cdmax=2)
    with pytest.raises(ValueError, match="pasid"):
        drv.bind(1, 4, first_root=root)
    with pytest.raises(ValueError, match="pasid"):
        drv.flush(1, 3)
    with pytest.raises(ValueError, match="stream_id"):
        drv.unbind(9, 1)
    with pytest.raises(ValueError, match="stream_id"):
        drv.attach(1 << 8, config="bypass")
    with pytest.raises(ValueError, match="s1dss"):
        drv.attach(2, s1dss="maybe")
    with pytest.raises(ValueError, match="cd_table|guest_alloc"):
        drv.attach(2, config="nested", second_root=new_root(alloc, S2.descriptor(4, 48)))


def test_a_stage2_stream_becomes_nested_keeping_its_vmid():
    mem, alloc, smmu, drv = system()
    d2 = S2.descriptor(4, 48)
    s2root = new_root(alloc, d2)
    guest = Guest(mem, alloc, s2root, d2)
    drv.attach(6, config="s2", second_root=s2root, vmid=9)
    s1root = new_root(guest, D1)
    map_page(guest, guest, s1root, VA, 0x9000_0000, S1, D1)
    guest.map(0x9000_0000, PA)
    ops = drv.bind(6, 1, first_root=s1root, nested=True, guest_alloc=guest.alloc)
    assert "CMD_TLBI_S12_VMALL" in names(ops)             # the old stage 2 entries go
    ste = STE.decode(STE.read(mem, smmu.strtab_base + 6 * 64))
    assert (ste["config"], ste["s2vmid"], ste["s2ttb"]) == (0b111, 9, s2root)
    assert smmu.translate(6, VA, pasid=1).pa == PA


def test_live_entries_change_hitless_or_break_before_make():
    mem, alloc, smmu, drv = system()
    root = tables(mem, alloc)
    drv.bind(3, 1, first_root=root, asid=4)
    ops = drv.modify(3, 1, asid=5)                          # one doubleword: hitless
    assert [w[3].split()[-1] for w in ops.writes] == ["0"]
    ops = drv.modify(3, 1, asid=6, first_root=tables(mem, alloc))   # two: break first
    assert [w[3].rsplit("dword ", 1)[1] for w in ops.writes] == [
        "0 (V=0: break before make)", "1", "0"]
    v = CD.fields["v"]
    assert v.get((ops.writes[0][2],)) == 0 and v.get((ops.writes[2][2],)) == 1
    assert names(ops) == ["CMD_CFGI_CD", "CMD_SYNC", "CMD_CFGI_CD", "CMD_SYNC",
                          "CMD_TLBI_NH_ASID", "CMD_SYNC"]
    assert smmu.translate(3, VA, pasid=1).pa == PA
