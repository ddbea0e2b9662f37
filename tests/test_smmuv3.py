"""The SMMUv3 model: stream table, STE/CD decoding, the walks, events and refs."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from svmkit import FrameAllocator, Memory
from svmkit.formats import arm64_s1, arm64_s2
from svmkit.smmuv3 import Driver, Guest, Iommu, map_page, new_root
from svmkit.smmuv3.events import EVENTS
from svmkit.smmuv3.structures import CD, L1STD, STE

S1, S2 = arm64_s1.FORMAT, arm64_s2.FORMAT
VA = 0x7F00_1234_5000
PA = 0x2_0000_0000


def system(caches=True, size=1 << 36, **kw):
    mem = Memory(size)
    alloc = FrameAllocator(mem, 0x100000)
    smmu = Iommu.new(mem, alloc, caches=caches, **kw)
    return mem, alloc, smmu, Driver(mem, alloc, smmu)


def s1_tables(mem, alloc, mappings, levels=4, **kw):
    d = S1.descriptor(levels, 48, **kw)
    root = new_root(alloc, d)
    for va, pa, leaf in mappings:
        map_page(mem, alloc, root, va, pa, S1, d, **leaf)
    return root, d


def test_stage1_translation_and_refs():
    mem, alloc, smmu, drv = system()
    root, _ = s1_tables(mem, alloc, [(VA, PA, {})])
    drv.bind(0x12, 7, first_root=root)
    w = smmu.translate(0x12, VA + 0x42, pasid=7)
    assert w.ok and w.pa == PA + 0x42 and w.page_size == 4096
    assert [r.structure for r in w.refs] == ["ste", "cd", "s1-l0", "s1-l1", "s1-l2",
                                             "s1-l3-page"]
    assert [r.stage for r in w.refs[:2]] == ["ste", "cd"]
    assert w.refs[0].address == smmu.strtab_base + 0x12 * 64
    assert STE.decode(w.refs[0].qwords)["config"] == 0b101
    assert CD.decode(w.refs[1].qwords)["ttb0"] == root
    assert w.cache == {"ste": "miss", "cd": "miss", "tlb": "miss"}


def test_two_level_stream_table():
    mem, alloc, smmu, drv = system(sid_bits=16, strtab_fmt="2lvl", split=8)
    root, _ = s1_tables(mem, alloc, [(VA, PA, {})])
    ops = drv.bind(0x1234, 1, first_root=root)
    assert ops.writes[0][3].startswith("l1-std")
    w = smmu.translate(0x1234, VA, pasid=1)
    assert w.ok and [r.structure for r in w.refs[:3]] == ["l1-std", "ste", "cd"]
    assert w.refs[0].address == smmu.strtab_base + 0x12 * 8
    # no level 2 table behind this L1STD (Span 0): C_BAD_STREAMID
    f = smmu.translate(0x0501, VA).fault
    assert (f.name, f.code, f.stage, f.level) == ("C_BAD_STREAMID", 0x02, "ste", 2)
    f = smmu.translate(0x1_0000, VA).fault            # beyond LOG2SIZE
    assert (f.name, f.reason) == ("C_BAD_STREAMID", "address-width")
    # a level 2 table of 2^(Span-1) = 2 STEs: StreamID 0x1702 lies beyond it
    mem.write_u64(smmu.strtab_base + 0x17 * 8, L1STD.encode(span=2, l2ptr=alloc.alloc())[0])
    f = smmu.translate(0x1702, VA).fault
    assert (f.name, f.level) == ("C_BAD_STREAMID", 2)
    assert smmu.translate(0x1701, VA).fault.name == "C_BAD_STE"      # V=0 there


def test_ste_faults_and_configs():
    mem, alloc, smmu, drv = system()
    f = smmu.translate(3, VA).fault                    # all STEs start invalid
    assert (f.name, f.code, f.stage, f.reason) == ("C_BAD_STE", 0x04, "ste", "not-present")
    assert smmu.events[-1] == f
    mem.write_u64(smmu.strtab_base + 3 * 64, STE.encode(v=1, config=0b010)[0])
    f = smmu.translate(3, VA).fault                    # reserved: behaves as abort
    assert (f.name, f.reason) == (None, "abort")
    drv.attach(4, config="bypass")
    w = smmu.translate(4, VA, access="w")
    assert w.ok and w.pa == VA and [r.structure for r in w.refs] == ["ste"]
    assert smmu.translate(4, VA, pasid=1).fault.name == "C_BAD_SUBSTREAMID"
    drv.attach(5, config="abort")
    n = len(smmu.events)
    f = smmu.translate(5, VA).fault
    assert (f.name, f.reason, f.recorded) == (None, "abort", False) and len(smmu.events) == n


def test_illegal_stage2_fields_are_bad_ste():
    mem, alloc, smmu, drv = system()
    d2 = S2.descriptor(4, 48)
    drv.attach(1, config="s2", second_root=new_root(alloc, d2))
    drv.modify_ste(1, s2sl0=0)                         # level 2 start with a 48-bit IPA
    assert smmu.translate(1, 0x1000).fault.name == "C_BAD_STE"
    drv.modify_ste(1, s2sl0=2, s2aa64=0)               # AArch32 stage 2 tables
    assert smmu.translate(1, 0x1000).fault.name == "C_BAD_STE"


def test_substreams():
    mem, alloc, smmu, drv = system()
    root, _ = s1_tables(mem, alloc, [(VA, PA, {})])
    drv.attach(1, s1cdmax=4, s1dss="ssid0")
    drv.bind(1, None, first_root=root)                 # CD 0: no-PASID traffic
    drv.bind(1, 9, first_root=root)
    assert smmu.translate(1, VA).ok and smmu.translate(1, VA, pasid=9).ok
    assert smmu.translate(1, VA, pasid=0).fault.name == "F_STREAM_DISABLED"   # CD 0 taken
    f = smmu.translate(1, VA, pasid=16).fault          # beyond S1CDMax
    assert (f.name, f.code, f.ssid) == ("C_BAD_SUBSTREAMID", 0x08, 16)
    assert smmu.translate(1, VA, pasid=10).fault.name == "C_BAD_CD"
    drv.attach(2, s1cdmax=4, s1dss="terminate")
    f = smmu.translate(2, VA).fault
    assert (f.name, f.code) == ("F_STREAM_DISABLED", 0x06)
    drv.attach(3, s1cdmax=4, s1dss="bypass")
    w = smmu.translate(3, VA)
    assert w.ok and w.pa == VA
    drv.attach(4, s1cdmax=0)
    drv.bind(4, None, first_root=root)
    assert smmu.translate(4, VA).ok
    assert smmu.translate(4, VA, pasid=1).fault.name == "C_BAD_SUBSTREAMID"


@pytest.mark.parametrize("s1fmt,low", [("2lvl-4k", 6), ("2lvl-64k", 10)])
def test_two_level_cd_table(s1fmt, low):
    mem, alloc, smmu, drv = system()
    root, _ = s1_tables(mem, alloc, [(VA, PA, {})])
    drv.attach(1, s1fmt=s1fmt, s1cdmax=16)
    pasid = (5 << low) | 3
    drv.bind(1, pasid, first_root=root)
    w = smmu.translate(1, VA, pasid=pasid)
    assert w.ok and [r.structure for r in w.refs[:3]] == ["ste", "l1-cd", "cd"]
    assert w.refs[1].address == drv.streams[1].cd_table + 5 * 8
    f = smmu.translate(1, VA, pasid=(6 << low)).fault  # L1CD.V = 0
    assert (f.name, f.stage, f.level) == ("C_BAD_SUBSTREAMID", "cd", 2)


def test_bad_cd_fields():
    mem, alloc, smmu, drv = system()
    root, _ = s1_tables(mem, alloc, [(VA, PA, {})])
    drv.bind(1, 1, first_root=root)
    drv.bind(1, 2, first_root=root)
    drv.modify(1, 1, aa64=0)
    assert smmu.translate(1, VA, pasid=1).fault.name == "C_BAD_CD"
    drv.modify(1, 2, t0sz=12)                          # beyond the 48-bit maximum
    assert smmu.translate(1, VA, pasid=2).fault.name == "C_BAD_CD"


def test_fetch_aborts():
    mem, alloc, smmu, drv = system(size=1 << 28)
    f = Iommu(mem, strtab_base=1 << 28, log2size=4).translate(1, VA).fault
    assert (f.name, f.code, f.reason) == ("F_STE_FETCH", 0x03, "non-existent-memory")
    drv.attach(1, cd_table=1 << 28, s1cdmax=2)
    f = smmu.translate(1, VA, pasid=1).fault
    assert (f.name, f.code) == ("F_CD_FETCH", 0x09)
    drv.attach(2)
    drv.bind(2, 1, first_root=(1 << 28) + 0x10000)
    f = smmu.translate(2, VA, pasid=1).fault
    assert (f.name, f.code, f.stage) == ("F_WALK_EABT", 0x0B, "first")


@pytest.mark.parametrize("leaf,bind,access,name", [
    ({}, {}, "r", None),
    ({"write": False}, {}, "w", "F_PERMISSION"),
    ({"user": False}, {}, "r", "F_PERMISSION"),
    ({"af": False}, {}, "r", "F_ACCESS"),
    ({"af": False}, {"affd": True}, "r", None),
    ({"uxn": True}, {}, "x", "F_PERMISSION"),
])
def test_stage1_faults(leaf, bind, access, name):
    mem, alloc, smmu, drv = system()
    root, _ = s1_tables(mem, alloc, [(VA, PA, leaf)])
    drv.bind(1, 1, first_root=root, **bind)
    w = smmu.translate(1, VA, pasid=1, access=access)
    if name is None:
        assert w.ok
    else:
        f = w.fault
        assert (f.name, f.stage, f.s2, f.address, f.ssid) == (name, "first", False, VA, 1)
        assert EVENTS[f.code][0] == name


def test_unmapped_and_address_size_and_record():
    mem, alloc, smmu, drv = system()
    root, _ = s1_tables(mem, alloc, [(VA, 1 << 41, {})])
    drv.bind(1, 1, first_root=root, ips=40)
    f = smmu.translate(1, VA, pasid=1).fault
    assert (f.name, f.code, f.level) == ("F_ADDR_SIZE", 0x11, 1)
    f = smmu.translate(1, VA + (1 << 30), pasid=1).fault
    assert (f.name, f.reason) == ("F_TRANSLATION", "not-present")
    assert f in smmu.events
    drv.bind(1, 2, first_root=root, record=False)     # CD.R = 0: no event record
    f = smmu.translate(1, VA + (1 << 30), pasid=2).fault
    assert f.name == "F_TRANSLATION" and not f.recorded and f not in smmu.events


def test_ttb1_region_tbi_and_epd():
    mem, alloc, smmu, drv = system()
    high = 0xFFFF_8000_0000_3000
    root1, d = s1_tables(mem, alloc, [(high & ((1 << 48) - 1), PA, {})])
    root0, _ = s1_tables(mem, alloc, [(VA, PA + 0x1000, {})])
    drv.bind(1, 1, first_root=root0)
    drv.modify(1, 1, ttb1=root1, epd1=0, t1sz=16, tg1=2)
    assert smmu.translate(1, high + 8, pasid=1).pa == PA + 8
    assert smmu.translate(1, VA, pasid=1).pa == PA + 0x1000
    f = smmu.translate(1, 0xFF00_8000_0000_3000, pasid=1).fault   # neither region
    assert (f.name, f.reason) == ("F_TRANSLATION", "address-width")
    tagged = (0x5A << 56) | VA
    assert smmu.translate(1, tagged, pasid=1).fault.name == "F_TRANSLATION"
    drv.modify(1, 1, tbi=0b01)                         # top byte ignored for TTB0
    assert smmu.translate(1, tagged, pasid=1).pa == PA + 0x1000
    drv.modify(1, 1, epd1=1)
    assert smmu.translate(1, high, pasid=1).fault.name == "F_TRANSLATION"


def nested_system(caches=True, cd_fmt="linear", engine="auto"):
    """A guest with its CD table and stage 1 tables in IPA space over the host's stage 2."""
    mem, alloc, smmu, drv = system(caches=caches, engine=engine)
    d2 = S2.descriptor(4, 48)
    s2root = new_root(alloc, d2)
    guest = Guest(mem, alloc, s2root, d2)
    d1 = S1.descriptor(4, 48)
    s1root = new_root(guest, d1)
    data_ipa = 0x8000_0000
    map_page(guest, guest, s1root, VA, data_ipa, S1, d1)
    guest.map(data_ipa, PA)
    drv.attach(0x40, config="nested", second_root=s2root, guest_alloc=guest.alloc,
               s1fmt=cd_fmt)
    drv.bind(0x40, 1, first_root=s1root, nested=True)
    return mem, alloc, smmu, drv, guest, s1root, data_ipa


