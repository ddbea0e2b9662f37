"""What svmkit.walk must do, checked on tables built for each case (both engines)."""

import numpy as np
import pytest

import svmkit
from svmkit import FrameAllocator, Memory
from svmkit.formats import vtd_sl, x86_64
from svmkit.pagetable import PageTable
from walkcases import Nested

ENGINES = ["reference", "jit"]
X, S = x86_64.FORMAT, vtd_sl.FORMAT


def host_table(levels=4, phys_bits=52, fmt="x86_64"):
    mem = Memory()
    alloc = FrameAllocator(mem, base=0x10_0000)
    return mem, PageTable(mem, alloc.alloc, fmt=fmt, levels=levels, phys_bits=phys_bits)


@pytest.mark.parametrize("engine", ENGINES)
def test_nested_4_plus_4_is_24_references_in_two_dimensional_order(engine):
    sys = Nested(seed=1)
    va = 0x7F12_3456_7000
    gpa_page = sys.galloc()
    sys.gpt.map(va, gpa_page)
    w = svmkit.walk(sys.mem, va + 0xABC, engine=engine, **sys.keywords())
    assert w.ok and w.gpa == gpa_page + 0xABC
    assert w.pa == sys.host(gpa_page) + 0xABC
    assert len(w.refs) == 24
    order = [(r.stage, r.level, r.guest_level) for r in w.refs]
    expected = []
    for g in (4, 3, 2, 1, 0):
        expected += [("second", h, g) for h in (4, 3, 2, 1)]
        if g:
            expected.append(("first", g, None))
    assert order == expected
    # every first-stage read lands at the host copy of a guest table
    firsts = [r.address & ~0xFFF for r in w.refs if r.stage == "first"]
    assert firsts[0] == sys.host(sys.gpt.root)
    assert all(a in {sys.host(t) for t in sys.gpt.tables} for a in firsts)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("first_levels,second_levels", [(4, 4), (5, 5), (4, 3), (5, 4)])
@pytest.mark.parametrize("page_size", [4096, 2 << 20, 1 << 30])
def test_reference_count_is_n_times_m_plus_one_plus_m(engine, first_levels, second_levels,
                                                      page_size):
    sys = Nested(guest_frames=16, first_levels=first_levels, second_levels=second_levels)
    va = 0x40_0000_0000
    # a large guest page only needs its GPA aligned; the SL maps just the frame we touch
    gpa = 0x4000_0000 if page_size > 4096 else sys.galloc()
    if page_size > 4096:
        sys.sl.map(gpa, 0x3_0000_0000)
    sys.gpt.map(va, gpa, page_size)
    w = svmkit.walk(sys.mem, va, engine=engine, **sys.keywords())
    n = first_levels - {4096: 0, 2 << 20: 1, 1 << 30: 2}[page_size]
    m = second_levels
    assert w.ok, w.fault
    assert len(w.refs) == n * (m + 1) + m
    assert w.page_size == 4096      # the second level maps 4 KiB pages
    if (first_levels, second_levels) == (5, 5) and page_size == 4096:
        assert len(w.refs) == 35


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("page_size,level", [(4096, 1), (2 << 20, 2), (1 << 30, 3)])
def test_large_pages_one_dimensional(engine, page_size, level):
    mem, pt = host_table()
    va = 0xFFFF_8000_0000_0000 + 7 * page_size        # canonical, negative half
    pt.map(va, 0x1_8000_0000 if page_size > 4096 else 0x5000, page_size)
    off = page_size - 8
    w = svmkit.walk(mem, va + off, root=pt.root, engine=engine)
    assert w.ok and w.page_size == page_size
    assert w.pa == (0x1_8000_0000 if page_size > 4096 else 0x5000) + off
    assert len(w.refs) == 5 - level
    assert w.refs[-1].structure == {1: "pte", 2: "pde-2m", 3: "pdpte-1g"}[level]


