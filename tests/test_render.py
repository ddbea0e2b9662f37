"""Renderers of a walk: text (72 ASCII columns), JSON schema, SVG grid."""

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import networkx as nx
import pytest
from hypothesis import given, settings, strategies as st

from svmkit.graphs import walk_grid, walk_graph
from svmkit.render import json as rjson, svg as rsvg, text as rtext
from svmkit.render.layout import layered_layout


@dataclass
class R:
    stage: str
    level: int | None
    address: int
    value: int
    guest_level: int | None = None
    structure: str | None = None


@dataclass
class F:
    stage: str
    level: int | None
    reason: str
    address: int
    code: int | None = None
    access: str = "r"


@dataclass
class W:
    va: int
    refs: list
    pa: int | None = None
    page_size: int | None = None
    fault: F | None = None
    gpa: int | None = None

    @property
    def ok(self):
        return self.fault is None


FL = {4: "pml4e", 3: "pdpte", 2: "pde", 1: "pte"}


def nested_walk(n=4, m=4, stop=None, prefix=True):
    """A hand-built n+m nested walk in design.md's Ref order; ``stop`` cuts
    it after that many refs with a not-present fault on the last one."""
    refs = []
    if prefix:
        for i, s in enumerate(["root-entry", "context-entry", "pasid-dir", "pasid-entry"]):
            refs.append(R(s.split("-")[0], None, 0x1000 * (i + 1), 0x2001 + i, None, s))
    a = 0x100000
    for gl in list(range(n, 0, -1)) + [0]:
        for sl in range(m, 0, -1):
            refs.append(R("second", sl, a, a + 0x1003, gl, "sl-" + FL.get(sl, f"l{sl}e")))
            a += 0x1000
        if gl:
            refs.append(R("first", gl, a, a + 0x1007, None, FL.get(gl, f"l{gl}e")))
            a += 0x1000
    if stop is not None:
        refs = refs[:stop]
        last = refs[-1]
        fault = F(last.stage, last.level, "not-present", 0x7f0000001000)
        return W(0x7f0000001000, refs, fault=fault)
    return W(0x7f0000001000, refs, pa=0xabc000, page_size=4096, gpa=0x5000)


def check_mail(s):
    for line in s.splitlines():
        assert len(line) <= 72, line
        assert line.isascii(), line


def test_grid_counts_full_nested_walk():
    for n, m in [(4, 4), (5, 4), (4, 3), (5, 5)]:
        w = nested_walk(n, m)
        g = walk_grid(w)
        page = sum(len(r.second) + (r.first is not None) for r in g.rows)
        assert page == n * (m + 1) + m
        assert len(g.prefix) == 4 and g.nested
        assert [r.guest_level for r in g.rows] == list(range(n, -1, -1))
        # Every ref lands in exactly one place.
        nums = [c.number for c in g.prefix]
        for r in g.rows:
            nums += [c.number for c in r.second.values()] + ([r.first.number] if r.first else [])
        assert sorted(nums) == list(range(1, len(w.refs) + 1))


def test_text_walk_is_mail_safe_and_numbered():
    w = nested_walk(5, 5)
    s = rtext.walk_text(w, title="VM1 'app' PASID 5")
    check_mail(s)
    listed = re.findall(r"^\s*(\d+)[.*] ", s, re.M)
    assert [int(x) for x in listed] == list(range(1, len(w.refs) + 1))
    assert "35 page-table refs + 4 structure refs" in s
    assert "0xabc000" in s


def test_text_grid_marks_fault_and_unreached_cells():
    w = nested_walk(4, 4, stop=4 + 7)  # fault in row guest L4 at second-stage L1?
    s = rtext.walk_grid_text(w)
    check_mail(s)
    assert s.count("[XX]") == 1
    # Rows below the fault are drawn but empty.
    assert "data GPA" in s and "[..]" in s
    lst = rtext.walk_list(w)
    assert re.match(rf"^\s*{len(w.refs)}\* ", lst.splitlines()[-2])
    assert lst.count("*") == 2   # the marked ref and the legend
    assert rtext.walk_header(w)[-1].endswith(f"fault: {w.fault.stage} L{w.fault.level} "
                                            f"not-present at 0x7f0000001000 (r)")


def test_single_stage_walk_grid():
    refs = [R("first", l, 0x1000 * l, 0x1000 * l + 7, None, FL[l]) for l in (4, 3, 2, 1)]
    w = W(0x1234, refs, pa=0x9234, page_size=4096)
    g = walk_grid(w)
    assert not g.nested and g.second_levels == [] and len(g.rows) == 4
    s = rtext.walk_text(w)
    check_mail(s)
    assert "GPA" not in s


