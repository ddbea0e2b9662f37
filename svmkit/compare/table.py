"""The comparison as a table object, as plain text of at most 72 columns, and as a figure."""

import textwrap
from dataclasses import dataclass, field

from . import facts, setups as S

__all__ = ["Cell", "Row", "Comparison", "compare"]

NA = S.Unavailable.label


@dataclass(frozen=True)
class Cell:
    """One cell: ``text``; ``value`` (a number, for measured cells, else None); ``source``
    (how it was obtained: "walk", "Driver ops", or a spec section / uAPI name)."""
    text: str
    value: int | None = None
    source: str = ""


@dataclass
class Row:
    key: str
    label: str
    cells: dict                     # setup -> Cell
    measured: bool = False


@dataclass
class Comparison:
    """The five set-ups side by side: ``columns`` (set-up keys), ``measured``
    (set-up -> :class:`~svmkit.compare.setups.Measured`, or the reason it is missing),
    ``rows`` (:class:`Row`, measured rows first, then the facts)."""

    columns: tuple
    measured: dict
    rows: list = field(default_factory=list)
    n: int = 4
    m: int = 4
    native: dict = field(default_factory=dict)    # arch -> Measured, native SVA on each

    def row(self, key):
        return next(r for r in self.rows if r.key == key)

    def records(self):
        """One dict per row: ``key``, ``label``, and per set-up ``(text, source)``."""
        return [{"key": r.key, "label": r.label,
                 **{c: (r.cells[c].text, r.cells[c].source) for c in self.columns}}
                for r in self.rows]

    # -- plain text --------------------------------------------------------------------

    def text(self, width=72):
        """The comparison as plain text no wider than ``width`` (at least 60) columns:
        the measured numbers as a grid, then each fact row as one paragraph per set-up
        with its source in brackets."""
        if width < 60:
            raise ValueError(f"width={width!r}; allowed: 60 or more")
        short = {"vtd-sm": "VT-d SM", "vtd-ecs": "VT-d ECS", "smmuv3": "SMMUv3",
                 "amdvi": "AMD-Vi", "native": "native"}
        colw = 9
        labw = width - colw * len(self.columns)
        out = textwrap.wrap(
            f"SVM set-ups compared: a process's n={self.n}-level table bound at a PASID, "
            f"in a VM behind an m={self.m}-level second stage (4 KiB pages). Counts are "
            "the memory references of one translate() of each model with every cache "
            "off, and the Driver's operations to bind and unbind one more PASID: "
            "writes to the structures the IOMMU reads, made by the host for VT-d "
            "scalable mode and native SVA, by the guest in its own memory otherwise.",
            width)
        out.append("")
        out.append(" " * labw + "".join(f"{short[c]:>{colw}}" for c in self.columns))
        for r in self.rows:
            if not r.measured:
                continue
            cells = "".join(f"{_short(r.cells[c]):>{colw}}" for c in self.columns)
            out.append(f"{r.label[:labw - 1]:<{labw}}{cells}")
        missing = [c for c in self.columns if not hasattr(self.measured[c], "walk")]
        for c in missing:
            e = self.measured[c]
            out += textwrap.wrap(f"{short[c]}: {e.label} ({e})", width,
                                 subsequent_indent="  ")
        native = self.measured.get("native")
        if hasattr(native, "arch"):
            names = {"vtd": "VT-d", "smmuv3": "SMMUv3", "amdvi": "AMD-Vi"}
            each = ", ".join(f"{names[a]} {x.refs} ({x.structure_refs} structure)"
                             for a, x in self.native.items())
            out += textwrap.wrap(f"native column measured on {names[native.arch]}; native "
                                 f"SVA on each model: {each}.", width)
        for r in self.rows:
            if r.measured:
                continue
            out += ["", r.label + ":"]
            groups = {}                       # identical cells are printed once
            for c in self.columns:
                cell = r.cells[c]
                groups.setdefault((cell.text, cell.source), []).append(short[c])
            for (text, source), who in groups.items():
                src = f" [{source}]" if source and source != "-" else ""
                out += textwrap.wrap(f"{', '.join(who)}: {text}{src}", width,
                                     initial_indent="  ", subsequent_indent="    ")
        out += ["", "Quoted from the 2017 VFIO_DEVICE_BIND_TASK thread:"]
        for q, who in facts.QUOTES.values():
            out += textwrap.wrap(f'"{q}" ({who})', width, initial_indent="  ",
                                 subsequent_indent="  ")
        assert all(len(line) <= width for line in out)
        return "\n".join(out)

    __str__ = text

    # -- figure ------------------------------------------------------------------------

    def figure(self, ax=None):
        """A stacked bar chart of the measured references per translation (matplotlib,
        imported here so that the model does not need it)."""
        import matplotlib
        if ax is None:
            matplotlib.use("Agg") if matplotlib.get_backend() == "" else None
            import matplotlib.pyplot as plt
            fig, ax = plt.subplots(figsize=(7, 4.2))
        else:
            fig = ax.figure
        parts = (("structures (host-physical)", "#8c8c8c"),
                 ("second stage for structures", "#c7a0d8"),
                 ("first-stage tables", "#4c72b0"),
                 ("second stage for the page walk", "#dd8452"))
        names = [S.LABELS[c] for c in self.columns]
        bottoms = [0] * len(self.columns)
        for i, (label, color) in enumerate(parts):
            values = [breakdown(self.measured[c])[i] if hasattr(self.measured[c], "walk")
                      else 0 for c in self.columns]
            ax.bar(names, values, bottom=bottoms, color=color, label=label)
            bottoms = [b + v for b, v in zip(bottoms, values)]
        for x, c in enumerate(self.columns):
            m = self.measured[c]
            ax.text(x, bottoms[x] + 0.4, str(m.refs) if hasattr(m, "walk") else "n/a",
                    ha="center", va="bottom", fontsize=9)
        ax.set_ylabel("memory references, no caches")
        ax.set_title(f"One translation, n={self.n}, m={self.m}, 4 KiB pages")
        ax.set_ylim(0, max(bottoms + [1]) * 1.2)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2,
                  frameon=False)
        ax.tick_params(axis="x", labelsize=8)
        fig.tight_layout()
        return fig


