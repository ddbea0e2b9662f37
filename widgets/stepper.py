"""The walk stepper: one translation, one memory reference at a time.

Pick a set-up (plain walks, or a scenario through an IOMMU model), a device, a PASID and
an address; Step, Back, Play and Reset move through ``Walk.refs``. Shown: the
two-dimensional grid (guest levels by host levels, Bhargava et al., ASPLOS 2008; VT-d
sec. 3.8) with the current cell lit, the structures read with the current one lit, the
entry just read decoded field by field (reserved bits flagged) and the running count.
"""

from __future__ import annotations

from html import escape

import ipywidgets as W

from . import setups as S
from ._common import Base, guarded, hx, message_html, parse_address
from ._draw import grid_svg, path_svg, structures_svg
from .entries import decode_ref, structure_decoders

ACCESS = {"read": "r", "write": "w", "execute": "x"}


def explain(walk, ref, n) -> str:
    """One sentence on what reference ``n`` (1-based) is for."""
    what = f"read {ref.structure or ref.stage} at HPA {ref.address:#x}"
    if ref.stage == "second" and walk.nested:
        target = ("the final GPA" if not ref.guest_level
                  else f"the GPA of the guest level-{ref.guest_level} table")
        return f"Reference {n}: second-level walk of {target}, host level {ref.level}: {what}."
    if ref.stage == "first" and walk.nested:
        return (f"Reference {n}: the guest's level-{ref.level} entry, now that its table's "
                f"HPA is known: {what}.")
    if ref.stage in ("first", "second"):
        return f"Reference {n}: level {ref.level}: {what}."
    return f"Reference {n}: the IOMMU looks up its {ref.stage} structure: {what}."


