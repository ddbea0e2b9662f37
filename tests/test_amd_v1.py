"""The AMD v1 host page-table format (48882 2.2.3) through both walkers."""

import pytest
from hypothesis import given, settings, strategies as st

from svmkit import FrameAllocator, Memory, walk
from svmkit.pagetable import map_page
from svmkit.formats import amd_v1, get

FMT = amd_v1.FORMAT
ENGINES = ("reference", "jit")


def setup(levels=4):
    mem = Memory()
    alloc = FrameAllocator(mem, base=0x100000)
    return mem, alloc, alloc.alloc(), FMT.descriptor(levels)


def test_registered_by_name():
    assert get("amd_v1") is FMT


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("levels", [3, 4, 5])
def test_map_and_walk_every_level(engine, levels):
    mem, alloc, root, d = setup(levels)
    page = alloc.alloc()
    va = 0x1234_5000 | (0x3 << 30)
    map_page(mem, alloc, root, va, page, FMT, d)
    w = walk(mem, va | 0x456, root=root, fmt="amd_v1", levels=levels, engine=engine)
    assert w.ok and w.pa == page | 0x456 and w.page_size == 4096
    assert [r.level for r in w.refs] == list(range(levels, 0, -1))
    assert [r.structure for r in w.refs][-1] == "pte-l1"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("level,size", [(2, 1 << 21), (3, 1 << 30)])
def test_default_size_large_pages(engine, level, size):
    mem, alloc, root, d = setup(4)
    pa = 0x4000_0000
    va = 0x80_0000_0000 + 5 * size
    map_page(mem, alloc, root, va, pa, FMT, d, level=level)
    w = walk(mem, va + 0x1234, root=root, fmt="amd_v1", levels=4, engine=engine)
    assert w.ok and w.page_size == size and w.pa == pa + 0x1234
    assert w.refs[-1].structure == f"pte-l{level}"


@pytest.mark.parametrize("engine", ENGINES)
def test_level_skipping(engine):
    """A level-4 PDE with Next Level 2 points straight at a level-2 table: three reads."""
    mem, alloc, root, d = setup(4)
    l2, l1, page = alloc.alloc(), alloc.alloc(), alloc.alloc()
    va = 0x3 << 21 | 0x7 << 12         # level-4 and level-3 indices are 0 (skipped)
    mem.write_u64(root, FMT.table(l2, 4, next_level=2))
    mem.write_u64(l2 + 3 * 8, FMT.table(l1, 2))
    mem.write_u64(l1 + 7 * 8, FMT.leaf(page))
    w = walk(mem, va, root=root, fmt="amd_v1", levels=4, engine=engine)
    assert w.ok and w.pa == page
    assert [(r.level, r.address) for r in w.refs] == [(4, root), (2, l2 + 24), (1, l1 + 56)]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("nl", [4, 5, 6, 7])
def test_next_level_not_below_is_reserved(engine, nl):
    """Next Level >= the entry's level (and 7, the size-encoded PTE this model does not
    express) is a malformed entry: reserved-bit, an IO_PAGE_FAULT with RZ."""
    mem, alloc, root, d = setup(4)
    mem.write_u64(root, alloc.alloc() | amd_v1.PR | nl << 9 | amd_v1.IR)
    w = walk(mem, 0x1000, root=root, fmt="amd_v1", levels=4, engine=engine)
    assert not w.ok and w.fault.reason == "reserved-bit" and w.fault.level == 4
    assert w.fault.code == amd_v1.IO_PAGE_FAULT


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bit,ok", [(52, False), (58, False), (59, True), (60, True)])
def test_reserved_bits_of_a_pte(engine, bit, ok):
    mem, alloc, root, d = setup(4)
    page = alloc.alloc()
    map_page(mem, alloc, root, 0x5000, page, FMT, d)
    pte = walk(mem, 0x5000, root=root, fmt="amd_v1", levels=4).refs[-1].address
    mem.write_u64(pte, mem.read_u64(pte) | 1 << bit)
    w = walk(mem, 0x5000, root=root, fmt="amd_v1", levels=4, engine=engine)
    assert w.ok is ok
    if not ok:
        assert w.fault.reason == "reserved-bit" and w.fault.level == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_pde_reserved_bit_60(engine):
    """FC (bit 60) is a PTE attribute; in a PDE bits 60:52 are reserved."""
    mem, alloc, root, d = setup(4)
    map_page(mem, alloc, root, 0, alloc.alloc(), FMT, d)
    mem.write_u64(root, mem.read_u64(root) | amd_v1.FC)
    w = walk(mem, 0, root=root, fmt="amd_v1", levels=4, engine=engine)
    assert not w.ok and w.fault.reason == "reserved-bit" and w.fault.level == 4


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("where", [4, 3, 2, 1])
def test_ir_iw_are_anded_over_the_walk(engine, where):
    mem, alloc, root, d = setup(4)
    map_page(mem, alloc, root, 0x9000, alloc.alloc(), FMT, d)
    w = walk(mem, 0x9000, root=root, fmt="amd_v1", levels=4, engine=engine)
    entry = w.refs[4 - where].address
    mem.write_u64(entry, mem.read_u64(entry) & ~amd_v1.IW)
    assert walk(mem, 0x9000, root=root, fmt="amd_v1", levels=4, engine=engine).ok
    ww = walk(mem, 0x9000, root=root, fmt="amd_v1", levels=4, access="w", engine=engine)
    assert not ww.ok and ww.fault.reason == "permission"
    mem.write_u64(entry, mem.read_u64(entry) & ~amd_v1.IR)
    wr = walk(mem, 0x9000, root=root, fmt="amd_v1", levels=4, engine=engine)
    assert not wr.ok and wr.fault.reason == "permission"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("levels", [1, 2, 3, 4])
