"""Building scenarios into memory through the VT-d model's Driver."""

import random

import pytest

import svmkit
from svmkit.scenario import Scenario, load

pytest.importorskip("svmkit.vtd")


def two_vms():
    s = Scenario("two", model="vtd", memory=1 << 30)
    s.vm("vm1", ram="64 MiB")
    s.vm("vm2", ram="64 MiB", second_levels=3)
    s.process("app", vm="vm1").map(0x400000, "2 MiB", "rw", page_size=4096) \
        .map(0x7f0000000000, "16 KiB", "r")
    s.process("app", vm="vm2").map(0x400000, "4 MiB", "rw")
    s.process("drv").map(0x10000000, "1 MiB", "rw").map(0x20000000, "8 KiB", "r")
    s.device("00:02.0", vm="vm1")
    s.device("00:03.0", vm="vm2")
    s.device("01:00.0")
    s.bind("vm1/app", "00:02.0", 5)
    s.bind("vm2/app", "00:03.0", 5)
    s.bind("host/drv", "01:00.0", 1)
    return s


BINDS = [("vm1/app", "00:02.0", 5), ("vm2/app", "00:03.0", 5), ("host/drv", "01:00.0", 1)]


def test_every_mapping_translates_to_its_own_pages():
    s = two_vms()
    b = s.build()
    rng = random.Random(1)
    for qname, dev, pasid in BINDS:
        proc = s.get_process(qname)
        for m in proc.maps:
            for off in [0, m.size - 1] + [rng.randrange(m.size) for _ in range(5)]:
                w = b.translate(dev, m.va + off, pasid=pasid)
                assert w.ok, (qname, hex(m.va + off), w.fault)
                sym = b.symbols.lookup(w.pa)
                assert sym.owner == qname and sym.kind == f"pages at {m.va:#x}"
                assert w.pa - sym.start == off
                ww = b.translate(dev, m.va + off, pasid=pasid, access="w")
                assert ww.ok == ("w" in m.perms)
                if not ww.ok:
                    assert ww.fault.reason == "permission"
        # Outside every mapping: a fault, never an exception.
        assert not b.translate(dev, 0x9000000000, pasid=pasid).ok


def test_model_walk_equals_core_nested_walk():
    """The IOMMU's page-table refs are those of svmkit.walk over the same
    roots: the builder wrote one consistent set of tables."""
    from svmkit.vtd import CacheConfig
    s = two_vms()
    b = s.build(caches=CacheConfig(enabled=False))
    for qname, dev, pasid in BINDS:
        proc = s.get_process(qname)
        va = proc.maps[0].va + 0x1234
        w = b.translate(dev, va, pasid=pasid)
        kw = dict(root=b.first[qname].root, levels=proc.levels, engine="reference")
        if proc.owner != "host":
            kw.update(second_root=b.second[proc.owner].root,
                      second_levels=s.get_vm(proc.owner).second_levels)
        else:
            kw.update(user=False)
        core = svmkit.walk(b.mem, va, **kw)
        page = [(r.stage, r.level, r.address, r.guest_level) for r in w.refs
                if r.stage in ("first", "second")]
        assert page == [(r.stage, r.level, r.address, r.guest_level) for r in core.refs]
        assert w.pa == core.pa


def test_symbols_name_every_reference():
    b = two_vms().build()
    w = b.translate("00:02.0", 0x400000, pasid=5)
    names = [b.name(r.address) for r in w.refs]
    assert names[0].startswith("IOMMU root table")
    assert names[1].startswith("IOMMU context table")
    assert names[2].startswith("IOMMU PASID directory")
    assert names[3].startswith("IOMMU PASID table")
    firsts = [b.name(r.address) for r in w.refs if r.stage == "first"]
    assert firsts[0].startswith("VM vm1 process 'app' PML4 table")
    assert all(n.startswith("VM vm1 process 'app' ") for n in firsts)
    seconds = {b.name(r.address).split(" +")[0] for r in w.refs if r.stage == "second"}
    assert seconds <= {"VM vm1 SL-PML4 table", "VM vm1 SL-PDPT table", "VM vm1 SL-PD table",
                       "VM vm1 SL-PT table"}