def outcome(walk) -> str:
    """The walk's result in one line."""
    if walk.ok:
        size = walk.page_size or 0
        unit = f"{size >> 30} GiB" if size >= 1 << 30 else (
            f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB")
        via = f" via GPA {walk.gpa:#x}" if walk.nested and walk.gpa is not None else ""
        return f"{walk.va:#x} -> HPA {walk.pa:#x}{via} ({unit} page), {len(walk.refs)} references"
    return f"{walk.va:#x}: fault: {walk.fault} after {len(walk.refs)} references"


class WalkStepper(Base):
    """Step through a walk. ``setup`` is a key of :func:`svmkit.widgets.setups.catalogue`
    or a :class:`~svmkit.widgets.setups.Setup`; ``walk`` instead shows a walk made with
    the plain API (the selectors are then hidden).

    Methods mirror the buttons: :meth:`step`, :meth:`back`, :meth:`reset`, :meth:`load`.
    """

    def __init__(self, setup="nested44", *, device=None, pasid=None, address=None,
                 access="r", walk=None, title=None):
        self.walk = None
        self.setup = None
        self._structures = None
        self._sgraph = self._spath = None
        self._title = title
        cat = S.catalogue()
        self.setup_pick = W.Dropdown(options=[(t, k) for k, (t, _) in cat.items()],
                                     description="Set-up", layout=W.Layout(width="460px"))
        self.device_pick = W.Dropdown(description="Device", layout=W.Layout(width="300px"))
        self.pasid_pick = W.Dropdown(description="PASID", layout=W.Layout(width="240px"))
        self.address = W.Text(description="Address", placeholder="0x7f1234567123",
                              continuous_update=False, layout=W.Layout(width="320px"))
        self.examples = W.Dropdown(description="Examples", layout=W.Layout(width="360px"))
        self.access = W.Dropdown(options=list(ACCESS), value="read", description="Access",
                                 layout=W.Layout(width="200px"))
        self.go = W.Button(description="Walk", button_style="primary", icon="play-circle")
        self.back_b = W.Button(description="Back", icon="step-backward")
        self.step_b = W.Button(description="Step", icon="step-forward", button_style="info")
        self.reset_b = W.Button(description="Reset", icon="undo")
        self.position = W.IntSlider(value=0, min=0, max=0, description="Reference",
                                    continuous_update=True, layout=W.Layout(width="420px"))
        self.play = W.Play(value=0, min=0, max=0, interval=900, description="Play",
                           show_repeat=False)
        W.jslink((self.play, "value"), (self.position, "value"))
        self.counter = W.HTML()
        self.counter.add_class("svmkit-counter")
        self.result = W.HTML()
        self.grid = W.HTML()
        self.grid.add_class("svmkit-svg")
        self.grid.add_class("svmkit-grid")
        self.entry = W.HTML()
        self.entry.add_class("svmkit-entry")
        self.path = W.HTML()
        self.path.add_class("svmkit-svg")
        self.path.add_class("svmkit-path")
        self.selectors = W.VBox([
            W.HBox([self.setup_pick, self.device_pick, self.pasid_pick]),
            W.HBox([self.address, self.examples, self.access, self.go]),
        ])
        controls = W.HBox([self.back_b, self.step_b, self.play, self.reset_b, self.position,
                           self.counter], layout=W.Layout(align_items="center"))
        super().__init__([self.selectors, self.result, controls, self.grid, self.entry,
                          self.path])
        self.setup_pick.observe(self._on_setup, "value")
        self.device_pick.observe(self._on_device, "value")
        self.examples.observe(self._on_example, "value")
        self.address.observe(lambda ch: self._load(), "value")
        self.pasid_pick.observe(self._on_pasid, "value")
        self.access.observe(lambda ch: self._load(), "value")
        self.go.on_click(lambda b: self._load())
        self.step_b.on_click(lambda b: self.step())
        self.back_b.on_click(lambda b: self.back())
        self.reset_b.on_click(lambda b: self.reset())
        self.position.observe(self._on_position, "value")
        if walk is not None:
            self.selectors.layout.display = "none"
            self.show_walk(walk)
        else:
            self._init(setup, device, pasid, address, access)

    # -- choosing ------------------------------------------------------------------------

    @guarded
    def _init(self, setup, device, pasid, address, access):
        self._quiet = True
        try:
            if isinstance(setup, S.Setup):
                self.setup_pick.options = [(setup.name, "custom")]
                self._use(setup)
            else:
                self.setup_pick.value = setup
                self._use(S.get(setup))
            if device is not None:
                self.device_pick.value = next(k for k, v in self.setup.devices.items()
                                              if v == device or k == device)
                self._fill_pasids()
            if pasid is not None:
                self.pasid_pick.value = pasid
            self.access.value = next(k for k, v in ACCESS.items() if v == access)
            if address is not None:
                self.address.value = address if isinstance(address, str) else hx(address)
        finally:
            self._quiet = False
        self._load()

    def _use(self, setup):
        self.setup = setup
        self._structures = structure_decoders(setup)
        # A scenario's structure graph, drawn whole with the table just read lit.
        self._sgraph = None
        if setup.built is not None:
            from svmkit import graphs
            self._sgraph = graphs.structure_graph(setup.built)
        self.device_pick.options = list(setup.devices)
        self.device_pick.index = 0
        self._fill_pasids()
        suggestions = self._fill_examples()
        if suggestions:
            self.address.value = hx(suggestions[0][1])

    def _fill_examples(self):
        """The address suggestions for the chosen device and PASID."""
        pasid = self.pasid_pick.value
        suggestions = self.setup.addresses_for(
            self.device_pick.value, None if pasid is None or pasid < 0 else pasid)
        # -1 stands for "none": a Dropdown shows nothing for an option whose value is None.
        self.examples.options = [("(choose)", -1)] + [
            (f"{label}: {a:#x}", a) for label, a in suggestions]
        self.examples.index = 0
        return suggestions

    def _fill_pasids(self):
        choices = self.setup.pasids(self.device_pick.value)
        self.pasid_pick.options = [(label, -1 if p is None else p) for label, p in choices]
        self.pasid_pick.index = 0
        self.pasid_pick.disabled = len(choices) < 2
        self._fill_examples()

    @guarded
    def _on_setup(self, change):
        if getattr(self, "_quiet", False) or change["new"] == "custom":
            return
        self.show_message("building the set-up ...")
        self._quiet = True
        try:
            self._use(S.get(change["new"]))
        finally:
            self._quiet = False
        self.show_message()
        self._load()

    @guarded
    def _on_device(self, change):
        if getattr(self, "_quiet", False):
            return
        self._quiet = True
        try:
            self._fill_pasids()
        finally:
            self._quiet = False
        self._load()

    @guarded
    def _on_pasid(self, change):
        if getattr(self, "_quiet", False):
            return
        self._fill_examples()
        self._load()

    @guarded
    def _on_example(self, change):
        if change["new"] is not None and change["new"] >= 0:
            self.address.value = hx(change["new"])

    def load(self, address=None, *, device=None, pasid=None, access=None):
        """Translate ``address`` (int or hex text) with the current set-up and show it."""
        self._quiet = True
        try:
            if device is not None:
                self.device_pick.value = next(k for k, v in self.setup.devices.items()
                                              if v == device or k == device)
                self._fill_pasids()
            if pasid is not None:
                self.pasid_pick.value = pasid
            if access is not None:
                self.access.value = next(k for k, v in ACCESS.items() if v == access)
            if address is not None:
                self.address.value = address if isinstance(address, str) else hx(address)
        finally:
            self._quiet = False
        return self._load()

    @guarded
    def _load(self):
        if getattr(self, "_quiet", False) or self.setup is None:
            return None
        try:
            va = parse_address(self.address.value)
        except ValueError as exc:
            self.show_message(str(exc), "error")
            return None
        dev = self.setup.devices.get(self.device_pick.value)
        pasid = self.pasid_pick.value
        pasid = None if pasid is None or pasid < 0 else pasid
        walk = self.setup.translate(dev, pasid, va, ACCESS[self.access.value])
        self.show_message()
        self.show_walk(walk)
        return walk

    # -- stepping ------------------------------------------------------------------------

    @guarded
    def show_walk(self, walk):
        """Show ``walk`` (from any source) at its start."""
        self.walk = walk
        self._spath = None
        if getattr(self, "_sgraph", None) is not None and self.selectors.layout.display != "none":
            from svmkit import graphs
            self._spath = graphs.walk_path(self._sgraph, walk)
        n = len(walk.refs)
        self.play.value = 0
        self.position.value = 0
        self.position.max = n
        self.play.max = n
        self.result.value = ""
        self._render()

    def _context(self):
        """What is being translated, for the picture's title (the renderer adds the
        address and the outcome)."""
        if self.setup is None:
            return "walk"
        parts = [self.setup.name]
        dev = self.device_pick.value
        if dev and dev != S.CPU:
            parts.append(dev)
        pasid = self.pasid_pick.value
        if pasid is not None and pasid >= 0:
            parts.append(f"PASID {pasid}")
        return ", ".join(parts) + ":"

    def step(self):
        """One more reference."""
        if self.walk is not None and self.position.value < self.position.max:
            self.position.value += 1

    def back(self):
        """One reference back."""
        if self.position.value > 0:
            self.position.value -= 1

    def reset(self):
        """Back to the start of the walk."""
        self.play.playing = False
        self.position.value = 0

    def _on_position(self, change):
        self._render()

    @guarded
    def _render(self):
        walk = self.walk
        if walk is None:
            return
        k, n = self.position.value, len(walk.refs)
        title = self._title or self._context()
        self.grid.value = grid_svg(walk, highlight=k or None, title=title)
        if self._spath is not None:
            node = self._spath[k - 1] if k else None
            self.path.value = structures_svg(
                self._sgraph, node, title="The structures in memory (the table just read lit)")
        else:
            self.path.value = path_svg(walk, highlight=k or None)
        if k == 0:
            self.entry.value = message_html(
                "Press Step to make the first memory reference (or Play).", "info")
        else:
            ref = walk.refs[k - 1]
            d = decode_ref(walk, ref, phys_bits=self.setup.phys_bits if self.setup else 52,
                           structures=self._structures)
            self.entry.value = (f"<div>{escape(explain(walk, ref, k))}</div>" + d.html())
        if k == n:
            self.result.value = message_html(outcome(walk), "ok" if walk.ok else "error")
        else:
            self.result.value = message_html(
                f"Translating {walk.va:#x}: step through its {n} references.", "info")
        # Last, so that a counter that moved means the pictures have too.
        self.counter.value = (f"<span class='svmkit-count' data-count='{k}'>"
                              f"{k} of {n} references</span>")


def walk_stepper(setup="nested44", **kwargs) -> WalkStepper:
    """A :class:`WalkStepper`; the short name for notebooks."""
    return WalkStepper(setup, **kwargs)
