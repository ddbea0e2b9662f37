"""Plain-text renderers for mailing lists: ASCII only, at most 72 columns.

A walk is a numbered list of memory references (each the HPA read and the
64-bit entry found there) and, for a nested walk, the 2D grid of the VT-d
specification's nested translation (sec. 3.8): one row per guest table and
one for the final GPA, one column per second-stage level, then the guest
entry the row's second-stage walk located.
"""

from __future__ import annotations

import textwrap

from svmkit.graphs import walk_grid

WIDTH = 72

_SIZES = {1 << 12: "4 KiB", 1 << 16: "64 KiB", 1 << 21: "2 MiB", 1 << 25: "32 MiB",
          1 << 29: "512 MiB", 1 << 30: "1 GiB", 1 << 39: "512 GiB", 1 << 42: "4 TiB"}


def size_name(n: int) -> str:
    """``4096`` -> ``"4 KiB"``; any size in the largest unit dividing it."""
    if n in _SIZES:
        return _SIZES[n]
    for unit, name in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= unit and n % unit == 0:
            return f"{n // unit} {name}"
    return f"{n} B"


def hx(v: int | None, digits: int = 0) -> str:
    """Hex with ``0x``; ``digits`` pads to a fixed width so columns align."""
    if v is None:
        return "-"
    return f"0x{v:0{digits}x}" if digits else f"0x{v:x}"


def _tag(ref) -> str:
    """Short position of a ref: ``L4`` for a first-stage level, ``gL4>S3``
    for a second-stage level-3 entry read while locating the guest level-4
    table, ``gpa>S1`` while translating the final GPA."""
    if ref.stage == "first":
        return f"L{ref.level}"
    if ref.stage == "second":
        if ref.guest_level is None:
            return f"S{ref.level}"
        g = "gpa" if ref.guest_level == 0 else f"gL{ref.guest_level}"
        return f"{g}>S{ref.level}"
    return ""   # a structure read (root, context, PASID ...) has no page level


def fault_line(fault) -> str:
    """One line naming a fault: stage, level, reason, address, code."""
    lvl = "" if fault.level is None else f" L{fault.level}"
    code = "" if getattr(fault, "code", None) is None else f" code {hx(fault.code)}"
    acc = f" ({fault.access})" if getattr(fault, "access", None) else ""
    return f"fault: {fault.stage}{lvl} {fault.reason} at {hx(fault.address)}{code}{acc}"


def walk_header(walk, *, name: str = "address") -> list[str]:
    """The result of a walk in one or two lines."""
    lines = []
    src = f"{name} {hx(walk.va)}"
    if walk.fault is not None:
        one = f"{src} -> {fault_line(walk.fault)}"
        lines += [one] if len(one) <= WIDTH else [f"{src} ->", "  " + fault_line(walk.fault)]
    else:
        size = f" ({size_name(walk.page_size)} page)" if walk.page_size else ""
        gpa = getattr(walk, "gpa", None)
        via = f" via GPA {hx(gpa)}" if gpa is not None else ""
        one = f"{src} -> HPA {hx(walk.pa)}{via}{size}"
        lines += [one] if len(one) <= WIDTH else [f"{src} ->", f"  HPA {hx(walk.pa)}{via}{size}"]
    return [_fit(l) for l in lines]


def _fit(line: str) -> str:
    """Wrap nothing silently: cut at 72 columns with a visible marker."""
    line = line.encode("ascii", "replace").decode("ascii")
    return line if len(line) <= WIDTH else line[: WIDTH - 3] + "..."


def walk_list(walk) -> str:
    """The walk as a numbered list of references:
    ``n. structure  position  HPA-read  entry-value``."""
    grid = walk_grid(walk)
    out = []
    for i, r in enumerate(walk.refs or [], 1):
        mark = "*" if i == grid.fault_number else "."
        s = (r.structure or r.stage)[:21]
        out.append(_fit(f"{i:>3}{mark} {s:<21} {_tag(r):<6} {hx(r.address, 13)} "
                        f"{hx(r.value, 16)}"))
    if not out:
        out.append("  (no memory references)")
    if grid.fault_number:
        out.append(f"  (* where the fault was found)")
    return "\n".join(out)


