"""Real-browser tests in JupyterLab: open a notebook, run all cells, drive the widgets.

Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]
#: The notebook on show (other panels may exist, hidden).
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def open_and_run_all(page, server, notebook: str, artifacts, shot: str):
    """Open ``notebook`` in JupyterLab, Run All Cells, wait until every code cell ran."""
    # ?reset: a fresh workspace, so no notebook of an earlier test reopens beside it.
    page.goto(server.url(f"/lab/tree/notebooks/{notebook}?reset"),
              wait_until="domcontentloaded")
    page.wait_for_selector(f"{PANEL} .jp-Cell", timeout=90_000)
    # The kernel must be idle before Run All, or the request is lost during startup.
    page.wait_for_selector(".jp-StatusBar-TextItem:has-text('| Idle')", timeout=90_000)
    no_news = page.locator(".jp-toast-button:has-text('No')")
    if no_news.count():
        no_news.first.click()
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    # Every code cell shows an execution number once run ("[ ]" and "[*]" until then).
    try:
        page.wait_for_function(
        r"""() => {
            const p = [...document.querySelectorAll(
                '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')];
            return p.length > 0 && p.every(e => /\[\d+\]/.test(e.textContent));
        }""", timeout=120_000)
    finally:
        page.screenshot(path=str(artifacts / f"{shot}-ran.png"))


def assert_no_error_output(page):
    """No error output in the notebook, no traceback on stderr or anywhere in the page."""
    errors = page.locator(f"{PANEL} [data-mime-type='application/vnd.jupyter.error']")
    assert errors.count() == 0, "error output:\n" + "\n---\n".join(errors.all_inner_texts())
    stderr = page.locator(f"{PANEL} [data-mime-type='application/vnd.jupyter.stderr']")
    bad = [t for t in stderr.all_inner_texts() if "Traceback" in t or "Error" in t]
    assert not bad, "errors on stderr:\n" + "\n---\n".join(bad)
    assert "Traceback (most recent call last)" not in page.locator(PANEL).inner_text()


NOTEBOOKS = sorted(p.name for p in (Path(__file__).resolve().parents[1] / "notebooks")
                   .glob("*.ipynb"))


@pytest.mark.parametrize("name", [n for n in NOTEBOOKS if not n.startswith("03")])
def test_notebook_runs_in_jupyterlab_and_its_widgets_render(page, jupyter_lab, artifacts,
                                                            name):
    open_and_run_all(page, jupyter_lab, name, artifacts, f"lab-{name[:2]}")
    assert_no_error_output(page)
    # Every widget view rendered (a failed one shows "Error displaying widget").
    panel = page.locator(PANEL)
    assert "Error displaying widget" not in panel.inner_text()
    boxes = panel.locator(".svmkit")
    assert boxes.count() >= 1, f"{name} shows no svmkit widget"
    boxes.first.scroll_into_view_if_needed()
    boxes.first.screenshot(path=str(artifacts / f"lab-{name[:2]}-widget.png"))


def lit_cell(box):
    """The ref number of the lit grid cell in stepper ``box`` (None when none is lit)."""
    lit = box.locator(".svmkit-grid [data-highlight='1']")
    return lit.first.get_attribute("data-ref") if lit.count() else None


def count(box):
    return box.locator(".svmkit-count").first.get_attribute("data-count")


STEP_AND_TIME = """async ([button, box]) => {
    const counter = box.querySelector('.svmkit-counter');
    const t0 = performance.now();
    const changed = new Promise(resolve => {
        const obs = new MutationObserver(() => { obs.disconnect(); resolve(); });
        obs.observe(counter, {subtree: true, childList: true, characterData: true,
                              attributes: true});
    });
    button.click();
    await changed;
    await new Promise(r => requestAnimationFrame(() => r()));
    return performance.now() - t0;
}"""


def press_step_and_check(page, box, artifacts, shot, presses=4):
    """Press Step ``presses`` times; after each the lit cell and the counter must move."""
    step = box.locator("button.jupyter-button", has_text="Step").first
    seen = [(lit_cell(box), count(box))]
    took = []
    for i in range(presses):
        before = seen[-1]
        # Clicked in the page, timed until the counter's DOM changes: the latency a user
        # sees, without the test driver's own overhead.
        took.append(page.evaluate(STEP_AND_TIME, [step.element_handle(),
                                                  box.element_handle()]))
        # The counter moves, and the lit cell is the reference it counts.
        page.wait_for_function(
            """([el, c]) => {
                const n = el.querySelector('.svmkit-count')?.dataset.count;
                const lit = el.querySelector(".svmkit-grid [data-highlight='1']");
                return n !== c && lit && lit.dataset.ref === n;
            }""", arg=[box.element_handle(), before[1]], timeout=15_000)
        seen.append((lit_cell(box), count(box)))
        if i == 1:
            box.screenshot(path=str(artifacts / f"{shot}-step{i + 1}.png"))
    # Click to repainted counter and cell, as the browser sees it (a figure, not a goal).
    with open(artifacts / "step-latency.txt", "a") as f:
        f.write(f"{shot}: " + " ".join(f"{ms:.0f}" for ms in took) + " ms\n")
    counts = [int(c) for _, c in seen]
    assert counts == list(range(counts[0], counts[0] + presses + 1)), seen
    cells = [c for c, _ in seen[1:]]
    assert all(c is not None for c in cells), seen
    assert len(set(cells)) == presses, f"the lit cell did not move on every Step: {seen}"
    return seen


def test_nested_walk_notebook_steps_in_jupyterlab(page, jupyter_lab, artifacts):
    open_and_run_all(page, jupyter_lab, "03-nested-2d-walk.ipynb", artifacts, "lab-03")
    assert_no_error_output(page)
    box = page.locator(f"{PANEL} .svmkit").first
    box.scroll_into_view_if_needed()
    seen = press_step_and_check(page, box, artifacts, "lab-03")
    assert seen[-1][1] == "4"
    assert_no_error_output(page)
    page.screenshot(path=str(artifacts / "lab-03-after-steps.png"), full_page=True)