@pytest.mark.parametrize("engine", ENGINES)
def test_five_level_first_stage(engine):
    mem, pt = host_table(levels=5)
    va = 0x00AB_CDEF_1234_5000                       # uses bits above 47
    pt.map(va, 0x9000)
    w = svmkit.walk(mem, va, root=pt.root, levels=5, engine=engine)
    assert w.ok and w.pa == 0x9000 and len(w.refs) == 5
    w4 = svmkit.walk(mem, va, root=pt.root, levels=4, engine=engine)
    assert w4.fault.reason == "address-width" and w4.fault.code is None


@pytest.mark.parametrize("engine", ENGINES)
def test_x86_permissions_and_page_fault_codes(engine):
    mem, pt = host_table()
    ro, sup, nx = 0x1000_0000, 0x2000_0000, 0x3000_0000
    pt.map(ro, 0xA000, write=False)
    pt.map(sup, 0xB000, user=False)
    pt.map(nx, 0xC000, xd=True)

    def fault(va, **kw):
        w = svmkit.walk(mem, va, root=pt.root, engine=engine, **kw)
        return None if w.ok else (w.fault.reason, w.fault.code, w.fault.level)

    assert fault(ro, access="r", user=True) is None
    assert fault(ro, access="w", user=True) == ("permission", 0b00111, 1)
    assert fault(ro, access="w") == ("permission", 0b00011, 1)       # CR0.WP=1
    assert fault(ro, access="w", wp=False) is None                   # CR0.WP=0
    assert fault(sup, access="r", user=True) == ("permission", 0b00101, 1)
    assert fault(sup, access="r") is None
    assert fault(nx, access="x", user=True) == ("permission", 0b10101, 1)
    assert fault(nx, access="r", user=True) is None
    assert fault(0x4000_0000, access="w", user=True) == ("not-present", 0b00110, 3)


@pytest.mark.parametrize("engine", ENGINES)
def test_table_entry_rights_restrict_everything_below(engine):
    mem, pt = host_table()
    va = 0x5000_0000
    pt.map(va, 0xA000)
    pml4e = pt.root + ((va >> 39) & 511) * 8
    mem.write_u64(pml4e, mem.read_u64(pml4e) & ~x86_64.US)
    w = svmkit.walk(mem, va, root=pt.root, user=True, engine=engine)
    assert w.fault.reason == "permission" and w.fault.level == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_x86_reserved_bits(engine):
    mem, pt = host_table(phys_bits=46)
    va = 0x6000_0000
    leaf = pt.map(va, 0x20_0000, 2 << 20)

    def walk():
        return svmkit.walk(mem, va, root=pt.root, phys_bits=46, user=True, engine=engine)

    assert walk().ok
    mem.write_u64(leaf, mem.read_u64(leaf) | 1 << 12)        # PAT in a 2 MiB leaf: allowed
    assert walk().ok
    mem.write_u64(leaf, mem.read_u64(leaf) | 1 << 13)        # low frame bit: reserved
    w = walk()
    assert (w.fault.reason, w.fault.level, w.fault.code) == ("reserved-bit", 2, 0b01101)
    mem.write_u64(leaf, X.leaf(1 << 46, 2))                  # beyond MAXPHYADDR
    assert walk().fault.reason == "reserved-bit"
    pml4e = pt.root + ((va >> 39) & 511) * 8
    mem.write_u64(leaf, X.leaf(0x20_0000, 2))
    mem.write_u64(pml4e, mem.read_u64(pml4e) | x86_64.PS)    # PS is reserved in a PML4E
    w = walk()
    assert (w.fault.reason, w.fault.level) == ("reserved-bit", 4)