def test_steps_unbind_remap_and_pasid_entry_edit():
    s = two_vms()
    s.step("unmap", process="host/drv", va=0x10000000, size="1 MiB")
    s.step("map", process="host/drv", va=0x10000000, size="4 KiB", perms="r")
    s.step("pasid-entry", device="00:02.0", pasid=5, second_of="vm2")
    s.step("unbind", device="01:00.0", pasid=1)
    b = s.build()
    before = b.translate("01:00.0", 0x10000000, pasid=1, access="w")
    assert before.ok
    label, writes, invs = b.apply()
    assert writes and invs, "an unmap writes leaves and invalidates the IOTLB"
    assert not b.translate("01:00.0", 0x10000000, pasid=1).ok
    b.apply()
    w = b.translate("01:00.0", 0x10000000, pasid=1, access="w")
    assert not w.ok and w.fault.reason == "permission"
    assert b.translate("01:00.0", 0x10000000, pasid=1).ok
    # vm1's PASID 5 now walks through vm2's second stage.
    _, writes, invs = b.apply()
    assert any("pasid-entry" in wr[3] for wr in writes)
    from svmkit.vtd import PasidCacheInv
    assert isinstance(invs[0], PasidCacheInv) and invs[0].pasid == 5
    w = b.translate("00:02.0", 0x400000, pasid=5)
    for r in w.refs:
        if r.stage == "second":
            assert b.name(r.address).startswith("VM vm2 ")
    b.apply()
    w = b.translate("01:00.0", 0x10000000, pasid=1)
    assert not w.ok and w.fault.stage == "pasid-entry"
    with pytest.raises(ValueError, match="step"):
        b.apply()


def test_shipped_examples_build():
    from svmkit.scenario import examples
    built = 0
    for name in examples():
        s = load(name)
        try:
            b = s.build(run_steps=True)
        except ValueError as e:         # a model whose package is not in this build
            assert "not installed" in str(e), (name, e)
            continue
        assert b.steps_done == len(s.steps)
        built += 1
    assert built >= 5


def test_extended_context_mode_guest_owns_pasid_table():
    """VT-d 2.x: the same nested scenario, but the PASID table is the
    guest's, at a GPA that the second stage translates before it is read."""
    s = load("nested-vtd")
    s.model = "vtd-ecs"
    b = s.build(caches="off")
    ref = load("nested-vtd").build(caches="off")
    for m in s.get_process("vm1/app").maps:
        w, w0 = b.translate("00:02.0", m.va + 8, pasid=5), ref.translate("00:02.0", m.va + 8,
                                                                         pasid=5)
        assert w.ok and w.pa == w0.pa
    entry = next(r for r in w.refs if r.structure == "pasid-entry")
    sym = b.symbols.lookup(entry.address)
    assert sym.owner == "vm1" and "guest-owned" in sym.detail
    i = w.refs.index(entry)
    assert [r.stage for r in w.refs[i - 3:i]] == ["second"] * 3   # located through stage 2
    from svmkit.graphs import audit
    assert audit(b).ok
    bad = load("broken-isolation")
    bad.model = "vtd-ecs"
    with pytest.raises(Exception, match="second_of"):
        bad.build()


@pytest.mark.parametrize("model, module", [("smmuv3", "svmkit.smmuv3"), ("amdvi", "svmkit.amdvi")])
def test_other_models_build_the_nested_example(model, module):
    """The same guest process, bound nested through each model's Driver:
    the walk reaches the same pages, with the model's own structures."""
    pytest.importorskip(module)
    from svmkit.graphs import audit
    s = load(f"nested-{model}")
    b = s.build(caches="off")
    ref = load("nested-vtd").build(caches="off")
    for m in s.get_process("vm1/app").maps:
        for off in (0, m.size - 1):
            w = b.translate("00:02.0", m.va + off, pasid=5)
            w0 = ref.translate("00:02.0", m.va + off, pasid=5)
            assert w.ok and w.pa == w0.pa, (model, hex(m.va + off), w.fault)
    # The guest owns its PASID structure (CD table, GCR3 table): it is in vm1's RAM.
    structs = [r for r in w.refs if r.stage not in ("first", "second")]
    owners = {b.symbols.lookup(r.address).owner for r in structs}
    assert "vm1" in owners and "iommu" in owners
    assert audit(b).ok
    b.run()                                 # map a buffer, then unbind
    assert not b.translate("00:02.0", 0x600000, pasid=5).ok


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from svmkit.scenario import ScenarioError  # noqa: E402