def walk_grid_text(walk) -> str:
    """The 2D grid: cells are ref numbers from :func:`walk_list`, ``XX`` on
    the faulting one, ``..`` where the walk never got, ``--`` below a large
    second-stage page (that row's walk ended early), ``c`` a read a cache
    answered (models with paging-structure caches report only real reads). A single-stage walk
    is shown as one row per level."""
    grid = walk_grid(walk)
    lines = []
    if grid.prefix:
        names = ", ".join(f"{c.number} {c.ref.structure or c.ref.stage}" for c in grid.prefix)
        lines += textwrap.wrap(f"structures: {names}", WIDTH, subsequent_indent="  ")
    if not grid.rows:
        lines.append("(no page-table references)")
        return "\n".join(lines)

    def cell(c):
        if c is None:
            return "[..]"
        return "[XX]" if c.fault else f"[{c.number:>2}]" if c.number < 100 else f"{c.number:>4}"

    sl = grid.second_levels
    head = f"{'row':<10} " + "".join(f"S{l:<3}" for l in sl)
    if grid.first_levels:
        head += "  guest entry" if sl else "entry"
    lines.append(head.rstrip())
    have = {r.guest_level: r for r in grid.rows}
    for gl in grid.row_levels:
        row = have.get(gl)
        if grid.nested or sl:
            label = "data GPA" if gl == 0 else f"guest L{gl}"
        else:
            label = f"L{gl}"
        # Below a large second-stage page the row needs no more levels: "--".
        low = min(row.second) if row and row.second else None
        faulted = row is not None and any(c.fault for c in row.second.values())
        # Above a present cell, an absent one was served by a cache (a model
        # with paging-structure caches reports only the reads it made): "c".
        cells = "".join("[--]" if low is not None and l < low and not faulted
                        else "[ c]" if low is not None and l > low and l not in row.second
                        else cell(row.second.get(l) if row else None) for l in sl)
        tail = ""
        if grid.first_levels and gl != 0:
            f = row.first if row else None
            name = f.ref.structure if f is not None and f.ref.structure else ""
            tail = ("  " if sl else "") + cell(f) + (f" {name}" if name else "")
        lines.append(_fit(f"{label:<10} {cells}{tail}".rstrip()))
    n_page = sum(len(r.second) + (r.first is not None) for r in grid.rows)
    if grid.nested:
        extra = f" + {len(grid.prefix)} structure refs" if grid.prefix else ""
        lines.append(_fit(f"{n_page} page-table refs{extra} "
                          f"({grid.full_refs} in a full walk of 4 KiB pages)"))
    return "\n".join(lines)


def walk_text(walk, *, title: str | None = None, name: str = "address") -> str:
    """Header, numbered list and grid: the whole walk for a mail."""
    parts = []
    if title:
        parts.append(_fit(title))
    parts += walk_header(walk, name=name)
    parts.append("")
    parts.append(walk_list(walk))
    parts.append("")
    parts.append(walk_grid_text(walk))
    return "\n".join(parts) + "\n"


def _wrap(text, indent="   "):
    return [l for l in textwrap.wrap(text, WIDTH, initial_indent=indent,
                                     subsequent_indent=indent + "  ")]


