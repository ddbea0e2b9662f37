"""Pictures of a walk for the widgets.

The kit's renderer is :mod:`svmkit.render.svg` (``walk_grid_svg``, ``graph_svg``). Until it
is installed these small stand-ins draw the same two pictures with the same markup
conventions (``data-ref`` on each cell, ``data-highlight='1'`` on the lit one), so the
widgets and their browser tests do not care which one drew.
"""

from __future__ import annotations

from html import escape

try:  # the kit's renderer, when present
    from svmkit.render.svg import walk_grid_svg as _kit_grid
except ImportError:  # pragma: no cover - depends on what has landed
    _kit_grid = None
try:
    from svmkit.graphs import walk_graph as _kit_walk_graph
    from svmkit.render.svg import graph_svg as _kit_graph_svg
except ImportError:  # pragma: no cover
    _kit_walk_graph = _kit_graph_svg = None

PAGE_STAGES = ("first", "second")
FILL = {"first": "#dbeafe", "second": "#dcfce7", "structure": "#fef3c7", "fault": "#fecaca",
        "empty": "#f3f4f6"}
LIT = "#f97316"
HL = " data-highlight='1'"
FONT = "font-family='DejaVu Sans Mono, Menlo, Consolas, monospace'"


def _svg(w, h, body, title):
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' "
            f"viewBox='0 0 {w} {h}' {FONT} font-size='13'><title>{escape(title)}</title>"
            + "".join(body) + "</svg>")


def _t(x, y, s, size=13, anchor="middle", weight="normal"):
    return (f"<text x='{x}' y='{y}' font-size='{size}' text-anchor='{anchor}' "
            f"font-weight='{weight}'>{escape(str(s))}</text>")


def _fault_number(walk):
    if walk.fault is None or not walk.refs:
        return None
    last = walk.refs[-1]
    return len(walk.refs) if last.stage == walk.fault.stage else None


def grid_layout(walk):
    """Rows and columns of the two-dimensional walk (Bhargava et al. 2008, fig. 3; VT-d
    sec. 3.8): ``(prefix, rows, columns)`` where ``prefix`` lists the ref numbers of
    structure reads, ``rows`` the row keys (guest level, highest first, then 0 for the
    data GPA) and ``cells`` maps (row, column) -> ref number; a column is a second-stage
    level or "guest" for the guest entry read."""
    prefix, cells = [], {}
    nested = bool(walk.nested)
    for i, r in enumerate(walk.refs, 1):
        if r.stage not in PAGE_STAGES:
            prefix.append(i)
        elif r.stage == "second":
            gl = r.guest_level if r.guest_level is not None else 0
            cells[(gl, r.level)] = i
        elif nested:
            cells[(r.level, "guest")] = i
        else:
            cells[(0, r.level)] = i
    if nested:
        rows = list(range(walk.levels, 0, -1)) + [0]
        cols = list(range(walk.second_levels, 0, -1)) + ["guest"]
    else:
        rows = [0]
        cols = list(range(walk.levels, 0, -1))
    return prefix, rows, cols, cells


