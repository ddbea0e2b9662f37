"""SVG renderers with the layout computed in Python (no Graphviz binary).

Drawn for a 1280 px wide view: text at least 12 px, boxes wide enough for a
structure name and a 13-digit HPA. One node, edge or grid cell can be
highlighted (the widgets step through a walk this way). Every element carries
a ``data-`` attribute naming what it draws so a browser test or a widget can
find it.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from svmkit.graphs import walk_grid
from svmkit.render.layout import layered_layout
from svmkit.render.text import fault_line, hx, size_name

WIDTH = 1280
HL = " data-highlight='1'"
FONT = "font-family='DejaVu Sans Mono, Menlo, Consolas, monospace'"
COLORS = {
    "first": "#dbeafe", "second": "#dcfce7", "structure": "#fef3c7",
    "fault": "#fecaca", "empty": "#f3f4f6", "highlight": "#f97316",
}


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}' {FONT} font-size='13'>"
            f"<title>{escape(title)}</title>"
            "<defs><marker id='arrow' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='9' "
            "markerHeight='9' markerUnits='userSpaceOnUse' orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' "
            "fill='#6b7280'/></marker></defs>"
            + "".join(body) + "</svg>")


def _text(x, y, s, *, size=13, anchor="middle", weight="normal", fill="#111827"):
    return (f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}' "
            f"font-weight='{weight}' fill='{fill}'>{escape(str(s))}</text>")


def walk_grid_svg(walk, *, highlight: int | None = None, title: str | None = None) -> str:
    """The walk's 2D grid (see :func:`svmkit.graphs.walk_grid`) as SVG.

    Cells show the ref number, structure name and HPA read; the faulting
    cell is red; ``highlight`` (a 1-based ref number, as in the text list)
    gets a thick orange outline. Structure reads (root, context, PASID ...)
    form a first row. Cells carry ``data-ref='n'``."""
    grid = walk_grid(walk)
    sl = grid.second_levels
    ncols = len(sl) + (1 if grid.first_levels else 0)
    ncols = max(ncols, len(grid.prefix), 1)
    label_w, pad = 130, 16
    cw = min(220, (WIDTH - label_w - 2 * pad) // ncols)
    ch, gap = 64, 10
    body, y = [], 30
    heading = title or ""
    if walk.fault is not None:
        heading += ("  " if heading else "") + f"{hx(walk.va)}: {fault_line(walk.fault)}"
    else:
        heading += ("  " if heading else "") + f"{hx(walk.va)} -> {hx(walk.pa)}"
        if walk.page_size:
            heading += f" ({size_name(walk.page_size)})"
    body.append(_text(pad, y, heading, size=15, anchor="start", weight="bold"))
    y += 16
    centers = {}

    def cell(x, y, c, kind, note=""):
        if c is None:
            body.append(f"<rect x='{x}' y='{y}' width='{cw - gap}' height='{ch}' rx='6' "
                        f"fill='{COLORS['empty']}' stroke='#d1d5db' stroke-dasharray='4 3'/>")
            if note:
                body.append(_text(x + (cw - gap) / 2, y + ch / 2 + 5, note, size=12,
                                  fill="#6b7280"))
            return
        fill = COLORS["fault"] if c.fault else COLORS[kind]
        hl = c.number == highlight
        stroke = (f"stroke='{COLORS['highlight']}' stroke-width='4'" if hl
                  else "stroke='#6b7280' stroke-width='1'")
        r = c.ref
        body.append(f"<g data-ref='{c.number}'{HL if hl else ''}>"
                    f"<rect x='{x}' y='{y}' width='{cw - gap}' height='{ch}' rx='6' "
                    f"fill='{fill}' {stroke}/>")
        cx = x + (cw - gap) / 2
        body.append(_text(cx, y + 18, f"{c.number}. {r.structure or r.stage}", weight="bold"))
        body.append(_text(cx, y + 36, hx(r.address), size=12))
        body.append(_text(cx, y + 53, hx(r.value, 16), size=12, fill="#374151"))
        body.append("</g>")
        centers[c.number] = (cx, y + ch / 2)

    if grid.prefix:
        y += 10
        body.append(_text(pad, y + ch / 2 + 5, "structures", anchor="start", weight="bold"))
        for i, c in enumerate(grid.prefix):
            cell(label_w + pad + i * cw, y, c, "structure")
        y += ch + gap
    # Column heads.
    y += 22
    for j, l in enumerate(sl):
        body.append(_text(label_w + pad + j * cw + (cw - gap) / 2, y, f"second stage L{l}",
                          weight="bold"))
    if grid.first_levels:
        body.append(_text(label_w + pad + len(sl) * cw + (cw - gap) / 2, y,
                          "guest entry" if sl else "first stage", weight="bold"))
    y += 10
    have = {r.guest_level: r for r in grid.rows}
    for gl in grid.row_levels:
        row = have.get(gl)
        label = ("data GPA" if gl == 0 else f"guest L{gl} table") if sl else f"L{gl}"
        body.append(_text(pad, y + ch / 2 + 5, label, anchor="start", weight="bold"))
        low = min(row.second) if row and row.second else None
        faulted = row is not None and any(c.fault for c in row.second.values())
        for j, l in enumerate(sl):
            c = row.second.get(l) if row else None
            # As in the text grid: "--" below a large page, a cache above.
            note = "" if c is not None or low is None else \
                "large page" if l < low and not faulted else "cache hit" if l > low else ""
            cell(label_w + pad + j * cw, y, c, "second", note)
        if grid.first_levels and gl != 0:
            cell(label_w + pad + len(sl) * cw, y, row.first if row else None, "first")
        y += ch + gap
    # The order of references as a light path over the cells.
    pts = [centers[n] for n in sorted(centers)]
    if len(pts) > 1:
        d = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{yy:.1f}" for i, (x, yy) in enumerate(pts))
        body.insert(1, f"<path d='{d}' fill='none' stroke='#9ca3af' stroke-width='2' "
                       "stroke-opacity='0.6' data-path='order'/>")
    return _svg(WIDTH, int(y + 10), body, title or "walk grid")


def graph_svg(g, *, highlight=None, title: str | None = None,
              label=None, color=None) -> str:
    """A directed graph (e.g. :func:`svmkit.graphs.structure_graph`) drawn in
    layers with :func:`svmkit.render.layout.layered_layout`.

    ``highlight`` is a node or an ``(u, v)`` edge. Node text is the node's
    ``label`` attribute (or ``label(node, data)``), up to two lines split on
    newline; fill from ``color(node, data)`` or the ``owner`` attribute.
    Nodes carry ``data-node`` with their label, edges ``data-edge``."""
    pos = layered_layout(g)
    if not pos:
        return _svg(WIDTH, 60, [_text(20, 35, "(empty graph)", anchor="start")], title or "graph")
    nw, nh, hgap, vgap, pad = 170, 46, 14, 60, 20
    width_cols = max(int(c) for c, _ in pos.values()) + 1
    width = max(WIDTH, pad * 2 + width_cols * (nw + hgap))
    nlay = max(l for _, l in pos.values()) + 1
    height = pad * 2 + 30 + nlay * (nh + vgap)
    per_layer: dict[int, int] = {}
    for c, l in pos.values():
        per_layer[l] = max(per_layer.get(l, 0), int(c) + 1)
    xy = {}
    for n, (c, l) in pos.items():
        k = per_layer[l]
        span = k * (nw + hgap) - hgap
        x0 = (width - span) / 2
        xy[n] = (x0 + c * (nw + hgap), pad + 30 + l * (nh + vgap))
    owners = sorted({str(d.get("owner")) for _, d in g.nodes(data=True)})
    palette = ["#dbeafe", "#dcfce7", "#fef3c7", "#fce7f3", "#e0e7ff", "#ccfbf1", "#fee2e2",
               "#f3e8ff"]
    body = []
    if title:
        body.append(_text(pad, pad + 8, title, size=15, anchor="start", weight="bold"))
    hl_edge = highlight if isinstance(highlight, tuple) and len(highlight) == 2 \
        and g.has_edge(*highlight) else None
    outs = {u: list(g.successors(u)) for u in g}
    # Edge labels avoid the boxes and each other, and are drawn last.
    placed = [(x - 2, y - 2, x + nw + 2, y + nh + 2) for x, y in xy.values()]
    labels = []
    for u, v, d in g.edges(data=True):
        (x1, y1), (x2, y2) = xy[u], xy[v]
        hl = hl_edge == (u, v)
        stroke = (f"stroke='{COLORS['highlight']}' stroke-width='4'" if hl
                  else "stroke='#6b7280' stroke-width='1.3'")
        ex = escape(f"{d.get('label', '')}")
        body.append(f"<path data-edge={quoteattr(str(d.get('label', '')))} "
                    f"d='M{x1 + nw / 2:.1f},{y1 + nh:.1f} L{x2 + nw / 2:.1f},{y2:.1f}' "
                    f"{stroke} fill='none' marker-end='url(#arrow)'><title>{ex}</title></path>")
        lab = str(d.get("label", ""))
        if lab and len(lab) <= 24:
            # Siblings' labels sit at different heights along their edges so
            # they do not print over each other; a white halo keeps them legible.
            k, n = outs[u].index(v), len(outs[u])
            t = 0.35 if n == 1 else 0.2 + 0.6 * k / (n - 1)
            mx = x1 + nw / 2 + (x2 - x1) * t
            my = y1 + nh + (y2 - y1 - nh) * t
            def clash(dy):
                b0 = (mx, my + dy - 10, mx + 7.6 * len(lab) + 8, my + dy + 5)
                return any(b0[0] < b[2] and b[0] < b0[2] and b0[1] < b[3] and b[1] < b0[3]
                           for b in placed)
            # Nearest free line above or below the ideal spot.
            dy = next((d for k in range(12) for d in (15 * k, -15 * k) if not clash(d)), 0)
            my += dy
            placed.append((mx, my - 10, mx + 7.6 * len(lab) + 8, my + 5))
            labels.append(f"<text x='{mx + 4:.1f}' y='{my + 4:.1f}' font-size='12' "
                        f"text-anchor='start' fill='#374151' stroke='white' stroke-width='3' "
                        f"paint-order='stroke'>{escape(lab)}</text>")
    for n, d in g.nodes(data=True):
        x, y = xy[n]
        text = label(n, d) if label else d.get("label", str(n))
        fill = color(n, d) if color else palette[owners.index(str(d.get("owner"))) % len(palette)]
        if d.get("fault"):
            fill = COLORS["fault"]
        hl = highlight is not None and hl_edge is None and n == highlight
        stroke = (f"stroke='{COLORS['highlight']}' stroke-width='4'" if hl
                  else "stroke='#374151' stroke-width='1'")
        lines = str(text).split("\n")[:2]
        body.append(f"<g data-node={quoteattr(lines[0])}{HL if hl else ''}>"
                    f"<rect x='{x:.1f}' y='{y:.1f}' width='{nw}' height='{nh}' rx='6' "
                    f"fill='{fill}' {stroke}/>")
        for i, t in enumerate(lines):
            ty = y + (nh / 2 + 5 if len(lines) == 1 else 19 + i * 17)
            body.append(_text(x + nw / 2, ty, t[:22], size=13 if i == 0 else 12))
        body.append("</g>")
    body += labels
    return _svg(int(width), int(height), body, title or "graph")
