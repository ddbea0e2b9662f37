"""The cost explorer: memory references per translation against levels, page sizes and
(with an IOMMU model's caches) cache sizes.

Every number plotted is measured: a page table of the chosen shape is built in a fresh
``Memory`` and walked with :func:`svmkit.walk`. The closed form for a nested walk of *n*
guest levels over *m* host levels is n(m+1)+m (Bhargava et al., ASPLOS 2008: 24 for 4+4;
35 for 5+5 with 5-level paging); a large page at either stage removes levels from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from html import escape

import ipywidgets as W

import svmkit
from svmkit.memory import FrameAllocator, Memory
from svmkit.pagetable import GuestMemory, PageTable

from ._common import Base, guarded

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
SIZES = {"4 KiB": 4 * KiB, "2 MiB": 2 * MiB, "1 GiB": 1 * GiB}
#: The figures from the literature the plot marks: (guest levels, host levels) -> refs.
HL = " data-highlight='1'"
STRIDE = 2 * MiB          # between the pages of the cache workload
LITERATURE = {(4, 4): ("24: 4+4 (Bhargava et al. 2008)", 24),
              (5, 5): ("35: 5+5 (5-level paging)", 35)}


@dataclass(frozen=True)
class Cost:
    """One measured configuration: ``refs`` from the walker, ``formula`` from the
    closed form."""

    levels: int
    second_levels: int          # 0: no second stage
    page: int
    second_page: int
    refs: int
    formula: int


def formula(levels, second_levels, page=4 * KiB, second_page=4 * KiB) -> int:
    """References of a walk that ends in a page of ``page`` bytes, over a second stage
    whose pages are ``second_page`` bytes: each level a large page covers is not walked."""
    n = levels - _skip(page)
    if not second_levels:
        return n
    m = second_levels - _skip(second_page)
    return n * (m + 1) + m


def _skip(size):
    return {4 * KiB: 0, 2 * MiB: 1, 1 * GiB: 2}[size]


@lru_cache(maxsize=None)
def measure(levels, second_levels=0, page=4 * KiB, second_page=4 * KiB) -> Cost:
    """Build the tables for one configuration and count the walk's references."""
    if page not in SIZES.values() or second_page not in SIZES.values():
        raise ValueError("page and second_page must be 4 KiB, 2 MiB or 1 GiB; "
                         f"got {page:#x}, {second_page:#x}")
    mem = Memory(16 * GiB)
    host = FrameAllocator(mem, 1 * MiB, 256 * MiB)
    va = 0x7F00_0000_0000 if levels == 4 else 0x00F0_0000_0000_0000
    if not second_levels:
        pt = PageTable(mem, host.alloc, fmt="x86_64", levels=levels)
        pt.map(va, 4 * GiB, page)
        w = svmkit.walk(mem, va, root=pt.root, levels=levels)
    else:
        sl = PageTable(mem, host.alloc, fmt="vtd_sl", levels=second_levels)
        # guest RAM at HPA 4 GiB (1 GiB aligned), mapped with second-level pages of second_page
        guest = GuestMemory(mem, host, sl.root, sl.fmt, sl.d, gpa_base=1 * MiB,
                            page_size=second_page, host_base=4 * GiB)
        gpt = PageTable(mem, guest.alloc, fmt="x86_64", levels=levels, to_host=guest.to_host)
        gpt.map(va, 1 * GiB, page)
        guest.back(1 * GiB)
        w = svmkit.walk(mem, va, root=gpt.root, levels=levels, second_root=sl.root,
                        second_levels=second_levels)
    if not w.ok:  # pragma: no cover - the tables above always map va
        raise RuntimeError(f"cost walk faulted: {w.fault}")
    return Cost(levels, second_levels, page, second_page, len(w.refs),
                formula(levels, second_levels, page, second_page))