@given(n=st.integers(3, 5), m=st.integers(3, 5), data=st.data())
@settings(max_examples=40, deadline=None)
def test_json_trace_roundtrips_values(n, m, data):
    full = nested_walk(n, m)
    stop = data.draw(st.none() | st.integers(1, len(full.refs)))
    w = nested_walk(n, m, stop=stop)
    d = json.loads(rjson.walk_json(w, model="vtd", device="00:02.0", pasid=5))
    assert d["schema"] == "svmkit-walk/1"
    assert d["context"]["pasid"] == 5
    assert len(d["refs"]) == len(w.refs)
    for jr, r in zip(d["refs"], w.refs):
        assert int(jr["address"], 16) == r.address and int(jr["value"], 16) == r.value
        assert (jr["stage"], jr["level"], jr["guest_level"]) == (r.stage, r.level, r.guest_level)
    if stop is None:
        assert d["ok"] and int(d["pa"], 16) == w.pa and d["fault"] is None
    else:
        assert not d["ok"] and d["pa"] is None
        assert d["fault"]["reason"] == "not-present" and d["fault"]["ref"] == stop
    # The grid cells name every page-table ref exactly once.
    cells = [c for row in d["grid"]["rows"] for c in row["second"].values()]
    cells += [row["first"] for row in d["grid"]["rows"] if row["first"] is not None]
    assert sorted(cells + d["grid"]["prefix"]) == list(range(1, len(w.refs) + 1))
    check_mail(rtext.walk_text(w))


def test_svg_grid_highlight_and_fault():
    w = nested_walk(4, 4, stop=20)
    svg = rsvg.walk_grid_svg(w, highlight=7)
    root = ET.fromstring(svg)
    assert root.get("width") == "1280"
    ns = "{http://www.w3.org/2000/svg}"
    groups = {g.get("data-ref"): g for g in root.iter(ns + "g") if g.get("data-ref")}
    assert set(groups) == {str(i) for i in range(1, 21)}
    assert groups["7"].get("data-highlight") == "1"
    assert sum(1 for g in groups.values() if g.get("data-highlight")) == 1
    assert groups["20"].find(ns + "rect").get("fill") == rsvg.COLORS["fault"]
    # Every font is readable at 1280 px.
    sizes = [int(t.get("font-size")) for t in root.iter(ns + "text")]
    assert min(sizes) >= 12


def test_layered_layout_orders_tree_and_svg():
    g = nx.balanced_tree(2, 3, create_using=nx.DiGraph)
    pos = layered_layout(g)
    assert pos[0][1] == 0 and {pos[n][1] for n in g.successors(0)} == {1}
    assert max(p[1] for p in pos.values()) == 3
    # A tree drawn by barycenter has no crossings: children keep their
    # parents' left-to-right order.
    for l in range(1, 4):
        layer = sorted((n for n in g if pos[n][1] == l), key=lambda n: pos[n][0])
        parents = [next(iter(g.predecessors(n))) for n in layer]
        assert [pos[p][0] for p in parents] == sorted(pos[p][0] for p in parents)
    nx.set_node_attributes(g, {n: f"t{n}\nline2" for n in g}, "label")
    svg = rsvg.graph_svg(g, highlight=(0, 1))
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert len([p for p in root.iter(ns + "path") if p.get("data-edge") is not None]) == 14
    hl = [p for p in root.iter(ns + "path") if p.get("stroke-width") == "4"]
    assert len(hl) == 1


def test_layout_survives_cycles():
    g = nx.DiGraph([(1, 2), (2, 3), (3, 1), (3, 3)])
    pos = layered_layout(g)
    assert set(pos) == {1, 2, 3}
    ET.fromstring(rsvg.graph_svg(g, highlight=2))


def test_walk_graph_links_rows():
    w = nested_walk(4, 4)
    g = walk_graph(w)
    assert g.number_of_nodes() == len(w.refs)
    located = [(u, v) for u, v, d in g.edges(data=True) if d["kind"] == "located-by"]
    assert len(located) == 4
    for u, v in located:
        assert g.nodes[u]["stage"] == "second" and g.nodes[u]["level"] == 1
        assert g.nodes[v]["stage"] == "first"
        assert g.nodes[v]["level"] == g.nodes[u]["guest_level"]


def test_size_name():
    assert rtext.size_name(4096) == "4 KiB"
    assert rtext.size_name(1 << 30) == "1 GiB"
    assert rtext.size_name(3 << 20) == "3 MiB"
    assert rtext.size_name(100) == "100 B"


def test_cache_served_cells_are_marked_on_a_real_model():
    """A model with paging-structure caches reports only the reads it made;
    the grid says which cells a cache answered instead of calling them
    unreached."""
    pytest.importorskip("svmkit.vtd")
    from svmkit.scenario import load
    cold = load("nested-vtd").build(caches="off").translate("00:02.0", 0x600000, pasid=5)
    warm = load("nested-vtd").build().translate("00:02.0", 0x600000, pasid=5)
    assert cold.ok and warm.ok and cold.pa == warm.pa
    t_cold, t_warm = rtext.walk_grid_text(cold), rtext.walk_grid_text(warm)
    assert "[ c]" not in t_cold and "[..]" not in t_cold
    if len(warm.refs) < len(cold.refs):
        assert "[ c]" in t_warm and "[..]" not in t_warm
        assert "cache hit" in rsvg.walk_grid_svg(warm)
