import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from svmkit import Memory, NonExistentMemory
from svmkit import memory as memory_module
from svmkit._memjit import load, store

LAYOUTS = ["window", "radix"] if sys.platform.startswith("linux") else ["radix"]


def test_sparse_high_address_costs_one_frame():
    mem = Memory()
    mem.write_u64(0x1_2345_6000, 0xDEAD_BEEF)
    assert mem.frames_in_use == 1
    assert mem.read_u64(0x1_2345_6000) == 0xDEAD_BEEF
    assert mem.read_u64(0xF_FFFF_FFFF_F000) == 0          # never written: zeros


def test_unaligned_and_cross_frame_bytes():
    mem = Memory()
    data = bytes(range(256)) * 40
    mem.write(0x1FFF_F000 - 17, data)
    assert mem.read(0x1FFF_F000 - 17, len(data)) == data
    assert mem.read_u64(0x1FFF_F000 - 17) == int.from_bytes(data[:8], "little")


def test_size_bounds_non_existent_memory():
    mem = Memory(size=1 << 20)
    mem.write_u64((1 << 20) - 8, 7)
    with pytest.raises(NonExistentMemory):
        mem.read_u64(1 << 20)
    with pytest.raises(NonExistentMemory):
        mem.write(0xFFFFC, b"12345")
    keys, slots, frames, size = mem.arrays()
    assert load(keys, slots, frames, size, (1 << 20) - 8) == (True, 7)
    assert load(keys, slots, frames, size, 1 << 20)[0] is False
    assert load(keys, slots, frames, size, -8)[0] is False


@pytest.mark.parametrize("bad", [-1, 1 << 52, 1.5, None, True])
def test_bad_addresses(bad):
    with pytest.raises(ValueError, match="pa="):
        Memory().read_u64(bad)


@pytest.mark.parametrize("bad", [0, -4096, (1 << 52) + 4096, 1.5, "1M"])
def test_bad_sizes(bad):
    with pytest.raises(ValueError, match="size="):
        Memory(size=bad)


def test_negative_int64_pattern_round_trips():
    mem = Memory()
    mem.write_u64(0x1000, -1)
    assert mem.read_u64(0x1000) == (1 << 64) - 1


@pytest.mark.parametrize("layout", LAYOUTS)
@settings(max_examples=60, deadline=None)
@given(values=st.dictionaries(st.integers(0, (1 << 40) - 1).map(lambda f: f * 4096 + 8),
                              st.integers(0, (1 << 64) - 1), max_size=300))
def test_compiled_load_store_agree_with_python(layout, values):
    """Frames spread over the 52-bit space; the compiled lookup must find every one."""
    mem = Memory(layout=layout)
    for pa, v in values.items():
        mem.write_u64(pa, v)
    keys, slots, frames, size = mem.arrays()
    for pa, v in values.items():
        ok, got = load(keys, slots, frames, size, pa)
        assert ok and int(got) & ((1 << 64) - 1) == v
        assert store(keys, slots, frames, size, pa, np.int64(5))
        assert mem.read_u64(pa) == 5
    assert load(keys, slots, frames, size, 0x7_0000_0000_0000 + 8) == (True, 0)
    assert mem.frames_in_use == len({pa >> 12 for pa in values})


@pytest.mark.skipif("window" not in LAYOUTS, reason="the window layout is Linux's")
def test_window_grows_then_falls_back_to_radix_keeping_every_frame(monkeypatch):
    monkeypatch.setattr(Memory, "WINDOW_REGIONS", 2)
    mem = Memory()
    regions = [(i << 30) + 0x1000 * i for i in range(5)]
    for pa in regions[:3]:                         # a third region: the window doubles
        mem.write_u64(pa, pa | 1)
    # 4 regions mapped
    assert mem.layout == "window" and mem.arrays()[2].size == 4 * memory_module.REGION_FRAMES * 512
    monkeypatch.setattr(memory_module, "_reserve", lambda regions: None)
    for pa in regions[3:]:                         # a fifth: no address space, radix
        mem.write_u64(pa, pa | 1)
    assert mem.layout == "radix"
    keys, slots, frames, size = mem.arrays()
    for pa in regions:
        assert mem.read_u64(pa) == pa | 1
        assert load(keys, slots, frames, size, pa) == (True, pa | 1)


def test_layout_argument_is_checked():
    with pytest.raises(ValueError, match="layout="):
        Memory(layout="flat")


@pytest.mark.skipif("window" not in LAYOUTS, reason="the window layout is Linux's")
def test_dense_blocks_ask_for_huge_pages_and_keep_their_frames(monkeypatch):
    asked = []
    monkeypatch.setattr(Memory, "_huge", lambda self, block: asked.append(block))
    monkeypatch.setattr(Memory, "WINDOW_REGIONS", 1)
    mem = Memory()
    dense, sparse = 0x20_0000, 0x40_0000                  # blocks 1 and 2 of region 0
    for i in range(memory_module.DENSE):
        mem.write_u64(dense + i * 4096, i + 1)
    for i in range(memory_module.DENSE - 1):
        mem.write_u64(sparse + i * 4096, i + 1)
    mem.write_u64(dense, 99)                             # rewriting adds no frame
    assert asked == [1]
    mem.write_u64(1 << 40, 7)                            # a second region: the window grows
    assert asked == [1, 1] and mem.layout == "window"    # asked again of the new mapping
    keys, slots, frames, size = mem.arrays()
    assert load(keys, slots, frames, size, dense) == (True, 99)
    last = memory_module.DENSE - 2                       # the sparse block's last frame
    assert load(keys, slots, frames, size, sparse + last * 4096) == (True, last + 1)
    assert load(keys, slots, frames, size, sparse + (last + 1) * 4096) == (True, 0)  # unwritten
    assert mem.frames_in_use == 2 * memory_module.DENSE
