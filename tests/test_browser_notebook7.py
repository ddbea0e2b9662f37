"""The walk stepper in Jupyter Notebook 7 (real browser): run the app notebook, Step."""

from __future__ import annotations

import pytest

from test_browser_lab import press_step_and_check

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]


def test_walk_stepper_steps_in_notebook7(page, notebook7, artifacts):
    page.goto(notebook7.url("/notebooks/notebooks/apps/walk-stepper.ipynb"),
              wait_until="domcontentloaded")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
    try:
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                               timeout=90_000)
    finally:
        page.screenshot(path=str(artifacts / "nb7-opened.png"))
    box = page.locator(".svmkit").first
    # On a cold start the first Run All can come before the kernel is connected and be
    # lost; ask again rather than wait forever.
    for attempt in range(3):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            box.wait_for(timeout=40_000)
            break
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; retried
            page.screenshot(path=str(artifacts / f"nb7-run-attempt{attempt + 1}.png"))
    else:
        pytest.fail("the walk stepper never appeared in Notebook 7 after three Run All")
    page.wait_for_selector(".svmkit .svmkit-count", timeout=60_000)
    seen = press_step_and_check(page, box, artifacts, "nb7-stepper", presses=3)
    assert seen[-1][1] == "3"
    assert page.locator("[data-mime-type='application/vnd.jupyter.error']").count() == 0
    page.screenshot(path=str(artifacts / "nb7-stepper.png"))
