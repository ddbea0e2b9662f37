"""The VMSAv8-64 formats (arm64_s1, arm64_s2) walked by the reference walker."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from svmkit.formats import arm64_s1, arm64_s2, layout as L
from svmkit.memory import FrameAllocator, Memory
from svmkit.pagetable import GuestMemory
from svmkit.smmuv3.tables import entry_address, map_page, new_root
from svmkit.walker import faults as F
from svmkit.walker import jit
from svmkit.walker import reference as R

S1, S2 = arm64_s1.FORMAT, arm64_s2.FORMAT
GIB = 1 << 30


def setup(size=1 << 34):
    mem = Memory(size)
    return mem, FrameAllocator(mem, 0x100000)


def walk1(mem, va, root, d, access=F.R, user=False):
    """One stage; returns (reason name, level, pa, size, refs)."""
    refs = []
    reason, _, level, _, pa, size, _ = R.walk(mem, va, root, d, 0, None, False, access,
                                               user, True, refs)
    return F.REASONS[reason], level, pa, size, refs


def test_4k_page_walk_reads_four_levels():
    mem, alloc = setup()
    d = S1.descriptor(4, 48)
    root = new_root(alloc, d)
    va = 0x7F12_3456_7000
    map_page(mem, alloc, root, va, 0x2_0000_5000, S1, d)
    reason, level, pa, size, refs = walk1(mem, va | 0xABC, root, d)
    assert (reason, level, pa, size) == ("ok", 1, 0x2_0000_5ABC, 4096)
    assert [r[1] for r in refs] == [4, 3, 2, 1]
    assert S1.structure(1, True) == "s1-l3-page" and S1.structure(4, False) == "s1-l0"


@pytest.mark.parametrize("level,size", [(2, 1 << 21), (3, GIB)])
def test_4k_blocks(level, size):
    mem, alloc = setup()
    d = S1.descriptor(4, 48)
    root = new_root(alloc, d)
    va = 3 * GIB + 5 * (1 << 21)
    map_page(mem, alloc, root, va, 0x1_4000_0000, S1, d, level=level)
    reason, lv, pa, got, refs = walk1(mem, va + 0x1234, root, d)
    base = 0x1_4000_0000 & ~(size - 1)
    assert (reason, lv, got) == ("ok", level, size)
    assert pa == base + ((va + 0x1234) & (size - 1))
    assert len(refs) == 5 - level


def test_block_encoding_is_invalid_at_level_0_and_level_3():
    mem, alloc = setup()
    d = S1.descriptor(4, 48)
    root = new_root(alloc, d)
    va = 0x1000
    map_page(mem, alloc, root, va, 0x5000, S1, d)
    # level 3 with bits[1:0] = 01 is reserved: a Translation fault
    pte = entry_address(mem, root, va, d, 1)
    mem.write_u64(pte, mem.read_u64(pte) & ~arm64_s1.TABLE)
    assert walk1(mem, va, root, d)[:2] == ("not-present", 1)
    # level 0 with 01 (a block there needs 52-bit addressing): a Translation fault
    mem.write_u64(root, S1.leaf(0, 2))
    assert walk1(mem, va, root, d)[:2] == ("not-present", 4)
    assert S1.fault_code("not-present") == 0x10


def test_input_beyond_t0sz_is_a_translation_fault():
    mem, alloc = setup()
    d = S1.descriptor(3, 48, input_bits=39)          # T0SZ = 25: starts at level 1
    root = new_root(alloc, d)
    map_page(mem, alloc, root, 0x80_0000_0000 - 4096, 0x9000, S1, d)
    assert walk1(mem, 0x80_0000_0000 - 4096, root, d)[0] == "ok"
    assert walk1(mem, 0x80_0000_0000, root, d)[0] == "address-width"
    assert S1.fault_code("address-width") == 0x10


def test_short_top_table():
    mem, alloc = setup()
    d = S1.descriptor(4, 48, input_bits=40)          # level 0 indexes one bit: 2 entries
    assert d[4, L.L_BITS] == 1
    root = new_root(alloc, d)
    va = (1 << 39) | 0x1000
    map_page(mem, alloc, root, va, 0x7000, S1, d)
    reason, _, pa, _, refs = walk1(mem, va, root, d)
    assert (reason, pa) == ("ok", 0x7000) and refs[0][2] == root + 8


def test_access_flag_fault_and_affd():
    mem, alloc = setup()
    d = S1.descriptor(4, 48)
    root = new_root(alloc, d)
    map_page(mem, alloc, root, 0x1000, 0x5000, S1, d, af=False)
    assert walk1(mem, 0x1000, root, d)[:2] == ("access-flag", 1)
    assert S1.fault_code("access-flag") == 0x12
    assert walk1(mem, 0x1000, root, S1.descriptor(4, 48, affd=True))[0] == "ok"


def test_output_beyond_ips_is_an_address_size_fault():
    mem, alloc = setup()
    d = S1.descriptor(4, 40)                          # IPS 40 bits
    root = new_root(alloc, d)
    map_page(mem, alloc, root, 0x1000, 1 << 41, S1, d)
    assert walk1(mem, 0x1000, root, d)[:2] == ("address-size", 1)
    assert S1.fault_code("address-size") == 0x11
    assert walk1(mem, 0x1000, root, S1.descriptor(4, 44))[0] == "ok"
    # a table address beyond the output size faults at the entry that holds it
    mem.write_u64(root, S1.table(1 << 42))
    assert walk1(mem, 0x1000, root, d)[:2] == ("address-size", 4)


@pytest.mark.parametrize("leaf,table,access,user,ok", [
    ({}, {}, F.W, True, True),
    ({"write": False}, {}, F.W, False, False),       # AP[2]: read-only
    ({"write": False}, {}, F.R, True, True),
    ({"user": False}, {}, F.R, True, False),          # AP[1]=0: no EL0 access
    ({"user": False}, {}, F.R, False, True),
    ({}, {"aptable": 2}, F.W, False, False),          # APTable[1]: no writes below
    ({}, {"aptable": 1}, F.R, True, False),           # APTable[0]: no EL0 below
    ({}, {"aptable": 1}, F.W, False, True),
    ({"uxn": True}, {}, F.X, True, False),
    ({"uxn": True}, {}, F.X, False, True),
    ({"pxn": True}, {}, F.X, False, False),
    ({}, {"uxntable": True}, F.X, True, False),
    ({}, {"pxntable": True}, F.X, False, False),
    ({}, {"pxntable": True}, F.X, True, True),
])
def test_stage1_permissions(leaf, table, access, user, ok):
    mem, alloc = setup()
    d = S1.descriptor(4, 48)
    root = new_root(alloc, d)
    va = 0x40_0000_1000
    map_page(mem, alloc, root, va, 0x5000, S1, d, **leaf)
    top = root + 8 * (va >> 39)
    mem.write_u64(top, S1.table(mem.read_u64(top) & 0xFFFF_FFFF_F000, **table))
    reason = walk1(mem, va, root, d, access, user)[0]
    assert reason == ("ok" if ok else "permission")
    if table:                                          # HAD: the table controls are ignored
        reason = walk1(mem, va, root, S1.descriptor(4, 48, had=True), access, user)[0]
        assert reason == "ok"


@pytest.mark.parametrize("read,write,xn,access,ok", [
    (True, True, False, F.W, True),
    (True, False, False, F.W, False),
    (False, True, False, F.R, False),
    (False, True, False, F.W, True),
    (True, True, True, F.X, False),
    (False, False, False, F.X, True),                 # a fetch needs no S2AP read
])
def test_stage2_permissions(read, write, xn, access, ok):
    mem, alloc = setup()
    d = S2.descriptor(3, 48, input_bits=39)
    root = new_root(alloc, d)
    map_page(mem, alloc, root, 0x8000, 0x5000, S2, d, read=read, write=write, xn=xn)
    assert walk1(mem, 0x8000, root, d, access)[0] == ("ok" if ok else "permission")


def test_stage2_concatenated_start_tables():
    mem, alloc = setup()
    # IPA 40 bits starting at level 1 (S2SL0 = 1): two concatenated level-1 tables
    levels = arm64_s2.start_levels(1, 4096)
    d = S2.descriptor(levels, 48, input_bits=40)
    assert levels == 3 and d[3, L.L_BITS] == 10
    root = new_root(alloc, d)
    assert root % 8192 == 0
    ipa = (1 << 39) + 0x3000
    map_page(mem, alloc, root, ipa, 0x6000, S2, d)
    reason, _, pa, _, refs = walk1(mem, ipa, root, d)
    assert (reason, pa) == ("ok", 0x6000)
    assert refs[0][2] == root + 4096                  # the second concatenated table
    with pytest.raises(ValueError, match="input_bits"):
        S2.descriptor(2, 48, input_bits=35)           # level 2 start: at most 34 bits
    with pytest.raises(ValueError, match="input_bits"):
        S1.descriptor(3, 48, input_bits=40)           # stage 1 never concatenates


@pytest.mark.parametrize("granule,levels,input_bits,page,block", [
    (16384, 4, 48, 1 << 14, 1 << 25),
    (16384, 3, 40, 1 << 14, 1 << 25),
    (65536, 3, 48, 1 << 16, 1 << 29),
    (65536, 2, 42, 1 << 16, 1 << 29),
])
def test_16k_and_64k_granules(granule, levels, input_bits, page, block):
    mem, alloc = setup()
    for fmt in (S1, S2):
        d = fmt.descriptor(levels, 48, granule=granule, input_bits=input_bits)
        root = new_root(alloc, d)
        va = (1 << (input_bits - 1)) + 3 * page
        map_page(mem, alloc, root, va, 0x4000_0000, fmt, d)
        reason, lv, pa, size, refs = walk1(mem, va + 0x10, root, d)
        assert (reason, lv, pa, size) == ("ok", 1, 0x4000_0010, page)
        assert len(refs) == levels
        va2 = (1 << (input_bits - 1)) + 5 * block
        map_page(mem, alloc, root, va2, 0x8000_0000, fmt, d, level=2)
        reason, lv, pa, size, _ = walk1(mem, va2 + page + 8, root, d)
        assert (reason, lv, pa, size) == ("ok", 2, 0x8000_0000 + page + 8, block)
        assert fmt.page_size(2, granule) == block


def test_no_level_1_block_with_64k():
    mem, alloc = setup()
    d = S1.descriptor(3, 48, granule=65536)
    root = new_root(alloc, d)
    mem.write_u64(root, S1.leaf(0, 3))               # bits[1:0] = 01 at level 1
    assert walk1(mem, 0x1000, root, d)[:2] == ("not-present", 3)


def test_nested_4_plus_4_reads_24_entries():
    mem, alloc = setup()
    d1, d2 = S1.descriptor(4, 48), S2.descriptor(4, 48)
    s2root = new_root(alloc, d2)
    guest = GuestMemory(mem, alloc, s2root, S2, d2, gpa_base=0x1_0000_0000)
    s1root = guest.alloc()
    va = 0x7000_1234_5000
    data_ipa = 0x1_8000_0000
    map_page(guest, guest, s1root, va, data_ipa, S1, d1)
    map_page(mem, alloc, s2root, data_ipa, 0x3_0000_0000, S2, d2)
    refs = []
    reason, stage, _, _, pa, size, gpa = R.walk(mem, va + 0x42, s1root, d1, s2root, d2, True,
                                                 F.R, False, True, refs)
    assert (F.REASONS[reason], pa, gpa) == ("ok", 0x3_0000_0042, data_ipa + 0x42)
    assert len(refs) == 24


def test_fault_codes():
    assert {r: S1.fault_code(r) for r in ("permission", "non-existent-memory")} == \
        {"permission": 0x13, "non-existent-memory": 0x0B}
    assert S2.fault_code("ok") is None


def test_bad_arguments():
    with pytest.raises(ValueError, match="granule"):
        S1.descriptor(4, 48, granule=8192)
    with pytest.raises(ValueError, match="phys_bits"):
        S1.descriptor(4, 39)
    with pytest.raises(ValueError, match="levels"):
        S1.descriptor(5, 48)
    with pytest.raises(ValueError, match="levels=1 is not allowed with granule=4096.*2 to 4"):
        S1.descriptor(1, 48)
    assert S1.descriptor(1, 48, granule=16384)[0, L.G_INPUT_BITS] == 25
    with pytest.raises(ValueError, match="field"):
        S1.encode(1, True, bogus=1)
    assert S1.descriptor(4, 52)[1, L.L_LEAF_ADDR] == S1.descriptor(4, 48)[1, L.L_LEAF_ADDR]


@settings(max_examples=60, deadline=None)
@given(granule=st.sampled_from(arm64_s1.GRANULES), data=st.data())
def test_any_mapping_translates(granule, data):
    """Whatever the granule and input size, a mapped page translates to its frame plus the
    offset, and the walk reads one entry a level."""
    g = granule.bit_length() - 1
    input_bits = data.draw(st.integers(25, 48))
    levels = arm64_s1.levels_for(input_bits, granule)
    fmt = data.draw(st.sampled_from((S1, S2)))
    d = fmt.descriptor(levels, 48, granule=granule, input_bits=input_bits)
    mem, alloc = setup()
    root = new_root(alloc, d)
    va = data.draw(st.integers(0, (1 << input_bits) - 1))
    frame = data.draw(st.integers(0, (1 << (34 - g)) - 1)) << g
    map_page(mem, alloc, root, va, frame, fmt, d)
    reason, level, pa, size, refs = walk1(mem, va, root, d)
    assert (reason, level, size) == ("ok", 1, granule)
    assert pa == frame | (va & (granule - 1))
    assert len(refs) == levels


@settings(max_examples=100, deadline=None)
@given(fmt=st.sampled_from((S1, S2)), level=st.integers(1, 3), leaf=st.booleans(),
       entry=st.integers(0, (1 << 64) - 1))
def test_decode_encode_round_trip(fmt, level, leaf, entry):
    """Every bit that a field names survives decode then encode."""
    fields = fmt.decode(entry, level, leaf=leaf)
    named = 0
    for f in fmt.fields:
        if f.where in ("all", "leaf" if leaf else "table"):
            named |= ((1 << (f.hi - f.lo + 1)) - 1) << f.lo
    values = {k: v for k, v in fields.items() if k not in ("form", "reserved")}
    assert fmt.encode(level, leaf, **values) & named == entry & named


@settings(max_examples=40, deadline=None)
@given(granule=st.sampled_from(arm64_s1.GRANULES), data=st.data())
def test_engines_agree(granule, data):
    """The numba walker and the reference give the same walk over arm64 tables, including
    damaged entries (random bits written over a table or leaf)."""
    input_bits = data.draw(st.integers(25, 48))
    levels = arm64_s1.levels_for(input_bits, granule)
    mem, alloc = setup()
    d = S1.descriptor(levels, 48, granule=granule, input_bits=input_bits)
    root = new_root(alloc, d)
    va = data.draw(st.integers(0, (1 << input_bits) - 1))
    map_page(mem, alloc, root, va, 0x1234 << 16, S1, d,
             write=data.draw(st.booleans()), user=data.draw(st.booleans()))
    lv = data.draw(st.integers(1, levels))
    ea = entry_address(mem, root, va, d, lv)
    mem.write_u64(ea, mem.read_u64(ea) ^ data.draw(st.integers(0, (1 << 64) - 1)))
    access = data.draw(st.sampled_from(F.ACCESSES))
    user = data.draw(st.booleans())
    refs = []
    ref = R.walk(mem, va, root, d, 0, None, False, F.ACCESSES.index(access), user, True, refs)
    out = jit.walk_nb(*mem.arrays(), va, root, d, 0, d, False, F.ACCESSES.index(access), user,
                      True, np.zeros((jit.MAX_REFS, jit.REF_COLUMNS), dtype=np.int64), 0)
    assert (out[0], out[1], out[2], out[4], out[5], out[6]) == \
        (ref[0], ref[1], ref[2], ref[4], ref[5], len(refs))


def test_decode_shows_the_address_in_place():
    e = S1.leaf(0x1234_5000, 1, write=False)
    fields = S1.decode(e, 1)
    assert fields["addr"] == 0x1234_5000 and fields["ap"] == 0b11 and fields["af"] == 1
    assert S2.decode(S2.table(0x7000), 2)["addr"] == 0x7000
    assert S1.encode(1, True, addr=0x1234_5000, ap=0b11, af=1, sh=3, ng=1) == e
