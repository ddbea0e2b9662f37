"""Graphs of a scenario: structures, mappings, walks, and the isolation audit.

Everything here is a ``networkx.DiGraph`` (or plain records) computed from a
``Memory`` and a symbol table, never from what the scenario *meant* to write:
the audit must see what a device can really reach, including the effect of a
wrong PASID-table entry.

The two-dimensional walk grid follows the nested-walk description of the VT-d
specification (sec. 3.8, "Nested Translation"): every first-stage table
pointer, and the final GPA, is itself translated by a full second-stage walk,
so n first-stage levels over m second-stage levels make n*(m+1)+m references.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

#: Stages of a Ref that are page-table stages; any other stage name
#: ("root", "context", "pasid-dir", "ste", "dte" ...) is a structure read
#: that precedes the page-table walk (design.md, "Walks").
PAGE_STAGES = ("first", "second")


@dataclass
class GridCell:
    """One reference in the grid: its 1-based number in ``walk.refs``."""

    number: int
    ref: object
    fault: bool = False


@dataclass
class GridRow:
    """One row: the second-stage walk that locates a guest table (or the
    final GPA, ``guest_level`` 0), then the guest entry read from it."""

    guest_level: int
    second: dict = field(default_factory=dict)  # second-stage level -> GridCell
    first: GridCell | None = None


@dataclass
class WalkGrid:
    """The references of one walk arranged as the 2D grid.

    ``prefix``: structure reads before the page walk (root, context, PASID
    directory/table entries ...). ``rows``: one per guest level, highest
    first, then ``guest_level`` 0 (the data GPA). ``second_levels``: the
    second-stage levels seen, highest first (empty for a single-stage walk).
    ``nested``: True when the walk has second-stage references that locate
    first-stage tables. ``fault_number``: the 1-based ref number the fault
    happened at, or None (a fault with no ref of its own, e.g. an address
    beyond the width, has none).
    """

    prefix: list
    rows: list
    second_levels: list
    first_levels: list
    nested: bool
    fault_number: int | None


def _fault_number(walk):
    """Which ref the fault was found in: the last ref of the faulting stage
    and level, if the walk ended there (a not-present, reserved-bit or
    permission fault is found in the entry just read)."""
    fault = getattr(walk, "fault", None)
    refs = list(getattr(walk, "refs", []) or [])
    if fault is None or not refs:
        return None
    last = refs[-1]
    if last.stage == fault.stage and (fault.level is None or last.level == fault.level):
        return len(refs)
    return None


def walk_grid(walk) -> WalkGrid:
    """Arrange ``walk.refs`` (design.md ``Ref``) as the 2D grid.

    Second-stage refs go in the row of their ``guest_level``; first-stage refs
    in the row of their own level (the guest table they read was located by
    the second-stage refs of that row). A single-stage walk gives one row per
    level with no second-stage columns, or, for a second-stage-only walk, one
    row (``guest_level`` 0) holding its levels as columns.
    """
    refs = list(walk.refs or [])
    fault_n = _fault_number(walk)
    prefix, firsts, seconds = [], [], []
    for i, r in enumerate(refs, 1):
        cell = GridCell(i, r, fault=(i == fault_n))
        if r.stage == "first":
            firsts.append(cell)
        elif r.stage == "second":
            seconds.append(cell)
        else:
            prefix.append(cell)
    second_levels = sorted({c.ref.level for c in seconds}, reverse=True)
    first_levels = sorted({c.ref.level for c in firsts}, reverse=True)
    nested = bool(firsts) and bool(seconds)
    rows: dict[int, GridRow] = {}
    for c in seconds:
        # A second-stage-only walk has guest_level None: its refs all
        # translate the request address itself, the "final GPA" row.
        gl = c.ref.guest_level if c.ref.guest_level is not None else 0
        rows.setdefault(gl, GridRow(gl)).second[c.ref.level] = c
    for c in firsts:
        rows.setdefault(c.ref.level, GridRow(c.ref.level)).first = c
    ordered = [rows[k] for k in sorted(rows, reverse=True)]
    return WalkGrid(prefix, ordered, second_levels, first_levels, nested, fault_n)


def walk_graph(walk) -> nx.DiGraph:
    """The path of one walk as a graph: a node per ref (``n``: its number,
    with ``stage``, ``level``, ``address``, ``value``, ``structure``,
    ``guest_level``, ``fault``) and an edge from each ref to the next, plus
    ``located-by`` edges from the last second-stage ref of a row to the guest
    entry that row locates. The nodes are keyed by the HPA read so the path
    overlays the structure graph's entries (see :func:`structure_graph`)."""
    g = nx.DiGraph()
    grid = walk_grid(walk)
    prev = None
    for i, r in enumerate(walk.refs or [], 1):
        node = ("ref", i)
        g.add_node(node, n=i, stage=r.stage, level=r.level, address=r.address,
                   value=r.value, structure=r.structure, guest_level=r.guest_level,
                   fault=(i == grid.fault_number))
        if prev is not None:
            g.add_edge(prev, node, kind="next")
        prev = node
    for row in grid.rows:
        if row.first is not None and row.second:
            last = row.second[min(row.second)]
            g.add_edge(("ref", last.number), ("ref", row.first.number), kind="located-by")
    return g
