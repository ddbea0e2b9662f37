"""Graphs: page-table enumeration agrees with the walker; merging; nesting."""

import random

import networkx as nx
import pytest
from hypothesis import given, settings, strategies as st

import svmkit
from svmkit import formats
from svmkit.formats import layout as L
from svmkit.graphs import compose, leaves, merge, merge_pieces
from svmkit.memory import FrameAllocator, Memory


def mapper(mem, alloc, fmt, levels):
    """A tiny mapper for tests: writes entries with the format's builders."""
    f = formats.get(fmt)
    d = f.descriptor(levels)
    root = alloc.alloc()
    perm = {"x86_64": lambda rights: dict(write="w" in rights, user=True, xd="x" not in rights),
            "vtd_sl": lambda rights: dict(r=True, w="w" in rights, x="x" in rights)}[fmt]

    def map_(va, pa, size, rights="rw"):
        level = next(l for l, s in f.page_sizes.items() if s == size)
        t = root
        for lv in range(levels, level, -1):
            slot = t + ((va >> int(d[lv, L.L_SHIFT])) & 511) * 8
            e = mem.read_u64(slot)
            if e == 0:
                n = alloc.alloc()
                mem.write_u64(slot, f.table(n))
                t = n
            else:
                t = e & L.to_u64(d[0, L.G_TABLE_ADDR])
        mem.write_u64(t + ((va >> int(d[level, L.L_SHIFT])) & 511) * 8,
                      f.leaf(pa, level, **perm(rights)))
    return root, map_


@given(st.lists(st.tuples(st.integers(0, 63), st.sampled_from([0, 1]),
                          st.sampled_from(["r", "rw", "rx"])),
                max_size=12, unique_by=lambda t: t[0]),
       st.sampled_from(["x86_64", "vtd_sl"]))
@settings(max_examples=40, deadline=None)
def test_leaves_agree_with_walker(maps, fmt):
    mem = Memory(1 << 32)
    alloc = FrameAllocator(mem, 0x100000, 0x1000000)
    root, map_ = mapper(mem, alloc, fmt, 4)
    rng = random.Random(len(maps))
    expect = {}
    for slot, big, rights in maps:
        size = 1 << 21 if big else 1 << 12
        va = (slot << 21) + (0 if big else rng.randrange(512) << 12)
        pa = 0x40000000 + slot * (1 << 21)
        map_(va, pa, size, rights)
        expect[va] = (pa, size)
    ex = leaves(mem, root, fmt, 4)
    assert {(x.va): (x.pa, x.size) for x in ex} == expect
    for x in ex:
        for off in (0, x.size - 8):
            w = svmkit.walk(mem, x.va + off, root=root, fmt=fmt, levels=4, user=True,
                            engine="reference") if fmt == "x86_64" else \
                svmkit.walk(mem, x.va + off, root=root, fmt=fmt, levels=4, engine="reference")
            assert w.ok and w.pa == x.pa + off
            acc = svmkit.walk(mem, x.va, root=root, fmt=fmt, levels=4, access="w",
                              user=fmt == "x86_64", engine="reference")
            assert acc.ok == ("w" in x.rights)
    # Unmapped addresses fault.
    mapped = [(x.va, x.end) for x in ex]
    for _ in range(20):
        va = rng.randrange(64 << 21) & ~0xfff
        if not any(a <= va < b for a, b in mapped):
            assert not svmkit.walk(mem, va, root=root, fmt=fmt, levels=4, user=fmt == "x86_64",
                                    engine="reference").ok


def test_merge_and_compose():
    mem = Memory(1 << 32)
    alloc = FrameAllocator(mem, 0x100000, 0x1000000)
    groot, gmap = mapper(mem, alloc, "x86_64", 4)
    sroot, smap = mapper(mem, alloc, "vtd_sl", 4)
    # Guest: 4 contiguous 4 KiB pages at GVA 0x400000 -> GPA 0x200000..
    for i in range(4):
        gmap(0x400000 + i * 4096, 0x200000 + i * 4096, 4096, "rw")
    gmap(0x800000, 0x3ff000, 4096, "r")   # last page of the 2 MiB GPA block
    # Second stage: GPA 0x200000 (2 MiB) -> HPA 0x80000000, read-only.
    smap(0x200000, 0x80000000, 1 << 21, "r")
    first = merge(leaves(mem, groot, "x86_64", 4))
    assert [(x.va, x.pa, x.size, x.rights) for x in first] == [
        (0x400000, 0x200000, 0x4000, "rwu"), (0x800000, 0x3ff000, 0x1000, "ru")]
    second = leaves(mem, sroot, "vtd_sl", 4)
    pieces = merge_pieces(compose(first, second))
    assert [p[:5] for p in pieces] == [
        (0x400000, 0x200000, 0x80000000, 0x4000, "ru"),
        (0x800000, 0x3ff000, 0x801ff000, 0x1000, "ru")]


