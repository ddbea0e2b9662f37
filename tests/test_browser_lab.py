"""Real-browser tests in JupyterLab: open a notebook, run all cells, drive the widgets.

Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]


def open_and_run_all(page, server, notebook: str, artifacts, shot: str):
    """Open ``notebook`` in JupyterLab, Run All Cells, wait until every code cell ran."""
    page.goto(server.url(f"/lab/tree/notebooks/{notebook}"), wait_until="domcontentloaded")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
    # The kernel must be idle before Run All, or the request is lost during startup.
    page.wait_for_selector(".jp-StatusBar-TextItem:has-text('| Idle')", timeout=90_000)
    no_news = page.locator(".jp-toast-button:has-text('No')")
    if no_news.count():
        no_news.first.click()
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    # Every code cell shows an execution number once run ("[ ]" and "[*]" until then).
    page.wait_for_function(
        r"""() => {
            const p = [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell'
                                                    + ' .jp-InputPrompt')];
            return p.length > 0 && p.every(e => /\[\d+\]/.test(e.textContent));
        }""", timeout=240_000)
    page.screenshot(path=str(artifacts / f"{shot}-ran.png"))


def assert_no_error_output(page):
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                          ", .jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
    texts = [errors.nth(i).inner_text() for i in range(errors.count())]
    tracebacks = [t for t in texts if "Traceback" in t or "Error" in t]
    assert not tracebacks, "error output in the notebook:\n" + "\n---\n".join(tracebacks)
    body = page.locator(".jp-NotebookPanel").inner_text()
    assert "Traceback (most recent call last)" not in body


def test_start_here_runs_in_jupyterlab(page, jupyter_lab, artifacts):
    open_and_run_all(page, jupyter_lab, "00-start-here.ipynb", artifacts, "lab-00")
    assert_no_error_output(page)
    outputs = page.locator(".jp-NotebookPanel .jp-OutputArea-output").all_inner_texts()
    assert any("svmkit is importable" in t for t in outputs), outputs