@st.composite
def messy(draw):
    """Scenarios with plausible and implausible values mixed."""
    s = Scenario("fuzz", model="vtd", memory=draw(st.sampled_from([1 << 30, 1 << 28])))
    nvm = draw(st.integers(0, 2))
    for i in range(nvm):
        s.vm(f"vm{i}", ram=draw(st.sampled_from([64 << 20, 32 << 20, 64 << 20, 3 << 20])),
             second_levels=draw(st.sampled_from([3, 4, 4, 4, 6])))
    owners = [None] + [f"vm{i}" for i in range(nvm)]
    for j in range(draw(st.integers(1, 3))):
        p = s.process(f"p{j}", vm=draw(st.sampled_from(owners)),
                      levels=draw(st.sampled_from([4, 4, 4, 5, 3])))
        for _ in range(draw(st.integers(1, 3))):
            bad = draw(st.integers(0, 9)) == 9     # one mapping in ten is a mistake
            va = draw(st.sampled_from([1 << 47, 0x1001] if bad else
                                      [0x400000, 0x7f0000000000, 0x40000000, 0x200000]))
            p.map(va, draw(st.sampled_from([100] if bad else [4096, 1 << 21, 12288])),
                  draw(st.sampled_from(["rw", "r", "rx", "rwx"])),
                  draw(st.sampled_from([1 << 16] if bad else [None, None, 4096])))
    bdfs = ["00:02.0", "00:03.0", "01:00.0"]
    for k in range(draw(st.integers(1, 3))):
        s.device(bdfs[k], vm=draw(st.sampled_from(owners)))
    procs = [p.qname for p in s.processes()]
    for d in s.devices:
        mine = [q for q in procs if q.split("/")[0] == d.owner]
        if not draw(st.integers(0, 3)) == 3 and mine:     # mostly sensible binds ...
            s.bind(draw(st.sampled_from(mine)), d.bdf, draw(st.sampled_from([1, 5, 63, 64])))
        elif draw(st.booleans()):            # ... and some that are not
            s.bind(draw(st.sampled_from(procs + ["host/nobody"])), d.bdf,
                   draw(st.sampled_from([0, 1 << 20, 7])))
    return s


@given(messy())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_scenario_is_refused_with_reasons_or_built(s):
    """Either validation names what is wrong, or the scenario builds and
    every bound process's mappings translate through its device."""
    try:
        s.validate()
    except ScenarioError as e:
        assert e.problems and all(p.path and p.what for p in e.problems)
        return
    b = s.build(caches="off")
    for bd in s.binds:
        p = s.get_process(bd.process)
        for m in p.maps:
            w = b.translate(bd.device, m.va, pasid=bd.pasid)
            assert w.ok, (bd, m, w.fault)


def test_remap_moves_pages_and_invalidates():
    s = load("userspace-driver-2017")
    s.steps = []
    s.step("remap", process="host/udrv", va=0x10000000, size="4 KiB")
    b = s.build(caches="off")
    before = b.translate("01:00.0", 0x10000010, pasid=1).pa
    other = b.translate("01:00.0", 0x10001010, pasid=1).pa
    label, writes, invs = b.apply()
    after = b.translate("01:00.0", 0x10000010, pasid=1)
    assert after.ok and after.pa != before
    assert b.symbols.lookup(after.pa).owner == "host/udrv"
    assert b.translate("01:00.0", 0x10001010, pasid=1).pa == other   # the rest stays
    assert writes and invs
    assert s.get_process("host/udrv").maps[1].size == 2 << 20        # the file is unchanged