def test_leaves_skips_malformed_and_cycles():
    mem = Memory(1 << 30)
    alloc = FrameAllocator(mem, 0x100000, 0x200000)
    root, map_ = mapper(mem, alloc, "x86_64", 4)
    map_(0x1000, 0x5000, 4096)
    # A PML4 entry pointing back at the PML4 itself: the walk recursion must end.
    mem.write_u64(root + 8, formats.get("x86_64").table(root))
    # A reserved bit in a leaf: maps nothing.
    mem.write_u64(root + 16, formats.get("x86_64").table(0x180000))
    mem.write_u64(0x180000, (1 << 7) | 0x3)   # PS in a PDPTE... 1 GiB leaf with bit 13 set
    mem.write_u64(0x180000, 0x40000000 | (1 << 13) | (1 << 7) | 3)
    tables = {}
    ex = leaves(mem, root, "x86_64", 4, tables=tables)
    assert [x.va for x in ex if x.pa == 0x5000] == [0x1000]
    assert not any(x.pa == 0x40000000 for x in ex)
    assert root in tables


# -- built scenarios ----------------------------------------------------------------------------



def _built(name, **changes):
    pytest.importorskip("svmkit.vtd")
    from svmkit.scenario import load
    s = load(name)
    for k, v in changes.items():
        setattr(s, k, v)
    return s, s.build()


def _pasid_entry_hpa(b, device, pasid):
    w = b.translate(device, 0, pasid=pasid)
    return next(r.address for r in w.refs if r.structure == "pasid-entry")


def test_audit_catches_wrong_pasid_entry():
    from svmkit.graphs import audit
    s, b = _built("broken-isolation")
    a = audit(b)
    assert not a.ok
    foreign = [f for f in a.findings if f.kind == "foreign"]
    assert {(f.device, f.pasid, f.domain, f.victim) for f in foreign} == {
        ("00:02.0", 5, "vm1", "vm2")}
    f = foreign[0]
    assert f.entry == _pasid_entry_hpa(b, "00:02.0", 5)
    base, size = b.vm_ram["vm2"]
    assert (f.hpa, f.size) == (base, size)
    # The same file with the entry right is clean.
    s.binds[0].second_of = None
    assert audit(s.build()).ok


def test_audit_after_a_step_that_breaks_isolation():
    from svmkit.graphs import audit
    pytest.importorskip("svmkit.vtd")
    from svmkit.scenario import load
    s = load("two-vms-shared-device")
    s.step("pasid-entry", device="00:04.0", pasid=2, second_of="vm1")
    b = s.build()
    assert audit(b).ok
    b.apply()
    a = audit(b)
    hit = [f for f in a.findings if f.kind == "foreign"]
    assert [(f.device, f.pasid, f.domain, f.victim) for f in hit] == [("00:04.0", 2, "vm2", "vm1")]
    assert hit[0].entry == _pasid_entry_hpa(b, "00:04.0", 2)
    assert any(f.kind == "overlap" for f in a.findings)


def test_audit_host_process_reach_is_its_mappings():
    from svmkit.graphs import audit
    s, b = _built("userspace-driver-2017")
    a = audit(b)
    assert a.ok and len(a.reaches) == 1
    r = a.reaches[0]
    assert r.kind == "first" and r.domain == "host"
    total = sum(size for _hpa, size, _r, _l in r.ranges)
    assert total == sum(m.size for m in s.get_process("host/udrv").maps)
    for hpa, size, rights, _leaf in r.ranges:
        assert b.symbols.lookup(hpa).owner == "host/udrv"


@pytest.mark.parametrize("name, module, kinds", [
    ("nested-vtd", "svmkit.vtd", {"root table", "context table", "PASID directory",
                                  "PASID table"}),
    ("nested-smmuv3", "svmkit.smmuv3", {"stream table", "CD table"}),
    ("nested-amdvi", "svmkit.amdvi", {"device table", "GCR3 table"}),
])
def test_walk_path_lies_on_structure_graph(name, module, kinds):
    from svmkit.graphs import structure_graph
    pytest.importorskip(module)
    s, b = _built(name)
    g = structure_graph(b)
    w = b.translate("00:02.0", 0x600000 + 0x1234, pasid=5)
    assert w.ok
    from svmkit.graphs import walk_path
    assert None not in walk_path(g, w)
    # The walk's path is connected in the graph: each structure read's page
    # is reachable from the first one.
    first = w.refs[0].address & ~0xFFF
    for r in w.refs:
        assert nx.has_path(g, first, r.address & ~0xFFF), b.name(r.address)
    # Ownership attributes come from the symbol table.
    have = {d["kind"] for _, d in g.nodes(data=True)}
    assert kinds | {"page table", "frames"} <= have
    owners = {d["owner"] for _, d in g.nodes(data=True) if d["kind"] == "page table"}
    assert {"vm1", "vm1/app"} <= owners


def test_mapping_graph_ranges_agree_with_translation():
    from svmkit.graphs import mapping_graph
    s, b = _built("nested-vtd")
    g = mapping_graph(b)
    gva = sorted(n for n in g if n[0] == "gva")
    maps = s.get_process("vm1/app").maps
    assert sum(n[3] for n in gva) == sum(m.size for m in maps)
    for n in gva:
        (gpa_node,) = list(g.successors(n))
        gpa = g.edges[n, gpa_node]["gpa"]
        (hpa_node,) = list(g.successors(gpa_node))
        hpa = hpa_node[1] + (gpa - gpa_node[2])
        for off in (0, n[3] - 1):
            w = b.translate("00:02.0", n[2] + off, pasid=5)
            assert w.ok and w.pa == hpa + off