def plot_svg(levels, second_levels, page, second_page) -> str:
    """Bars of references for every page-size pair at these levels, the chosen one lit,
    the literature's figures marked as dashed lines. SVG text (drawn directly: a
    plotting library takes most of a second per picture, too slow to follow a click)."""
    names = list(SIZES)
    seconds = names if second_levels else ["4 KiB"]
    bars = []
    for g in names:
        for h in seconds:
            c = measure(levels, second_levels, SIZES[g], SIZES[h])
            lit = SIZES[g] == page and (not second_levels or SIZES[h] == second_page)
            bars.append((f"guest {g}", f"host {h}" if second_levels else "", c.refs, lit))
    width, height, left, top, bottom = 1100, 420, 70, 50, 70
    ymax = 40
    plot_h = height - top - bottom
    bw = (width - left - 20) / len(bars)

    def y(v):
        return top + plot_h * (1 - v / ymax)

    stage = (f"{levels}-level guest over {second_levels}-level host" if second_levels
             else f"{levels}-level walk, no second stage")
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
           f"viewBox='0 0 {width} {height}' font-family='DejaVu Sans, sans-serif'>",
           f"<text x='{left}' y='28' font-size='18' font-weight='bold'>References per "
           f"translation: {escape(stage)} (no caches)</text>"]
    for v in range(0, ymax + 1, 5):
        out.append(f"<line x1='{left}' x2='{width - 20}' y1='{y(v):.1f}' y2='{y(v):.1f}' "
                   "stroke='#e5e7eb'/>"
                   f"<text x='{left - 8}' y='{y(v) + 5:.1f}' font-size='13' "
                   f"text-anchor='end'>{v}</text>")
    for i, (g, h, refs, lit) in enumerate(bars):
        x = left + i * bw + bw * 0.15
        fill = "#f97316" if lit else "#60a5fa"
        out.append(f"<g data-bar='{i}' data-refs='{refs}'{HL if lit else ''}>"
                   f"<rect x='{x:.1f}' y='{y(refs):.1f}' width='{bw * 0.7:.1f}' "
                   f"height='{y(0) - y(refs):.1f}' fill='{fill}' stroke='#1f2937'/>"
                   f"<text x='{x + bw * 0.35:.1f}' y='{y(refs) - 6:.1f}' font-size='16' "
                   f"font-weight='bold' text-anchor='middle'>{refs}</text>"
                   f"<text x='{x + bw * 0.35:.1f}' y='{y(0) + 20:.1f}' font-size='13' "
                   f"text-anchor='middle'>{escape(g)}</text>"
                   f"<text x='{x + bw * 0.35:.1f}' y='{y(0) + 38:.1f}' font-size='13' "
                   f"text-anchor='middle'>{escape(h)}</text></g>")
    for (n, m), (text, refs) in LITERATURE.items():
        mine = (n, m) == (levels, second_levels)
        color = "#dc2626" if mine else "#9ca3af"
        out.append(f"<line x1='{left}' x2='{width - 20}' y1='{y(refs):.1f}' "
                   f"y2='{y(refs):.1f}' stroke='{color}' stroke-width='2' "
                   f"stroke-dasharray='8 5' data-literature='{refs}'/>"
                   f"<text x='{width - 24}' y='{y(refs) - 6:.1f}' font-size='14' "
                   f"text-anchor='end' fill='{color}'>{escape(text)}</text>")
    out.append(f"<text x='18' y='{top + plot_h / 2:.1f}' font-size='14' "
               f"transform='rotate(-90 18 {top + plot_h / 2:.1f})' text-anchor='middle'>"
               "memory references</text></svg>")
    return "".join(out)


def dma_stream(model="vtd"):
    """The workload of the cache experiments: a VM's process with 256 pages of 4 KiB, one
    every 2 MiB from GVA 0x40000000 (so each has its own page table and the
    paging-structure caches matter), bound nested at PASID 5 to device 00:02.0 (a
    svmkit.scenario Scenario)."""
    from svmkit.scenario import Scenario
    s = Scenario("dma-stream", model=model, memory=1 << 30)
    s.vm("vm1", ram=256 << 20, second_levels=4)
    app = s.process("app", vm="vm1")
    for i in range(256):
        app.map(0x4000_0000 + i * STRIDE, 4096, "rw", page_size=4096)
    s.device("00:02.0", name="accel", vm="vm1")
    s.bind("vm1/app", "00:02.0", pasid=5)
    return s


def cache_cost(iotlb_entries, psc_entries, *, pages=128, dmas=400, seed=1) -> float:
    """Mean memory references per DMA for ``dmas`` random reads over ``pages`` 4 KiB
    pages through a VT-d IOMMU (nested) with a fully associative IOTLB of
    ``iotlb_entries`` and paging-structure caches of ``psc_entries`` (VT-d 6.2)."""
    import random

    from svmkit.vtd import CacheConfig
    if not 1 <= pages <= 256:
        raise ValueError(f"pages={pages}; allowed: 1 to 256")
    b = dma_stream().build(caches=CacheConfig(iotlb_sets=1, iotlb_ways=int(iotlb_entries),
                                              psc_entries=int(psc_entries)))
    rng = random.Random(seed)
    total = 0
    for _ in range(dmas):
        w = b.translate("00:02.0", 0x4000_0000 + STRIDE * rng.randrange(pages), pasid=5)
        total += len(w.refs)
    return total / dmas