@pytest.mark.parametrize("engine", ["jit", "reference"])
def test_nested_walk_counts_30_references(engine):
    mem, alloc, smmu, drv, guest, s1root, data_ipa = nested_system(caches=False, engine=engine)
    w = smmu.translate(0x40, VA + 0x10, pasid=1)
    assert w.ok and w.pa == PA + 0x10 and w.gpa == data_ipa + 0x10
    kinds = [(r.stage, r.structure) for r in w.refs]
    assert kinds[0] == ("ste", "ste")
    # the CD's IPA goes through the 4-level stage 2 first, then the CD is read
    assert [r.locates for r in w.refs[1:5]] == ["cd"] * 4
    assert kinds[1:6] == [("second", "s2-l0"), ("second", "s2-l1"), ("second", "s2-l2"),
                          ("second", "s2-l3-page"), ("cd", "cd")]
    assert len(w.refs) - 6 == 24                      # 4 x (4 + 1) + 4
    assert len(w.refs) == 30
    assert [r.guest_level for r in w.refs[6:]][-4:] == [0, 0, 0, 0]


def test_nested_two_level_cd_table_counts():
    mem, alloc, smmu, drv, *_ = nested_system(caches=False, cd_fmt="2lvl-4k")
    w = smmu.translate(0x40, VA, pasid=1)
    assert w.ok and len(w.refs) == 1 + 5 + 5 + 24
    assert [r.structure for r in w.refs if r.stage in ("ste", "cd")] == ["ste", "l1-cd", "cd"]


