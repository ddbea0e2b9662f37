"""svmkit.pagetable.GuestMemory: a guest's physical memory behind a second stage (VT-d
second level, SMMUv3 stage 2, AMD-Vi host page table), checked against the walker."""

import pytest
from hypothesis import given, settings, strategies as st

from svmkit.formats import amd_v1, arm64_s2, vtd_sl
from svmkit.memory import FrameAllocator, Memory
from svmkit.pagetable import GuestMemory, alloc_table, table_bytes
from svmkit.formats import layout as L
from svmkit.walker import faults as F
from svmkit.walker import reference as R

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
# (format, descriptor, second-stage page size)
CONFIGS = [
    (vtd_sl.FORMAT, vtd_sl.FORMAT.descriptor(4), 4 * KIB),
    (vtd_sl.FORMAT, vtd_sl.FORMAT.descriptor(3), 2 * MIB),
    (vtd_sl.FORMAT, vtd_sl.FORMAT.descriptor(5), 1 * GIB),
    (amd_v1.FORMAT, amd_v1.FORMAT.descriptor(4), 4 * KIB),
    (amd_v1.FORMAT, amd_v1.FORMAT.descriptor(3), 2 * MIB),
    (arm64_s2.FORMAT, arm64_s2.FORMAT.descriptor(4, 48), 4 * KIB),
    (arm64_s2.FORMAT, arm64_s2.FORMAT.descriptor(3, 48, granule=16 * KIB, input_bits=40),
     16 * KIB),
    (arm64_s2.FORMAT, arm64_s2.FORMAT.descriptor(2, 48, granule=64 * KIB, input_bits=40),
     64 * KIB),
]


def guest(config, **kw):
    fmt, d, page = config
    mem = Memory(1 << 40)
    host = FrameAllocator(mem, 0x10_0000, 1 << 36)
    root = alloc_table(host, table_bytes(d, int(d[0, L.G_LEVELS])))
    return mem, host, GuestMemory(mem, host, root, fmt, d, page_size=page, **kw)


def second_walk(g, gpa):
    """(reason, pa, page size) of the second stage alone walking ``gpa``."""
    reason, _, _, _, pa, size, _ = R.walk(g.mem, gpa, g.root, g.d, 0, None, False, F.R,
                                          False, True, [])
    return F.REASONS[reason], pa, size


@settings(max_examples=60, deadline=None)
@given(config=st.sampled_from(CONFIGS), base=st.integers(0, 1 << 20),
       allocs=st.lists(st.integers(1, 4), min_size=1, max_size=6),
       backs=st.lists(st.integers(0, (1 << 36) - 1), max_size=3),
       use_host_base=st.booleans(), offset=st.integers(0, 4095))
def test_every_backed_gpa_walks_to_what_to_host_says(config, base, allocs, backs,
                                                     use_host_base, offset):
    # fresh 1 GiB pages would be a GiB of zeros to write: those come from a RAM block
    host_base = 1 << 38 if use_host_base or config[2] >= GIB else None
    mem, host, g = guest(config, gpa_base=base * 4096, host_base=host_base)
    frames = []
    for n in allocs:
        gpa = g.alloc(n)
        frames += [gpa + i * 4096 for i in range(n)]
    assert frames == list(range(base * 4096, base * 4096 + len(frames) * 4096, 4096))
    for b in backs:
        g.back(b)
    hosts = set()
    for gpa in frames + backs:
        reason, pa, size = second_walk(g, gpa + offset if gpa in frames else gpa)
        assert (reason, size) == ("ok", g.page_size)
        assert pa == g.to_host(gpa + offset if gpa in frames else gpa)
        if host_base is not None:
            assert pa == host_base + (gpa + offset if gpa in frames else gpa)
    for gpa in frames:
        assert mem.read(g.to_host(gpa), 4096) == bytes(4096)        # handed out zeroed
        hosts.add(g.to_host(gpa))
    assert len(hosts) == len(frames)                 # no two guest frames share a host frame


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c[0].name}-{c[2]:#x}")
def test_an_unbacked_gpa_is_a_value_error_naming_it(config):
    mem, host, g = guest(config, gpa_base=0x4000_0000)
    gpa = g.alloc()
    g.write_u64(gpa + 8, 0x1234)
    assert g.read_u64(gpa + 8) == 0x1234 == mem.read_u64(g.to_host(gpa) + 8)
    far = gpa + 64 * g.page_size
    assert second_walk(g, far)[0] == "not-present"
    for call in (g.to_host, g.read_u64):
        with pytest.raises(ValueError, match=f"gpa={far:#x}"):
            call(far)


def test_host_base_takes_only_tables_from_the_allocator():
    config = CONFIGS[1]                                  # VT-d, 3 levels, 2 MiB pages
    mem, host, g = guest(config, gpa_base=1 * MIB, host_base=4 * GIB)
    before = host.next
    g.alloc(600)                                         # crosses a 2 MiB page
    assert sorted(g.pages.items()) == [(0, 4 * GIB), (2 * MIB, 4 * GIB + 2 * MIB)]
    assert host.next - before == 4096                    # one new table: the PD
    assert g.to_host(3 * MIB + 5) == 4 * GIB + 3 * MIB + 5


def test_writes_are_recorded_as_the_memory_holds_them():
    mem, host, g = guest(CONFIGS[0])
    w1 = g.map(0x5000, 0x9_0000_0000, r=True, w=False)
    assert [x[3] for x in w1] == ["sl-pml4e", "sl-pdpte", "sl-pde", "sl-pte"]
    assert g.back(0x5123) == []                          # backed already: nothing written
    w2 = g.back(0x6000)
    assert [x[3] for x in w2] == ["sl-pte"]              # the tables are there
    assert g.writes == w1 + w2
    for pa, old, new, what in g.writes:
        assert mem.read_u64(pa) == new and old == 0
    assert vtd_sl.FORMAT.decode(w1[-1][2], 1)["w"] == 0


def test_alloc_zeroes_a_frame_that_held_data():
    mem, host, g = guest(CONFIGS[6], gpa_base=0x10_0000)     # 16 KiB granule
    g.back(0x10_0000)
    g.write_u64(0x10_1008, 0xFFFF)
    assert g.alloc(2) == 0x10_0000 and g.read_u64(0x10_1008) == 0


def test_wrong_arguments_raise_value_errors_naming_them():
    fmt, d, _ = CONFIGS[0]
    mem = Memory()
    host = FrameAllocator(mem)
    with pytest.raises(ValueError, match="page_size=0x3000 .*allowed: 0x1000, 0x200000"):
        GuestMemory(mem, host, host.alloc(), fmt, d, page_size=0x3000)
    with pytest.raises(ValueError, match="gpa_base=0x123"):
        GuestMemory(mem, host, host.alloc(), fmt, d, gpa_base=0x123)
    with pytest.raises(ValueError, match="host_base=0x1000 "):
        GuestMemory(mem, host, host.alloc(), fmt, d, page_size=2 * MIB, host_base=0x1000)
    g = GuestMemory(mem, host, host.alloc(), fmt, d, page_size=2 * MIB)
    with pytest.raises(ValueError, match="aligned to page_size 0x200000"):
        g.map(0x1000, 0x4000_0000)