def cache_plot_svg(points, title) -> str:
    """A line of (IOTLB entries, mean references) points, on a log2 x axis."""
    width, height, left, top, bottom = 1100, 360, 70, 50, 60
    ymax = max(5.0, max(v for _, v in points) * 1.15)
    xs = [x for x, _ in points]
    lo, hi = min(xs).bit_length(), max(xs).bit_length()
    span = max(1, hi - lo)

    def px(x):
        return left + (width - left - 40) * (x.bit_length() - lo) / span

    def py(v):
        return top + (height - top - bottom) * (1 - v / ymax)

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
           f"viewBox='0 0 {width} {height}' font-family='DejaVu Sans, sans-serif'>",
           f"<text x='{left}' y='28' font-size='18' font-weight='bold'>{escape(title)}</text>"]
    path = " ".join(f"{'M' if i == 0 else 'L'}{px(x):.1f},{py(v):.1f}"
                    for i, (x, v) in enumerate(points))
    out.append(f"<path d='{path}' fill='none' stroke='#2563eb' stroke-width='3'/>")
    for x, v in points:
        out.append(f"<g data-iotlb='{x}' data-refs='{v:.2f}'><circle cx='{px(x):.1f}' "
                   f"cy='{py(v):.1f}' r='6' fill='#f97316'/><text x='{px(x):.1f}' "
                   f"y='{py(v) - 12:.1f}' font-size='15' text-anchor='middle'>{v:.2f}</text>"
                   f"<text x='{px(x):.1f}' y='{height - bottom + 22}' font-size='14' "
                   f"text-anchor='middle'>{x}</text></g>")
    out.append(f"<text x='{(width + left) / 2:.0f}' y='{height - 12}' font-size='14' "
               "text-anchor='middle'>IOTLB entries</text>"
               f"<text x='18' y='{height / 2:.0f}' font-size='14' text-anchor='middle' "
               f"transform='rotate(-90 18 {height / 2:.0f})'>references per DMA</text></svg>")
    return "".join(out)


class CostExplorer(Base):
    """Choose levels and page sizes; see the measured references per translation against
    every page-size pair, with 24 (4+4) and 35 (5+5) marked."""

    def __init__(self, levels=4, second_levels=4, page="4 KiB", second_page="4 KiB"):
        self.levels = W.ToggleButtons(options=[4, 5], value=levels,
                                      description="Guest levels")
        self.second_levels = W.ToggleButtons(options=[("none", 0), ("3", 3), ("4", 4),
                                                      ("5", 5)],
                                             value=second_levels, description="Host levels")
        self.page = W.ToggleButtons(options=list(SIZES), value=page, description="Guest page")
        self.second_page = W.ToggleButtons(options=list(SIZES), value=second_page,
                                           description="Host page")
        self.summary = W.HTML()
        self.summary.add_class("svmkit-counter")
        self.plot = W.HTML()
        self.plot.add_class("svmkit-svg")
        for w in (self.levels, self.second_levels, self.page, self.second_page):
            w.style.button_width = "90px"
            w.observe(lambda ch: self.update(), "value")
        self.psc = W.IntSlider(value=8, min=1, max=64, description="PSC entries",
                               continuous_update=False)
        self.pages = W.IntSlider(value=128, min=8, max=256, step=8,
                                 description="Pages touched", continuous_update=False)
        self.run_b = W.Button(description="Measure with caches", icon="tachometer",
                              button_style="primary", layout=W.Layout(width="auto"))
        self.cache_plot = W.HTML()
        self.cache_plot.add_class("svmkit-svg")
        self.cache_plot.add_class("svmkit-cache-plot")
        self.run_b.on_click(lambda b: self.measure_caches())
        super().__init__([self.levels, self.second_levels, self.page, self.second_page,
                          self.summary, self.plot,
                          W.HTML("<b>With caches</b>: a VT-d IOMMU, nested 4+4, random DMA "
                                 "reads (press Measure: about a second)"),
                          W.HBox([self.psc, self.pages, self.run_b]), self.cache_plot])
        self.update()

    @guarded
    def update(self):
        n, m = self.levels.value, self.second_levels.value
        self.second_page.disabled = not m
        c = measure(n, m, SIZES[self.page.value], SIZES[self.second_page.value])
        what = f"{n}+{m}" if m else f"{n} levels"
        self.summary.value = (
            f"<span class='svmkit-cost' data-refs='{c.refs}'>{escape(what)}: "
            f"{c.refs} references per translation</span> "
            f"<small>(closed form {c.formula})</small>")
        self.plot.value = plot_svg(n, m, c.page, c.second_page)
        self.show_message()
        return c


    IOTLB_SIZES = (1, 4, 16, 64, 256)

    @guarded
    def measure_caches(self):
        """Mean references per DMA against IOTLB size, for the chosen PSC size and
        working set; returns the (entries, mean) points."""
        points = [(n, cache_cost(n, self.psc.value, pages=self.pages.value))
                  for n in self.IOTLB_SIZES]
        off = len(dma_stream().build(caches="off").translate(
            "00:02.0", 0x4000_0000, pasid=5).refs)
        self.cache_plot.value = cache_plot_svg(
            points, f"References per DMA: {self.pages.value} pages touched, "
                    f"paging-structure caches of {self.psc.value} (caches off: {off})")
        self.show_message()
        return points


def cost_table():
    """Every configuration measured: a list of :class:`Cost` (for notebooks)."""
    out = []
    for n in (4, 5):
        for m in (0, 3, 4, 5):
            for g in SIZES.values():
                for h in (SIZES.values() if m else [4 * KiB]):
                    out.append(measure(n, m, g, h))
    return out


__all__ = ["Cost", "CostExplorer", "cost_table", "formula", "measure"]