@pytest.mark.parametrize("engine", ["jit", "reference"])
def test_nested_stage2_fault_classes(engine):
    mem, alloc, smmu, drv, guest, s1root, data_ipa = nested_system(caches=False, engine=engine)
    # final IPA unmapped at stage 2: CLASS=IN
    drv.bind(0x40, 2, first_root=s1root, nested=True)
    ipa2 = 0x9000_0000
    map_page(guest, guest, s1root, VA + 0x1000, ipa2, S1, S1.descriptor(4, 48))
    f = smmu.translate(0x40, VA + 0x1000, pasid=2).fault
    assert (f.name, f.stage, f.s2, f.cls, f.ipa) == ("F_TRANSLATION", "second", True, "IN",
                                                      ipa2)
    # a stage 1 table's IPA unmapped at stage 2: CLASS=TT
    drv.bind(0x40, 3, first_root=0x7000_0000, nested=True)
    f = smmu.translate(0x40, VA, pasid=3).fault
    assert (f.name, f.s2, f.cls, f.ipa) == ("F_TRANSLATION", True, "TT", 0x7000_0000 + 8 * 254)
    assert (f.address, f.input_address, f.arm_level) == (f.ipa, VA, 2)   # no level 2 table
    # the CD table's IPA unmapped: CLASS=CD
    drv.modify_ste(0x40, s1contextptr=0x7100_0000)
    f = smmu.translate(0x40, VA, pasid=1).fault
    assert (f.stage, f.name, f.cls, f.ipa) == ("second", "F_TRANSLATION", "CD",
                                               0x7100_0000 + 64)