@pytest.mark.parametrize("engine", ENGINES)
def test_accessed_and_dirty_flags(engine):
    sys = Nested(seed=3)
    va = 0x1234_5000
    gpa = sys.galloc()
    leaf_slot = sys.gpt.map(va, gpa)
    w = svmkit.walk(sys.mem, va, engine=engine, **sys.keywords(access="r"))
    firsts = [r.address for r in w.refs if r.stage == "first"]
    assert all(sys.mem.read_u64(a) & x86_64.A for a in firsts)
    assert not sys.mem.read_u64(firsts[-1]) & x86_64.D
    seconds = [r.address for r in w.refs if r.stage == "second"]
    assert not any(sys.mem.read_u64(a) & vtd_sl.A for a in seconds)   # SSADE off
    w = svmkit.walk(sys.mem, va, engine=engine, **sys.keywords(access="w", second_ad=True))
    assert w.ok and sys.mem.read_u64(firsts[-1]) & x86_64.D
    seconds = [r for r in w.refs if r.stage == "second"]
    assert all(sys.mem.read_u64(r.address) & vtd_sl.A for r in seconds)
    final = seconds[-1]
    assert final.guest_level == 0 and sys.mem.read_u64(final.address) & vtd_sl.D
    assert not sys.mem.read_u64(seconds[3].address) & vtd_sl.D       # table reads: no D
    assert firsts[-1] == leaf_slot          # the PTE that PageTable.map wrote


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("access", ["r", "w"])
def test_first_stage_flags_need_second_stage_write(engine, access):
    """Setting A or D in a guest entry writes guest memory: a second stage that maps the
    guest's page-table page read-only refuses it (VT-d 0x77), and nothing is written."""
    sys = Nested(seed=6)
    va = 0x5555_4000
    leaf_slot = sys.gpt.map(va, sys.galloc())
    pte_gpa = next(g for g in sys.gpa_to_hpa if sys.host(g) == leaf_slot & ~0xFFF) \
        + (leaf_slot & 0xFFF)
    sys.sl.map(pte_gpa & ~0xFFF, leaf_slot & ~0xFFF, r=True, w=False)   # read-only now
    before = sys.mem.read_u64(leaf_slot)
    kw = sys.keywords(access=access)
    w = svmkit.walk(sys.mem, va, engine=engine, **kw)
    assert not w.ok and (w.fault.stage, w.fault.reason) == ("second", "ad-permission")
    assert w.fault.address == pte_gpa and w.fault.level == 1 and w.fault.code == 0x77
    assert sys.mem.read_u64(leaf_slot) == before                 # no flag was set
    assert len(w.refs) == 4 * 5                                  # no read beyond the walk
    assert svmkit.fault_name(svmkit.translate(sys.mem, [va], **kw)[1][0]) == \
        "second-stage ad-permission"
    # with the flags already there, nothing needs writing and the walk completes
    sys.mem.write_u64(leaf_slot, before | x86_64.A | x86_64.D)
    w = svmkit.walk(sys.mem, va, engine=engine, **kw)
    assert w.ok and len(w.refs) == 24


@pytest.mark.parametrize("engine", ENGINES)
def test_second_level_alone_and_its_faults(engine):
    mem, sl = host_table(levels=3, fmt="vtd_sl")
    gpa = 0x12_3456_7000
    sl.map(gpa, 0x8_0000_0000 + 0x7000, r=True, w=False)
    kw = dict(root=sl.root, fmt="vtd_sl", levels=3, engine=engine)
    w = svmkit.walk(mem, gpa + 5, **kw)
    assert w.ok and w.pa == 0x8_0000_7005 and [r.structure for r in w.refs] == \
        ["sl-pdpte", "sl-pde", "sl-pte"]
    w = svmkit.walk(mem, gpa, access="w", **kw)
    assert (w.fault.reason, w.fault.code) == ("permission", 5)
    w = svmkit.walk(mem, gpa + 0x1000, **kw)
    assert (w.fault.reason, w.fault.code) == ("not-present", 6)
    # walked alone, a second-level walk is still the second stage
    assert w.fault.stage == "second" and {r.stage for r in w.refs} == {"second"}
    w = svmkit.walk(mem, 1 << 39, **kw)
    assert (w.fault.reason, w.fault.code) == ("address-width", 4)
    pdpte = sl.root + ((gpa >> 30) & 511) * 8
    mem.write_u64(pdpte, mem.read_u64(pdpte) | vtd_sl.SNP)   # SNP: leaf only
    w = svmkit.walk(mem, gpa, **kw)
    assert (w.fault.reason, w.fault.code, w.fault.level) == ("reserved-bit", 0xC, 3)