def audit_text(audit, *, title: str | None = None) -> str:
    """An isolation audit (:func:`svmkit.graphs.audit`) for a mail: what each
    device and PASID reaches, then every finding with its cause."""
    lines = [_fit(title)] if title else []
    lines.append("device  PASID kind          domain  reaches (HPA, rights)")
    for r in audit.reaches:
        pasid = "-" if r.pasid is None else r.pasid
        head = f"{r.device} {pasid:>6} {r.kind:<13} {r.domain:<7}"
        if not r.ranges:
            lines.append(_fit(f"{head} nothing"))
        for k, (hpa, size, rights, _leaf) in enumerate(r.ranges):
            rng = f"{hx(hpa)}+{size_name(size)} {rights}"
            lines.append(_fit((head if k == 0 else " " * len(head)) + " " + rng))
    lines.append("")
    if audit.ok:
        lines.append("no findings: every device and PASID stays in its own domain")
    else:
        lines.append(f"FINDINGS: {len(audit.findings)}")
        for i, f in enumerate(audit.findings, 1):
            what = {"foreign": f"reaches {f.victim} memory",
                    "iommu": "can write IOMMU structures",
                    "overlap": f"overlaps {f.victim}"}[f.kind]
            who = "without PASID" if f.pasid is None else f"PASID {f.pasid}"
            lines += _wrap(f"{i}. {f.device} {who} ({f.domain}) {what}", "")
            lines += _wrap(f"HPA {hx(f.hpa)}..{hx(f.hpa + f.size - 1)} "
                           f"({size_name(f.size)}) {f.rights}".rstrip())
            lines += _wrap(f"cause: {f.cause}")
    return "\n".join(lines) + "\n"


def ops_text(log, name=None) -> str:
    """What the drivers did, for a mail: each operation (a label, its
    memory writes ``(pa, old, new, what)`` and the invalidations it issued
    by their spec names), in order. ``name(pa)`` names a written address."""
    lines = []
    for label, writes, invs in log:
        lines.append(_fit(f"{label}:"))
        for pa, old, new, what in writes:
            was = "" if old is None else f"{hx(old, 16)} -> "
            lines.append(_fit(f"  write {hx(pa, 13)} {was}{hx(new, 16)}"))
            about = f"        {what}" + (f" ({name(pa)})" if name else "")
            lines += [_fit(about)] if len(about) <= WIDTH else \
                [_fit(f"        {what}"), _fit(f"        in {name(pa)}")]
        for inv in invs:
            lines += textwrap.wrap(f"  invalidate {getattr(inv, 'name', inv)} {_inv_args(inv)}",
                                   WIDTH, subsequent_indent="    ")
        if not writes and not invs:
            lines.append("  (nothing)")
    return "\n".join(lines) + "\n"


def _inv_args(inv) -> str:
    """The fields of an invalidation descriptor object, short."""
    d = getattr(inv, "__dict__", {}) or {}
    parts = [f"{k}={v:#x}" if isinstance(v, int) and not isinstance(v, bool) and v > 9
             else f"{k}={v}" for k, v in d.items() if not k.startswith("_")]
    return " ".join(parts)


def tree_text(g, *, root=None, max_children: int = 12) -> str:
    """A structure graph (:func:`svmkit.graphs.structure_graph`) as an
    indented tree from its root table: one node a line, the pointing entry's
    label first. A node reached twice is printed once, then referred to."""
    if root is None:
        srcs = [n for n in g if g.in_degree(n) == 0]
        srcs.sort(key=lambda n: (g.nodes[n].get("kind") != "root table", str(n)))
        roots = srcs
    else:
        roots = [root]
    lines, seen = [], set()

    def label(n):
        d = g.nodes[n]
        text = d.get("label", str(n)).replace("\n", ", ")
        return text

    def visit(n, depth, via):
        pre = "  " * depth + (f"{via}: " if via else "")
        if n in seen:
            lines.append(_fit(pre + f"(see above) {label(n)}"))
            return
        seen.add(n)
        lines.append(_fit(pre + label(n)))
        kids = list(g.successors(n))
        for k, c in enumerate(kids):
            if k == max_children:
                lines.append(_fit("  " * (depth + 1) + f"... {len(kids) - k} more"))
                break
            visit(c, depth + 1, g.edges[n, c].get("label", ""))

    for r in roots:
        visit(r, 0, "")
    return "\n".join(lines) + "\n"