def test_address_above_mode_width(engine, levels):
    mem, alloc, root, d = setup(levels)
    w = walk(mem, 1 << (12 + 9 * levels), root=root, fmt="amd_v1", levels=levels,
             engine=engine)
    assert not w.ok and w.fault.reason == "address-width"


def test_fault_codes():
    assert FMT.fault_code("not-present", "r", False) == 0x2
    assert FMT.fault_code("non-existent-memory", "r", False) == 0x4


def test_builders_check_arguments():
    with pytest.raises(ValueError, match="next_level"):
        FMT.table(0x1000, 3, next_level=3)
    with pytest.raises(ValueError, match="level"):
        FMT.leaf(0x1000, 6)
    with pytest.raises(ValueError, match="levels"):
        FMT.descriptor(6)


def test_decode_names_fields():
    e = FMT.table(0x7000, 4, next_level=1, write=False)
    f = FMT.decode(e, 4)
    assert f["form"] == "table" and f["next_level"] == 1 and f["addr"] == 0x7000
    assert f["ir"] == 1 and f["iw"] == 0 and f["reserved"] == 0
    f = FMT.decode(FMT.leaf(0x4000_0000, 3, fc=True) | 1 << 55, 3)
    assert f["form"] == "leaf" and f["fc"] == 1 and f["reserved"] == 1 << 55


@settings(max_examples=60, deadline=None)
@given(levels=st.integers(2, 5), data=st.data())
def test_skipping_property(levels, data):
    """Random chains of tables (each PDE naming any lower level) end where the address
    bits of the visited levels say, and both walkers agree on every reference."""
    mem, alloc, root, d = setup(levels)
    page = alloc.alloc()
    visited, lv = [levels], levels
    while lv > 1:
        lv = data.draw(st.integers(1, lv - 1))
        visited.append(lv)
    va = 0
    for lv in visited:                       # skipped levels keep index 0
        va |= data.draw(st.integers(0, 511)) << (12 + 9 * (lv - 1))
    table = root
    for here, nxt in zip(visited, visited[1:]):
        new = alloc.alloc()
        mem.write_u64(table + ((va >> (12 + 9 * (here - 1))) & 511) * 8,
                      FMT.table(new, here, next_level=nxt))
        table = new
    mem.write_u64(table + ((va >> 12) & 511) * 8, FMT.leaf(page))
    off = data.draw(st.integers(0, 4095))
    a = walk(mem, va | off, root=root, fmt="amd_v1", levels=levels, engine="reference")
    b = walk(mem, va | off, root=root, fmt="amd_v1", levels=levels, engine="jit")
    assert a.ok and a.pa == page | off
    assert [r.level for r in a.refs] == visited
    assert a.refs == b.refs and a.pa == b.pa


def test_table_entry_needs_its_level():
    """A builder that does not pass the level must fail loudly, not build NL=1 entries."""
    with pytest.raises(ValueError, match="level"):
        FMT.table(0x1000)
    assert FMT.table(0x1000, 4) >> 9 & 7 == 3