@pytest.mark.parametrize("engine", ENGINES)
def test_second_stage_fault_reports_the_gpa(engine):
    sys = Nested(seed=4)
    va = 0x7000_0000
    sys.gpt.map(va, 0x7F00_0000)            # a GPA the second level does not map
    w = svmkit.walk(sys.mem, va, engine=engine, **sys.keywords())
    assert w.fault.stage == "second" and w.fault.reason == "not-present"
    # four guest levels (4 + 1 each), then the final GPA: its SL-PML4E is shared with the
    # guest's RAM, its SL-PDPTE is empty
    assert w.fault.address == 0x7F00_0000 and w.fault.level == 3
    assert len(w.refs) == 4 * 5 + 2


@pytest.mark.parametrize("engine", ENGINES)
def test_non_existent_memory_and_cycles(engine):
    mem = Memory(size=1 << 30)
    root = 0x1000
    mem.write_u64(root, X.table(1 << 31))              # next table beyond installed RAM
    w = svmkit.walk(mem, 0, root=root, engine=engine)
    assert (w.fault.reason, w.fault.level) == ("non-existent-memory", 3)
    w = svmkit.walk(mem, 0, root=1 << 31, engine=engine)
    assert (w.fault.reason, w.fault.level, len(w.refs)) == ("non-existent-memory", 4, 0)
    mem.write_u64(root, X.table(root))                 # a table that points at itself
    w = svmkit.walk(mem, 0, root=root, engine=engine)
    assert len(w.refs) == 4 and all(r.address == root for r in w.refs)


@pytest.mark.parametrize("kw,word", [
    (dict(fmt="arm"), "fmt="), (dict(levels=3), "levels="), (dict(access="rw"), "access="),
    (dict(root=0x1001), "root="), (dict(root=-4096), "root="), (dict(root=1 << 52), "root="),
    (dict(second_root=0x10, levels=4), "second_root="),
    (dict(second_root=0x1000, second_levels=6), "second_levels="),
    (dict(engine="gpu"), "engine="), (dict(phys_bits=60), "phys_bits="),
])
def test_bad_arguments_name_themselves(kw, word):
    args = dict(root=0x1000)
    args.update(kw)
    with pytest.raises(ValueError, match=word):
        svmkit.walk(Memory(), 0, **args)


@pytest.mark.parametrize("va", [-1, 1 << 64, 1.0, "0x10"])
def test_bad_addresses(va):
    with pytest.raises(ValueError, match="va="):
        svmkit.walk(Memory(), va, root=0x1000)


def test_translate_matches_walk_and_decodes_faults():
    sys = Nested(guest_frames=256, seed=5)
    rng = np.random.default_rng(5)
    vas = []
    for i in range(20):
        va = int(rng.integers(0, 1 << 47)) & ~0xFFF
        sys.gpt.map(va, sys.galloc(), write=bool(i % 2))
        vas.append(va + int(rng.integers(0, 4096)))
    vas += [0x1000, (1 << 64) - 4096, 1 << 50]
    for access in "rw":
        pa, fault = svmkit.translate(sys.mem, np.array(vas, dtype=np.uint64),
                                     **sys.keywords(access=access, user=True))
        for va, p, f in zip(vas, pa, fault):
            w = svmkit.walk(sys.mem, va, **sys.keywords(access=access, user=True))
            assert (int(p), int(f) == 0) == ((w.pa or 0), w.ok)
            if not w.ok:
                assert svmkit.fault_name(f) == f"{w.fault.stage}-stage {w.fault.reason}"
    assert svmkit.fault_name(0x11) == "second-stage not-present"
    with pytest.raises(ValueError, match="vas"):
        svmkit.translate(sys.mem, [-5], **sys.keywords())
