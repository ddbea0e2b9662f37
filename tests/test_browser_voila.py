"""Real-browser test of the walk stepper as a Voila app (notebooks/apps/walk-stepper.ipynb).

Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import pytest

from test_browser_lab import lit_cell, press_step_and_check

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]


def test_walk_stepper_steps_under_voila(page, voila_server, artifacts):
    page.goto(voila_server.url("/voila/render/apps/walk-stepper.ipynb"),
              wait_until="domcontentloaded")
    box = page.locator(".svmkit").first
    box.wait_for(timeout=180_000)
    page.wait_for_selector(".svmkit .svmkit-count", timeout=60_000)
    page.screenshot(path=str(artifacts / "voila-stepper-start.png"), full_page=True)
    assert lit_cell(box) is None
    seen = press_step_and_check(page, box, artifacts, "voila-stepper", presses=5)
    assert seen[-1][1] == "5"
    # A bad address gives a message in the widget, not a traceback.
    address = box.locator(".widget-text input").first
    address.fill("0xnot-hex")
    address.press("Enter")
    page.wait_for_selector(".svmkit .svmkit-msg-error", timeout=15_000)
    assert "not a hex number" in box.locator(".svmkit-message").inner_text()
    page.screenshot(path=str(artifacts / "voila-stepper-end.png"), full_page=True)
    body = page.locator("body").inner_text()
    assert "Traceback" not in body


def test_walk_stepper_shows_the_iommu_lookups_under_voila(page, voila_server, artifacts):
    pytest.importorskip("svmkit.scenario", reason="svmkit.scenario is not in the kit yet")
    page.goto(voila_server.url("/voila/render/apps/walk-stepper.ipynb"),
              wait_until="domcontentloaded")
    box = page.locator(".svmkit").first
    page.wait_for_selector(".svmkit .svmkit-count", timeout=180_000)
    setup = box.locator(".widget-dropdown select").first
    setup.select_option(label="Scenario: nested-vtd")
    page.wait_for_function(
        "el => /of \\d+ references/.test(el.querySelector('.svmkit-count')?.textContent)"
        " && el.querySelector('.svmkit-grid')?.textContent.includes('root-entry')",
        arg=box.element_handle(), timeout=30_000)
    # The stepper starts on the device's first bound PASID: its walk begins with the
    # root, context, PASID-directory and PASID entries.
    seen = press_step_and_check(page, box, artifacts, "voila-vtd", presses=4)
    assert seen[-1][1] == "4"
    assert "pasid-entry" in box.locator(".svmkit-entry").inner_text()
    page.screenshot(path=str(artifacts / "voila-vtd-after-steps.png"), full_page=True)