def grid_svg(walk, *, highlight=None, title=None):
    """The walk as a grid; ``highlight`` is a 1-based ref number."""
    if _kit_grid is not None:
        return _kit_grid(walk, highlight=highlight, title=title)
    prefix, rows, cols, cells = grid_layout(walk)
    fault_n = _fault_number(walk)
    cw, ch, gap, lw, pad = 170, 62, 8, 150, 12
    width = lw + pad * 2 + max(len(cols), len(prefix), 1) * cw
    body, y = [], 26
    body.append(_t(pad, y, title or "walk", size=15, anchor="start", weight="bold"))
    y += 14

    def cell(x, y, n, kind):
        if n is None:
            body.append(f"<rect x='{x}' y='{y}' width='{cw - gap}' height='{ch}' rx='6' "
                        f"fill='{FILL['empty']}' stroke='#d1d5db' stroke-dasharray='4 3'/>")
            return
        r = walk.refs[n - 1]
        lit = n == highlight
        fill = FILL["fault"] if n == fault_n else FILL[kind]
        stroke = f"stroke='{LIT}' stroke-width='5'" if lit else "stroke='#6b7280'"
        body.append(f"<g data-ref='{n}'{HL if lit else ''}>"
                    f"<rect x='{x}' y='{y}' width='{cw - gap}' height='{ch}' rx='6' "
                    f"fill='{fill}' {stroke}/>")
        cx = x + (cw - gap) // 2
        body.append(_t(cx, y + 20, f"{n}. {r.structure or r.stage}", weight="bold"))
        body.append(_t(cx, y + 40, f"{r.address:#x}", size=12))
        body.append("</g>")

    if prefix:
        y += 8
        body.append(_t(pad, y + ch // 2 + 5, "structures", anchor="start", weight="bold"))
        for j, n in enumerate(prefix):
            cell(lw + pad + j * cw, y, n, "structure")
        y += ch + gap
    y += 22
    nested = bool(walk.nested)
    for j, c in enumerate(cols):
        head = "guest entry" if c == "guest" else (f"host L{c}" if nested else f"L{c}")
        body.append(_t(lw + pad + j * cw + (cw - gap) // 2, y, head, weight="bold"))
    y += 10
    for row in rows:
        label = ("data GPA" if row == 0 else f"guest L{row}") if nested else "levels"
        body.append(_t(pad, y + ch // 2 + 5, label, anchor="start", weight="bold"))
        for j, c in enumerate(cols):
            if row == 0 and c == "guest":
                continue
            kind = "first" if (c == "guest" or not nested and walk.refs
                               and walk.refs[-1].stage == "first") else "second"
            cell(lw + pad + j * cw, y, cells.get((row, c)), kind)
        y += ch + gap
    return _svg(width, y + 6, body, title or "walk grid")


def structures_svg(graph, node, *, title=None):
    """A scenario's structure graph (:func:`svmkit.graphs.structure_graph`) with ``node``
    (the table the current reference read) lit."""
    return _kit_graph_svg(graph, highlight=node, title=title)


def path_svg(walk, *, highlight=None, title=None):
    """The structures the walk read, as a graph with the current one lit."""
    if _kit_walk_graph is not None:
        g = _kit_walk_graph(walk)

        def label(node, d):
            return f"{d['n']}. {d['structure'] or d['stage']}\n{d['address']:#x}"

        return _kit_graph_svg(g, highlight=("ref", highlight) if highlight else None,
                              title=title, label=label)
    # Stand-in: the reads in order, wrapped in rows of six.
    per, bw, bh, gx, gy, pad = 6, 180, 48, 26, 26, 12
    n = len(walk.refs)
    rows = max(1, -(-n // per))
    body = []
    for i, r in enumerate(walk.refs, 1):
        x = pad + ((i - 1) % per) * (bw + gx)
        y = pad + ((i - 1) // per) * (bh + gy)
        lit = i == highlight
        stroke = f"stroke='{LIT}' stroke-width='5'" if lit else "stroke='#374151'"
        kind = r.stage if r.stage in PAGE_STAGES else "structure"
        body.append(f"<g data-node='{i}'{HL if lit else ''}>"
                    f"<rect x='{x}' y='{y}' width='{bw}' height='{bh}' rx='6' "
                    f"fill='{FILL[kind]}' {stroke}/>"
                    + _t(x + bw // 2, y + 20, f"{i}. {r.structure or r.stage}", weight="bold")
                    + _t(x + bw // 2, y + 38, f"{r.address:#x}", size=12) + "</g>")
        if i < n and i % per:
            body.append(f"<line x1='{x + bw}' y1='{y + bh // 2}' x2='{x + bw + gx}' "
                        f"y2='{y + bh // 2}' stroke='#6b7280' stroke-width='2'/>")
    return _svg(pad * 2 + per * (bw + gx), pad * 2 + rows * (bh + gy), body,
                title or "structures read")
