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
    two_stage = any(r.stage == "first" for r in refs) or bool(getattr(walk, "nested", False))
    for i, r in enumerate(refs, 1):
        cell = GridCell(i, r, fault=(i == fault_n))
        if r.stage == "first":
            firsts.append(cell)
        elif r.stage == "second" and not (two_stage and r.guest_level is None):
            seconds.append(cell)
        else:
            # Structure reads, and in a nested walk the second-stage reads
            # that locate a guest-owned structure (a VT-d 2.x PASID table,
            # an SMMUv3 CD, an AMD-Vi GCR3 table) before the page walk.
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


def walk_path(g, walk) -> list:
    """The nodes of structure graph ``g`` (:func:`structure_graph`) that
    ``walk`` read, in order, one per reference (None where a reference's
    table is not in the graph): the walk drawn over the structures."""
    return [(r.address & ~0xFFF) if (r.address & ~0xFFF) in g else None for r in walk.refs]


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


def leaves(mem, root, fmt, levels, *, phys_bits=52, to_host=None, tables=None, edges=None,
           **options):
    """Every mapping of the page table at ``root`` as :class:`Extent` s, one per
    leaf, in input-address order.

    Reads memory the way the walkers do (:mod:`svmkit.walker.reference`'s
    ``classify`` and ``rights`` over the format's descriptor), so a format
    module is all it needs: present, leaf and reserved bits, the next-level
    field of AMD v1, rights collected over every level (Intel SDM 4.6; VT-d
    3.6/3.7). Malformed or not-present entries map nothing. ``to_host`` maps a
    table address to the HPA it is stored at (a guest's tables: the second
    stage), returning None when it is not backed. ``tables``, when a dict,
    receives ``{table address: level}`` of every table visited; ``edges``,
    when a list, ``(table, child table, index, entry HPA)`` for each table
    entry followed.
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
                child = L.to_u64(e) & table_mask
                if edges is not None:
                    edges.append((table, child, int(i), host + 8 * int(i)))
                visit(child, nxt, va, g)

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


# -- a built scenario: reach, audit, structure and mapping graphs ----------------------------

def _to_host_fn(second):
    """GPA -> HPA through second-stage extents (None where unmapped)."""
    import bisect
    sec = sorted(second, key=lambda x: x.va)
    starts = [x.va for x in sec]

    def to_host(gpa):
        i = bisect.bisect_right(starts, gpa) - 1
        if i >= 0 and sec[i].va <= gpa < sec[i].end:
            return sec[i].pa + (gpa - sec[i].va)
        return None
    return to_host


def _ctx_name(cfg):
    from svmkit.scenario.model import bdf_str
    return f"{bdf_str(cfg.rid)} PASID {cfg.pasid}"


@dataclass
class Reach:
    """What one device and PASID can reach in host memory, as the structures
    in memory say. ``domain`` is whose it should be (the bound process's VM,
    or "host"); ``ranges`` are ``(hpa, size, rights, leaf entry HPA)``
    merged; ``config`` the decoded PASID entry (adapters.PasidConfig)."""

    device: str
    pasid: int
    domain: str
    kind: str
    ranges: list
    config: object
    why: str = ""


@dataclass
class Finding:
    """One isolation problem: ``device``/``pasid`` (of ``domain``) reaches
    ``size`` bytes at ``hpa`` belonging to ``victim`` with ``rights``;
    ``cause`` names the entry responsible, ``entry`` its HPA."""

    kind: str          # "foreign" (another domain's memory), "iommu" (the
                       # IOMMU's own structures, writable) or "overlap"
    device: str
    pasid: int
    domain: str
    victim: str
    hpa: int
    size: int
    rights: str
    cause: str
    entry: int


@dataclass
class Audit:
    reaches: list
    findings: list

    @property
    def ok(self) -> bool:
        return not self.findings


def _expected_domain(built, cfg):
    from svmkit.scenario.model import HOST
    q = built.binds.get((cfg.rid, cfg.pasid))
    if q is not None:
        return q.split("/")[0]
    for d in built.scenario.devices:
        if d.rid == cfg.rid:
            return d.owner if not d.shared else HOST
    return HOST


def reach(built, cfg) -> Reach:
    """HPA ranges device ``cfg.rid`` can reach at ``cfg.pasid``.

    first: what the first-stage table maps (VT-d 3.6); second: what the
    second stage maps (3.7); nested: everything the second stage maps,
    because the guest owns the first stage and may point it anywhere in its
    GPA space (3.8); pass-through: all of memory (9.6, PGTT 100b)."""
    from svmkit.scenario.model import bdf_str
    mem = built.mem
    if cfg.kind == "first":
        ex = leaves(mem, cfg.first_root, cfg.first_fmt, cfg.first_levels)
        why = f"first stage at {cfg.first_root:#x}"
    elif cfg.kind in ("second", "nested"):
        ex = leaves(mem, cfg.second_root, cfg.second_fmt, cfg.second_levels)
        why = f"second stage at {cfg.second_root:#x}"
    elif cfg.kind == "pass-through":
        ex = [Extent(0, 0, mem.size, "rwxu", cfg.entry)]
        why = "pass-through"
    else:
        ex, why = [], cfg.kind
    by_pa = sorted((Extent(x.pa, x.pa, x.size, x.rights, x.entry) for x in ex),
                   key=lambda x: x.va)
    ranges = [(x.pa, x.size, x.rights, x.entry) for x in merge(by_pa)]
    return Reach(bdf_str(cfg.rid), cfg.pasid, _expected_domain(built, cfg), cfg.kind, ranges,
                 cfg, why)


def _domains(built):
    """Sorted (start, end, domain) regions: each VM's RAM; the rest is host."""
    return sorted((b, b + n, vm) for vm, (b, n) in built.vm_ram.items())