def test_stage2_only():
    mem, alloc, smmu, drv = system()
    d2 = S2.descriptor(3, 48, input_bits=39)
    s2root = new_root(alloc, d2)
    map_page(mem, alloc, s2root, 0x4000_0000, PA, S2, d2, write=False)
    drv.attach(9, config="s2", second_root=s2root, second_levels=3)
    w = smmu.translate(9, 0x4000_0123)
    assert w.ok and w.pa == PA + 0x123
    assert [(r.stage, r.structure) for r in w.refs] == [
        ("ste", "ste"), ("second", "s2-l1"), ("second", "s2-l2"), ("second", "s2-l3-page")]
    f = smmu.translate(9, 0x4000_0123, access="w").fault
    assert (f.name, f.stage, f.s2, f.cls, f.ipa) == ("F_PERMISSION", "second", True, "IN",
                                                      0x4000_0123)
    assert smmu.translate(9, 1 << 39).fault.name == "F_TRANSLATION"   # beyond S2T0SZ
    assert smmu.translate(9, 0x4000_0000, pasid=1).fault.name == "C_BAD_SUBSTREAMID"


@pytest.mark.parametrize("granule,s2levels", [(16384, 3), (65536, 2)])
def test_large_granules_through_the_smmu(granule, s2levels):
    mem, alloc, smmu, drv = system()
    d2 = S2.descriptor(s2levels, 48, granule=granule, input_bits=40)
    s2root = new_root(alloc, d2)
    guest = Guest(mem, alloc, s2root, d2)
    d1 = S1.descriptor(3 if granule == 65536 else 4, 48, granule=granule)
    s1root = new_root(guest, d1)
    map_page(guest, guest, s1root, VA, 0x8000_0000, S1, d1)
    map_page(mem, alloc, s2root, 0x8000_0000, PA, S2, d2)
    drv.attach(1, config="nested", second_root=s2root, second_levels=s2levels,
               second_input_bits=40, granule=granule, guest_alloc=guest.alloc)
    drv.bind(1, 1, first_root=s1root, first_levels=int(d1[0, 0]), granule=granule,
             nested=True)
    w = smmu.translate(1, VA + 0x321, pasid=1)
    assert w.ok and w.pa == PA + ((VA + 0x321) & (granule - 1)) and w.page_size == granule


