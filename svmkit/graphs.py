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
    row_levels: list = field(default_factory=list)
    full_refs: int | None = None


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
    # The rows and columns to draw: those the walk used when it completed
    # (a large page ends a stage early); the whole shape of the walk when it
    # faulted, so the unreached cells stay visible.
    n = getattr(walk, "levels", None) or max(first_levels, default=0)
    m = getattr(walk, "second_levels", None) or max(second_levels, default=0)
    row_levels = [r.guest_level for r in ordered]
    if walk.fault is not None and nested:
        row_levels = list(range(max(n, *first_levels), 0, -1)) + [0]
        second_levels = list(range(max(m, *second_levels), 0, -1))
    elif walk.fault is not None and firsts and not seconds:
        row_levels = list(range(max(n, *first_levels), 0, -1))
    full = n * (m + 1) + m if nested else None
    return WalkGrid(prefix, ordered, second_levels, first_levels, nested, fault_n, row_levels,
                    full)


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


# -- what a page table maps ------------------------------------------------------------------

@dataclass(frozen=True)
class Extent:
    """``size`` bytes at input ``va`` mapped to output ``pa`` with ``rights``
    (letters of ``rwxu``: read, write, execute, user), by the leaf entry at
    HPA ``entry``. Merged extents keep the first leaf's address."""

    va: int
    pa: int
    size: int
    rights: str
    entry: int

    @property
    def end(self):
        return self.va + self.size


def _rights_str(bits) -> str:
    from svmkit.formats import layout as L
    s = ""
    s += "r" if bits & (1 << L.READ) else ""
    s += "w" if bits & (1 << L.WRITE) else ""
    s += "x" if bits & ((1 << L.XUSER) | (1 << L.XPRIV)) else ""
    s += "u" if bits & (1 << L.USER) else ""
    return s


def leaves(mem, root, fmt, levels, *, phys_bits=52, to_host=None, tables=None, **options):
    """Every mapping of the page table at ``root`` as :class:`Extent` s, one per
    leaf, in input-address order.

    Reads memory the way the walkers do (:mod:`svmkit.walker.reference`'s
    ``classify`` and ``rights`` over the format's descriptor), so a format
    module is all it needs: present, leaf and reserved bits, the next-level
    field of AMD v1, rights collected over every level (Intel SDM 4.6; VT-d
    3.6/3.7). Malformed or not-present entries map nothing. ``to_host`` maps a
    table address to the HPA it is stored at (a guest's tables: the second
    stage), returning None when it is not backed. ``tables``, when a dict,
    receives ``{table address: level}`` of every table visited.
    """
    import numpy as np

    from svmkit import formats
    from svmkit.formats import layout as L
    from svmkit.walker import faults as F
    from svmkit.walker.reference import ALL_RIGHTS, classify, rights

    f = formats.get(fmt)
    d = f.descriptor(levels, phys_bits, **options)
    to_host = to_host or (lambda a: a)
    bits = int(d[0, L.G_INPUT_BITS])
    canonical = bool(d[0, L.G_CANONICAL])
    table_mask = L.to_u64(d[0, L.G_TABLE_ADDR])
    out: list[Extent] = []
    seen = set()

    def visit(table, level, base, granted):
        host = to_host(table)
        if host is None or (table, level) in seen or host + 4096 > mem.size:
            return
        seen.add((table, level))
        if tables is not None:
            tables[table] = level
        raw = np.frombuffer(mem.read(host, 4096), dtype="<i8")
        shift = int(d[level, L.L_SHIFT])
        for i in np.nonzero(raw)[0]:
            e = int(raw[i])
            reason, leaf, nxt = classify(e, level, d)
            if reason != F.OK:
                continue
            va = base | (int(i) << shift)
            g = granted & rights(e, level, leaf, d)
            if leaf:
                if canonical and va >> (bits - 1) & 1:
                    va |= ((1 << 64) - 1) ^ ((1 << bits) - 1)
                out.append(Extent(va, L.to_u64(e) & L.to_u64(d[level, L.L_LEAF_ADDR]),
                                  1 << shift, _rights_str(g), host + 8 * int(i)))
            else:
                visit(L.to_u64(e) & table_mask, nxt, va, g)

    visit(root, levels, 0, ALL_RIGHTS)
    out.sort(key=lambda x: x.va)
    return out


def merge(extents) -> list[Extent]:
    """Adjacent extents contiguous in input and output with equal rights
    become one: a range, rather than one entry per page."""
    out: list[Extent] = []
    for x in sorted(extents, key=lambda x: x.va):
        p = out[-1] if out else None
        if p and p.end == x.va and p.pa + p.size == x.pa and p.rights == x.rights:
            out[-1] = Extent(p.va, p.pa, p.size + x.size, p.rights, p.entry)
        else:
            out.append(x)
    return out


def _common(a: str, b: str) -> str:
    return "".join(c for c in "rwxu" if c in a and c in b)


def compose(first, second) -> list[tuple]:
    """Nested reach: first-stage extents (GVA -> GPA) through second-stage ones
    (GPA -> HPA), as ``(gva, gpa, hpa, size, rights, first_entry,
    second_entry)`` pieces; rights are those both stages grant (VT-d 3.8)."""
    sec = sorted(second, key=lambda x: x.va)
    starts = [x.va for x in sec]
    import bisect
    out = []
    for f in first:
        a, end = f.pa, f.pa + f.size
        i = max(bisect.bisect_right(starts, a) - 1, 0)
        while i < len(sec) and sec[i].va < end:
            s = sec[i]
            lo, hi = max(a, s.va), min(end, s.end)
            if lo < hi:
                out.append((f.va + (lo - f.pa), lo, s.pa + (lo - s.va), hi - lo,
                            _common(f.rights, s.rights), f.entry, s.entry))
            i += 1
    return out


def merge_pieces(pieces) -> list[tuple]:
    """:func:`compose` pieces merged where GVA, GPA and HPA all continue."""
    out = []
    for p in sorted(pieces):
        if out:
            q = out[-1]
            if q[0] + q[3] == p[0] and q[1] + q[3] == p[1] and q[2] + q[3] == p[2] \
                    and q[4] == p[4]:
                out[-1] = (q[0], q[1], q[2], q[3] + p[3], q[4], q[5], q[6])
                continue
        out.append(p)
    return out