def _split_by_domain(built, hpa, size):
    """Pieces ``(start, end, domain)`` of ``hpa .. hpa+size``."""
    from svmkit.scenario.model import HOST
    out, a, end = [], hpa, hpa + size
    for b0, b1, vm in _domains(built):
        if b1 <= a or b0 >= end:
            continue
        if a < b0:
            out.append((a, b0, HOST))
        out.append((max(a, b0), min(end, b1), vm))
        a = min(end, b1)
    if a < end:
        out.append((a, end, HOST))
    return out


def audit(built) -> Audit:
    """For each device and PASID with a present entry: its reach, and every
    range it should not have: another domain's memory (a VM's RAM for the
    host or another VM; host memory for a VM's device), writable IOMMU
    structures, and overlaps between reaches of different domains. Each
    finding names the entry that causes it (the PASID entry, and the leaf
    that maps the range)."""
    reaches = [reach(built, cfg) for cfg in built.adapter.contexts()]
    findings = []
    sym = built.symbols
    iommu_pages = [(s.start, s.end) for s in sym.items if s.owner == "iommu"]
    for r in reaches:
        cfg = r.config
        for hpa, size, rights, leaf in r.ranges:
            for a, b, dom in _split_by_domain(built, hpa, size):
                if dom != r.domain:
                    root = cfg.second_root if r.kind in ("second", "nested") else cfg.first_root
                    cause = (f"{cfg.entry_name} at {cfg.entry:#x} selects {r.why}"
                             f" ({sym.name(root)})" if r.kind != "pass-through" else
                             f"{cfg.entry_name} at {cfg.entry:#x} is pass-through")
                    cause += f"; leaf at {leaf:#x}" if r.kind != "pass-through" else ""
                    findings.append(Finding("foreign", r.device, r.pasid, r.domain, dom, a,
                                            b - a, rights, cause, cfg.entry))
            if "w" in rights:
                for s0, s1 in iommu_pages:
                    lo, hi = max(s0, hpa), min(s1, hpa + size)
                    if lo < hi:
                        how = (f"{cfg.entry_name} at {cfg.entry:#x} is pass-through"
                               if r.kind == "pass-through" else f"leaf at {leaf:#x} maps it")
                        findings.append(Finding(
                            "iommu", r.device, r.pasid, r.domain, "iommu", lo, hi - lo, rights,
                            f"{how}: {sym.name(lo)} is writable", leaf))
    # Overlaps between reaches of different domains (a sweep over all ranges).
    spans = sorted((hpa, hpa + size, i, leaf) for i, r in enumerate(reaches)
                   for hpa, size, _rt, leaf in r.ranges)
    active = []
    seen = set()
    for a0, a1, i, leaf in spans:
        active = [x for x in active if x[1] > a0]
        for b0, b1, j, leaf_b in active:
            ri, rj = reaches[i], reaches[j]
            if ri.domain != rj.domain and (j, i) not in seen:
                seen.add((j, i))
                lo, hi = max(a0, b0), min(a1, b1)
                findings.append(Finding(
                    "overlap", ri.device, ri.pasid, ri.domain, rj.domain, lo, hi - lo, "",
                    f"{ri.config.entry_name} at {ri.config.entry:#x} (leaf at {leaf:#x}) "
                    f"and {rj.device} PASID {rj.pasid}'s {rj.config.entry_name} at "
                    f"{rj.config.entry:#x} (leaf at {leaf_b:#x}) reach the same memory",
                    ri.config.entry))
        active.append((a0, a1, i, leaf))
    return Audit(reaches, findings)