def test_bad_arguments():
    mem, alloc, smmu, drv = system()
    with pytest.raises(ValueError, match="access"):
        smmu.translate(1, 0, access="q")
    with pytest.raises(ValueError, match="stream_id"):
        smmu.translate(-1, 0)
    with pytest.raises(ValueError, match="pasid"):
        smmu.translate(1, 0, pasid=1 << 20)
    with pytest.raises(ValueError, match="strtab_fmt"):
        Iommu(mem, strtab_base=0, strtab_fmt="tree")
    with pytest.raises(ValueError, match="config"):
        drv.attach(1, config="s3")
    with pytest.raises(ValueError, match="second_root"):
        drv.attach(1, config="nested")
    with pytest.raises(ValueError, match="cmd"):
        smmu.invalidate("CMD_SYNC")


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_translate_many_agrees_with_translate(data):
    """The compiled batch gives, address by address, translate's result and event number,
    for stage 1, stage 2 only and nested streams."""
    mem, alloc, smmu, drv, guest, s1root, data_ipa = nested_system(caches=False)
    root, _ = s1_tables(mem, alloc, [(VA, PA, {"write": False}), (VA + 0x20_0000, PA, {})])
    drv.bind(7, 1, first_root=root)
    d2 = S2.descriptor(4, 48)
    s2root = new_root(alloc, d2)
    map_page(mem, alloc, s2root, VA, PA, S2, d2, write=False)
    drv.attach(8, config="s2", second_root=s2root)
    sid, pasid = data.draw(st.sampled_from([(0x40, 1), (7, 1), (8, None), (7, 3)]))
    access = data.draw(st.sampled_from("rwx"))
    near = st.integers(VA - 0x2000, VA + 0x30_0000)
    addrs = data.draw(st.lists(st.one_of(near, st.integers(0, (1 << 64) - 1)), min_size=1,
                               max_size=8))
    pa, fault = smmu.translate_many(sid, np.array(addrs, dtype=np.uint64), pasid=pasid,
                                    access=access)
    for a, p, f in zip(addrs, pa, fault):
        w = smmu.translate(sid, a, pasid=pasid, access=access)
        assert (int(p), int(f)) == ((w.pa, 0) if w.ok else (0, w.fault.code))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_structure_content_gives_a_result_or_an_event(data):
    """Faults are values: whatever the STE, CD and table entries hold, translate returns a
    Walk that either succeeded or carries an event (never raises)."""
    mem, alloc, smmu, drv, guest, s1root, data_ipa = nested_system(
        caches=data.draw(st.booleans()), engine=data.draw(st.sampled_from(["jit", "reference"])))
    word = st.integers(0, (1 << 64) - 1)
    ste_pa = smmu.strtab_base + 0x40 * 64
    cd_pa = guest.to_host(drv.streams[0x40].cd_table + 64)
    targets = [ste_pa + 8 * i for i in range(4)] + [cd_pa + 8 * i for i in range(3)]
    for _ in range(data.draw(st.integers(1, 3))):
        pa = data.draw(st.sampled_from(targets))
        keep = data.draw(st.booleans())
        old = mem.read_u64(pa)
        bits = data.draw(word)
        # flip a few bits, or write anything at all
        mem.write_u64(pa, old ^ (bits & data.draw(word) & data.draw(word)) if keep else bits)
    for _ in range(2):
        w = smmu.translate(0x40, data.draw(st.one_of(st.just(VA), word)),
                           pasid=data.draw(st.sampled_from([None, 0, 1, 2, 0xFFFFF])),
                           access=data.draw(st.sampled_from("rwx")),
                           privileged=data.draw(st.booleans()))
        assert w.ok == (w.fault is None)
        if w.ok:
            assert w.pa is not None
        else:
            assert w.fault.stage in ("ste", "cd", "first", "second")
            assert w.fault.name is None or EVENTS[w.fault.code][0] == w.fault.name


