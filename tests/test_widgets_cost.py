"""The cost explorer's figures are measured walks, and agree with the closed form."""

from __future__ import annotations

import re

import pytest

from svmkit.widgets import CostExplorer
from svmkit.widgets.cost import SIZES, cost_table, formula, measure


def test_every_measured_walk_matches_the_closed_form():
    table = cost_table()
    assert len(table) == 2 * (3 * 9 + 3)
    for c in table:
        assert c.refs == c.formula, c


@pytest.mark.parametrize("n,m,refs", [(4, 4, 24), (5, 5, 35), (4, 0, 4), (5, 0, 5)])
def test_literature_figures(n, m, refs):
    assert measure(n, m).refs == refs == formula(n, m)


def test_explorer_lights_the_chosen_bar_and_reports_its_count():
    x = CostExplorer()
    assert "data-refs='24'" in x.summary.value
    x.page.value = "2 MiB"
    x.second_page.value = "1 GiB"
    lit = re.findall(r"data-refs='(\d+)' data-highlight='1'", x.plot.value)
    assert lit == [str(measure(4, 4, SIZES["2 MiB"], SIZES["1 GiB"]).refs)] == ["11"]
    x.second_levels.value = 0
    assert x.second_page.disabled and "data-refs='3'" in x.summary.value
    assert "data-literature='24'" in x.plot.value and "data-literature='35'" in x.plot.value


def test_measure_rejects_other_page_sizes():
    with pytest.raises(ValueError, match="page and second_page"):
        measure(4, 4, 8192)


def test_bigger_caches_never_cost_more_references():
    pytest.importorskip("svmkit.scenario", reason="svmkit.scenario is not in the kit yet")
    from svmkit.widgets.cost import cache_cost, dma_stream
    off = len(dma_stream().build(caches="off").translate("00:02.0", 0x4000_0000,
                                                          pasid=5).refs)
    small = [cache_cost(n, 1, pages=64, dmas=200) for n in (1, 64)]
    big_psc = [cache_cost(n, 32, pages=64, dmas=200) for n in (1, 64)]
    assert off > small[0] >= small[1] and small[0] > big_psc[0]
    assert big_psc[1] < 1.5            # 64 entries hold the whole working set
    x = CostExplorer()
    x.pages.value = 16
    points = x.measure_caches()
    assert [p for p, _ in points] == list(x.IOTLB_SIZES)
    assert f"caches off: {off}" in x.cache_plot.value and x.message.value == ""