#: The spec's names of the fields holding the (first, second) stage roots.
ROOT_FIELDS = {"vtd": ("flptptr", "slptptr"), "vtd-ecs": ("flptptr", "slptptr"),
               "smmuv3": ("ttb0", "s2ttb"), "amdvi": ("gcr3", "host root")}


def structure_graph(built) -> nx.DiGraph:
    """Root, context, PASID directory, PASID tables, page tables and the
    frames they map, as a DiGraph keyed by HPA (frames by
    ``("frames", hpa, size)``). Node attributes: ``kind``, ``label``,
    ``owner`` and ``domain`` (from the symbol table), ``level`` for page
    tables. Edge attributes: ``label`` and ``entry`` (the HPA of the entry
    that points)."""
    from svmkit import formats
    from svmkit.render.text import size_name
    from svmkit.scenario.build import table_name
    g = nx.DiGraph()
    sym = built.symbols

    def node(hpa, kind, label=None, **kw):
        s = sym.lookup(hpa)
        owner = s.owner if s else "unowned"
        if hpa not in g:
            g.add_node(hpa, kind=kind, owner=owner, domain=s.domain if s else "host",
                       label=label or f"{kind}\n{hpa:#x}", hpa=hpa, **kw)
        return hpa

    for hpa, _size, kind, detail in built.adapter.structures():
        node(hpa, kind, f"{kind}\n{detail or hex(hpa)}")
    for parent, child, label, entry in built.adapter.edges():
        g.add_edge(node(parent, "structure"), node(child, "structure"), label=label, entry=entry)
    for cfg in built.adapter.contexts():
        ptab = cfg.entry & ~0xFFF
        node(ptab, "PASID table")
        stages = []
        second = None
        if cfg.kind in ("second", "nested"):
            second = leaves(built.mem, cfg.second_root, cfg.second_fmt, cfg.second_levels)
            stages.append(("slptptr", cfg.second_root, cfg.second_fmt, cfg.second_levels, None))
        if cfg.kind in ("first", "nested"):
            th = _to_host_fn(second) if cfg.kind == "nested" else None
            stages.append(("flptptr", cfg.first_root, cfg.first_fmt, cfg.first_levels, th))
        for field_name, root, fmt, levels, to_host in stages:
            f = formats.get(fmt)
            tables, edges = {}, []
            ex = leaves(built.mem, root, fmt, levels, to_host=to_host, tables=tables, edges=edges)
            h = to_host or (lambda a: a)
            for t, lv in tables.items():
                ht = h(t)
                if ht is not None:
                    s = sym.lookup(ht)
                    node(ht, "page table", f"{table_name(f, lv)}\n{s.owner if s else hex(ht)}",
                         level=lv, fmt=fmt)
            if h(root) is not None:
                fields = ROOT_FIELDS.get(built.scenario.model, ROOT_FIELDS["vtd"])
                which = fields[0] if field_name == "flptptr" else fields[1]
                who = "no PASID" if cfg.pasid is None else f"PASID {cfg.pasid}"
                g.add_edge(ptab, h(root), label=f"{who} {which}", entry=cfg.entry)
            for t, c, i, entry in edges:
                if h(t) is not None and h(c) is not None:
                    g.add_edge(h(t), h(c), label=f"[{i}]", entry=entry)
            if cfg.kind == "nested" and field_name == "flptptr":
                continue    # its frames are GPAs: the second stage's frames show them
            for x in merge([Extent(e.pa, e.pa, e.size, e.rights, e.entry) for e in ex]):
                key = ("frames", x.pa, x.size)
                s = sym.lookup(x.pa)
                if key not in g:
                    g.add_node(key, kind="frames", owner=s.owner if s else "unowned",
                               domain=s.domain if s else "host", hpa=x.pa, size=x.size,
                               label=f"frames {x.pa:#x}\n+{size_name(x.size)} {x.rights}")
                for e in ex:
                    if x.pa <= e.pa < x.pa + x.size:
                        g.add_edge(e.entry & ~0xFFF, key, label=e.rights, entry=e.entry)
    return g