def test_the_public_walk_takes_the_arm64_formats():
    """svmkit.walk (both engines) walks arm64 tables, nested too (phys_bits 52 behaves as
    48 without 52-bit addressing)."""
    import svmkit
    mem, alloc, smmu, drv, guest, s1root, data_ipa = nested_system(caches=False)
    s2root = guest.s2root
    for engine in ("reference", "jit"):
        w = svmkit.walk(mem, VA + 5, root=s1root, fmt="arm64_s1", second_root=s2root,
                        second_fmt="arm64_s2", engine=engine)
        assert w.ok and w.pa == PA + 5 and len(w.refs) == 24
        assert w.refs[-1].structure == "s2-l3-page"


def test_translate_many_marks_configuration_faults():
    mem, alloc, smmu, drv = system()
    drv.attach(1, config="abort")
    root, _ = s1_tables(mem, alloc, [(VA, PA, {})])
    drv.bind(2, 1, first_root=root, ips=40)
    drv.modify(2, 1, ttb0=1 << 41)
    addrs = np.array([VA, VA + 4096], dtype=np.uint64)
    assert list(smmu.translate_many(1, addrs)[1]) == [-1, -1]
    assert list(smmu.translate_many(2, addrs, pasid=1)[1]) == [0x0A, 0x0A]
    assert smmu.translate(2, VA, pasid=1).fault.name == "C_BAD_CD"      # TTB0 beyond IPS
    assert list(smmu.translate_many(3, addrs)[1]) == [0x04, 0x04]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_engines_give_the_same_translation(data):
    """The numba and reference engines give the same Walk (refs, result, event) through
    damaged nested tables."""
    mem, alloc, smmu, drv, guest, s1root, data_ipa = nested_system(caches=False)
    other = Iommu(mem, strtab_base=smmu.strtab_base, log2size=smmu.log2size, caches=False,
                  engine="reference")
    smmu.engine = "jit"
    probe = smmu.translate(0x40, VA, pasid=1)
    victim = data.draw(st.sampled_from(probe.refs))
    mem.write_u64(victim.address, victim.value ^ data.draw(st.integers(0, (1 << 64) - 1)))
    kw = dict(pasid=1, access=data.draw(st.sampled_from("rwx")),
              privileged=data.draw(st.booleans()))
    a, b = smmu.translate(0x40, VA, **kw), other.translate(0x40, VA, **kw)
    assert (a.ok, a.pa, a.fault, a.refs) == (b.ok, b.pa, b.fault, b.refs)


def test_reserved_ste_values_behave_as_the_spec_says():
    """IHI 0070 5.2: S1Fmt 0b11 behaves as linear, S1DSS 0b11 as terminate, and with
    S1CDMax 0 the S1Fmt is ignored (one CD)."""
    mem, alloc, smmu, drv = system()
    root, _ = s1_tables(mem, alloc, [(VA, PA, {})])
    drv.attach(1, s1cdmax=4, s1dss="ssid0")
    drv.bind(1, 2, first_root=root)
    drv.modify_ste(1, s1fmt=3, s1dss=3)
    assert smmu.translate(1, VA, pasid=2).pa == PA
    assert smmu.translate(1, VA).fault.name == "F_STREAM_DISABLED"
    drv.attach(2, s1cdmax=0)
    drv.bind(2, None, first_root=root)
    drv.modify_ste(2, s1fmt=1)
    assert smmu.translate(2, VA).pa == PA


@given(st.sampled_from(sorted(EVENTS)), st.integers(0, (1 << 32) - 1),
       st.one_of(st.none(), st.integers(0, (1 << 20) - 1)), st.integers(0, (1 << 64) - 1),
       st.one_of(st.none(), st.integers(0, (1 << 52) - 1)))
def test_event_text_fits_72_columns(code, sid, ssid, addr, ipa):
    from svmkit.smmuv3.events import event
    e = event(EVENTS[code][0], "second", 1, "not-present", addr, "r", sid, ssid, ipa=ipa,
              cls="TT", s2=True)
    text = str(e)
    assert all(len(line) <= 72 for line in text.splitlines())
    assert EVENTS[code][0] in text and f"{addr:#x}" in text
