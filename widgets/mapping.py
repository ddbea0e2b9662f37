"""The mapping explorer: what a PASID (or a VM) maps, GVA -> GPA -> HPA, and the
isolation audit, with a selection that drives a walk stepper.

Graph and audit come from :mod:`svmkit.graphs` (``mapping_graph``, ``audit``): computed
from memory, never from what the scenario meant to write, so a wrong PASID-table entry
shows (the ``broken-isolation`` example).
"""

from __future__ import annotations

from html import escape

import ipywidgets as W
import networkx as nx

from ._common import Base, guarded, hx, message_html
from .stepper import WalkStepper


class MappingExplorer(Base):
    """``scenario``: an example scenario's name. ``stepper``: a :class:`WalkStepper` to
    drive (one is made below the explorer when None)."""

    def __init__(self, scenario="broken-isolation", *, stepper=None):
        from svmkit import graphs
        from svmkit import scenario as SC
        from svmkit.render.svg import graph_svg
        self._graph_svg = graph_svg
        s = SC.load(scenario) if isinstance(scenario, str) else scenario
        self.scenario = s
        self.built = s.build(caches="off")
        self.graph = graphs.mapping_graph(self.built)
        self.audit = graphs.audit(self.built)
        self.key = f"scenario:{s.name}"
        self.stepper = stepper if stepper is not None else WalkStepper(self.key)
        owners = sorted({n[1] for n in self.graph if n[0] in ("gva", "gpa")})
        self.owner = W.Dropdown(options=owners, description="PASID / VM",
                                layout=W.Layout(width="360px"))
        self.range = W.Dropdown(description="Range", layout=W.Layout(width="520px"))
        self.walk_b = W.Button(description="Walk it", icon="play", button_style="primary")
        self.picture = W.HTML()
        self.picture.add_class("svmkit-svg")
        self.picture.add_class("svmkit-mapping")
        self.findings = W.HTML()
        self.findings.add_class("svmkit-audit")
        self.owner.observe(lambda ch: self._show(), "value")
        self.range.observe(lambda ch: self._draw(), "value")
        self.walk_b.on_click(lambda b: self.walk_selected())
        children = [W.HBox([self.owner, self.range, self.walk_b]), self.picture,
                    W.HTML("<b>Isolation audit</b>"), self.findings]
        if stepper is None:
            children.append(self.stepper)
        super().__init__(children)
        self._audit_html()
        self._show()

    def subgraph(self, owner):
        """The nodes reachable from ``owner``'s GVA (or GPA, for a VM) ranges."""
        starts = [n for n in self.graph if n[0] in ("gva", "gpa") and n[1] == owner]
        keep = set(starts)
        for n in starts:
            keep |= nx.descendants(self.graph, n)
        return self.graph.subgraph(keep)

    @guarded
    def _show(self):
        sub = self.subgraph(self.owner.value)
        first = sorted(n for n in sub if n[1] == self.owner.value)
        self.range.options = [(f"{n[0].upper()} {n[2]:#x} +{n[3]:#x}", n) for n in first]
        if first:
            self.range.value = first[0]
        self.walk_b.disabled = not any(n[0] == "gva" for n in first)
        self._draw()

    @guarded
    def _draw(self):
        sub = self.subgraph(self.owner.value)
        self.picture.value = self._graph_svg(
            sub, highlight=self.range.value,
            title=f"{self.scenario.name}: what {self.owner.value} maps")

    def _audit_html(self):
        a = self.audit
        head = message_html("audit: no finding" if a.ok else
                            f"audit: {len(a.findings)} finding(s)", "ok" if a.ok else "error")
        rows = "".join(
            f"<tr class='svmkit-reserved'><td>{escape(f.kind)}</td><td>{escape(f.device)}</td>"
            f"<td>{f.pasid}</td><td>{escape(f.domain)}</td><td>{escape(f.victim)}</td>"
            f"<td>{hx(f.hpa)} +{f.size:#x}</td><td>{escape(f.rights)}</td>"
            f"<td>{escape(f.cause)}</td></tr>" for f in a.findings)
        self.findings.value = head + (
            "<table class='svmkit-fields'><tr><th>kind</th><th>device</th><th>PASID</th>"
            "<th>domain</th><th>victim</th><th>HPA</th><th>rights</th><th>cause</th></tr>"
            + rows + "</table>" if a.findings else "")

    @guarded
    def walk_selected(self):
        """Load the selected GVA range's first address into the stepper."""
        node = self.range.value
        if node is None or node[0] != "gva":
            self.show_message("Choose a GVA range of a PASID to walk it.")
            return None
        bdf, _, pasid = node[1].partition(" PASID ")
        st = self.stepper
        if st.setup_pick.value != self.key:
            st.setup_pick.value = self.key
        device = next(label for label in st.setup.devices if label.split(" ")[0] == bdf)
        w = st.load(node[2], device=device, pasid=int(pasid))
        self.show_message(f"The stepper below walks {node[2]:#x} for {node[1]}.")
        return w