def finding_edge(g, finding):
    """The edge of a structure graph that carries a finding's cause (the
    pointer written in the entry it blames), or None: for drawing the audit
    with the culprit highlighted."""
    edges = [(u, v) for u, v, d in g.edges(data=True) if d.get("entry") == finding.entry]
    # A nested entry points at two roots; the second stage decides the reach.
    edges.sort(key=lambda e: g.nodes[e[1]].get("domain") == finding.domain)
    return edges[0] if edges else None


def mapping_graph(built) -> nx.DiGraph:
    """GVA ranges -> GPA ranges -> HPA ranges, per PASID (device and PASID)
    and per VM, merged into ranges. Nodes are ``("gva", "00:02.0 PASID 5",
    start, size)``, ``("gpa", vm, start, size)`` and ``("hpa", start,
    size)`` with ``label`` and ``owner``; edges carry ``rights``."""
    g = nx.DiGraph()
    sym = built.symbols
    vm_of = {pt.root: vm for vm, pt in built.second.items()}
    for cfg in built.adapter.contexts():
        ctx = _ctx_name(cfg)
        if cfg.kind == "first":
            for x in merge(leaves(built.mem, cfg.first_root, cfg.first_fmt, cfg.first_levels)):
                a = ("gva", ctx, x.va, x.size)
                b = ("hpa", x.pa, x.size)
                g.add_node(a, label=f"{ctx}\nVA {x.va:#x} +{x.size:#x}", owner=ctx)
                g.add_node(b, label=f"HPA {x.pa:#x}\n+{x.size:#x}", owner=sym.domain(x.pa))
                g.add_edge(a, b, rights=x.rights)
        elif cfg.kind in ("second", "nested"):
            vm = vm_of.get(cfg.second_root, f"sl@{cfg.second_root:#x}")
            second = leaves(built.mem, cfg.second_root, cfg.second_fmt, cfg.second_levels)
            for x in merge(second):
                a = ("gpa", vm, x.va, x.size)
                b = ("hpa", x.pa, x.size)
                g.add_node(a, label=f"{vm} GPA {x.va:#x}\n+{x.size:#x}", owner=vm)
                g.add_node(b, label=f"HPA {x.pa:#x}\n+{x.size:#x}", owner=sym.domain(x.pa))
                g.add_edge(a, b, rights=x.rights)
            if cfg.kind == "nested":
                first = merge(leaves(built.mem, cfg.first_root, cfg.first_fmt, cfg.first_levels,
                                     to_host=_to_host_fn(second)))
                # A GVA range goes to the GPA range (of the merged second
                # stage) that holds it.
                sec_nodes = [n for n in g if n[0] == "gpa" and n[1] == vm]
                for gva, gpa, _hpa, size, rights, _e1, _e2 in merge_pieces(compose(first, second)):
                    a = ("gva", ctx, gva, size)
                    g.add_node(a, label=f"{ctx}\nGVA {gva:#x} +{size:#x}", owner=ctx)
                    for n in sec_nodes:
                        if n[2] <= gpa < n[2] + n[3]:
                            g.add_edge(a, n, rights=rights, gpa=gpa)
    return g