def _short(cell):
    return cell.text if len(cell.text) <= 8 else "n/a"


def breakdown(measured):
    """(structure reads at HPAs, second-stage reads locating structures, first-stage
    reads, second-stage reads of the page walk) of one measured walk."""
    k, _ = S.split_refs(measured.walk, measured.n, measured.m)
    head, tail = measured.walk.refs[:k], measured.walk.refs[k:]
    return (sum(r.stage != "second" for r in head), sum(r.stage == "second" for r in head),
            sum(r.stage == "first" for r in tail), sum(r.stage == "second" for r in tail))


def compare(*, p=5, n=4, m=4, native_arch="auto", columns=S.SETUPS):
    """Build every set-up, measure it and return the :class:`Comparison`."""
    for c in columns:
        if c not in S.SETUPS:
            raise ValueError(f"columns: {c!r} is not a set-up; allowed: {', '.join(S.SETUPS)}")
    measured = {}
    for c in columns:
        try:
            measured[c] = S.build(c, p=p, n=n, m=m, native_arch=native_arch)
        except S.Unavailable as e:
            measured[c] = e
    rows = []

    def measured_row(key, label, fn, source):
        cells = {}
        for c in columns:
            mc = measured[c]
            if not hasattr(mc, "walk"):
                cells[c] = Cell(mc.label, None, "")
            else:
                v = fn(mc)
                cells[c] = Cell(str(v), v if isinstance(v, int) else None, source)
        rows.append(Row(key, label, cells, measured=True))

    measured_row("refs", "refs per translation", lambda x: x.refs, "walk")
    measured_row("structure_refs", "  structure reads", lambda x: x.structure_refs, "walk")
    measured_row("walk_refs", "  page walk n(m+1)+m", lambda x: x.walk_refs, "walk")
    measured_row("bind_writes", "bind a PASID: writes", lambda x: len(x.bind_ops.writes),
                 "Driver ops")
    measured_row("bind_invalidations", "  invalidations",
                 lambda x: len(x.bind_ops.invalidations), "Driver ops")
    measured_row("unbind_writes", "unbind it: writes", lambda x: len(x.unbind_ops.writes),
                 "Driver ops")
    measured_row("unbind_invalidations", "  invalidations",
                 lambda x: len(x.unbind_ops.invalidations), "Driver ops")
    # what the bind and unbind wrote and issued, by name
    for key, label, attr in (("bind_what", "PASID bind: what", "bind_ops"),
                             ("unbind_what", "PASID unbind: what", "unbind_ops")):
        cells = {}
        for c in columns:
            mc = measured[c]
            if not hasattr(mc, "walk"):
                cells[c] = Cell(mc.label)
                continue
            ops = getattr(mc, attr)
            text = "; ".join([f"writes {_what(ops.writes)}"] + (
                [f"then {', '.join(x.name for x in ops.invalidations)}"]
                if ops.invalidations else ["no invalidation"]))
            cells[c] = Cell(text, None, f"{mc.arch} Driver")
        rows.append(Row(key, label, cells))
    for key, label in facts.ROWS.items():
        rows.append(Row(key, label, {c: Cell(*facts.FACTS[key][c][:1], None,
                                             facts.FACTS[key][c][1]) for c in columns}))
    native = {}
    if "native" in columns:
        for arch in S.NATIVE_ARCHS:
            try:
                native[arch] = S.build("native", p=p, n=n, m=m, native_arch=arch)
            except S.Unavailable:
                pass
    return Comparison(tuple(columns), measured, rows, n, m, native)


def _what(writes):
    """'3 qwords of pasid-entry' style summary of Driver writes."""
    names = []
    for _, _, _, what in writes:
        base = what.split(" ")[0]
        if base not in names:
            names.append(base)
    return f"{len(writes)} qword(s) of {', '.join(names) or 'nothing'}"
