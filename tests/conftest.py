"""Shared fixtures: a JupyterLab server, a Voila server and headless Chromium.

The browser is Debian's chromium at /usr/bin/chromium, driven by Playwright through
``executable_path`` (Playwright's own browser download does not work on these
machines). Without it the browser tests skip with a message, except under CI
(``CI=true``), where a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "tests" / "artifacts"
# Debian's chromium; SVMKIT_CHROMIUM names another build of it (never a download).
CHROMIUM = os.environ.get("SVMKIT_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
# Headless as root, and without the background traffic that hangs on hosts we cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]
SERVER_START_TIMEOUT = 120.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running server: ``url(path)`` gives an address with the token attached."""

    base: str
    token: str
    proc: subprocess.Popen
    log: Path

    def url(self, path: str = "/") -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}{path}{sep}token={self.token}"

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


@pytest.fixture(scope="session")
def served_root(tmp_path_factory) -> Path:
    """A copy of notebooks/ for the servers, so that a browser session (autosave,
    outputs) never writes into the repository's notebooks. Kernels still import the
    working tree's svmkit through the editable install."""
    root = tmp_path_factory.mktemp("served")
    shutil.copytree(NOTEBOOKS, root / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = root / "lab-settings"
    for plugin, values in {
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
        # Every cell in the DOM, so that a test can see all prompts and outputs.
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                        "checkForUpdates": False},
    }.items():
        f = settings / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    return root


def _start(argv: list[str], name: str, status_path: str) -> Server:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    token = secrets.token_hex(16)
    argv = [a.format(port=port, token=token) for a in argv]
    log = ARTIFACTS / f"{name}.log"
    fh = open(log, "w")
    env = dict(os.environ, JUPYTER_PLATFORM_DIRS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=env)
    server = Server(f"http://127.0.0.1:{port}", token, proc, log)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url(status_path), timeout=5) as r:
                if r.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if time.monotonic() > deadline:
            _stop(server)
            raise RuntimeError(f"{name} did not answer in {SERVER_START_TIMEOUT} s:\n"
                               f"{server.log_tail()}")
        time.sleep(0.5)


def _stop(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


def _root_flag() -> list[str]:
    return ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []


@pytest.fixture(scope="session")
def jupyter_lab(served_root):
    """JupyterLab on 127.0.0.1, a free port and a random token, on a copy of notebooks/."""
    server = _start(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
         "--port={port}", "--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={served_root}", "--ServerApp.open_browser=False",
         f"--LabApp.user_settings_dir={served_root / 'lab-settings'}",
         f"--LabApp.workspaces_dir={served_root / 'lab-workspaces'}",
         "--LabApp.news_url=", *_root_flag()],
        "jupyterlab", "/api/status")
    yield server
    _stop(server)


@pytest.fixture(scope="session")
def notebook7(served_root):
    """Jupyter Notebook 7 on 127.0.0.1, a free port and a random token."""
    pytest.importorskip("notebook", reason="Jupyter Notebook 7 (package notebook) is not "
                                           "installed")
    server = _start(
        [sys.executable, "-m", "jupyter", "notebook", "--no-browser", "--ip=127.0.0.1",
         "--port={port}", "--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={served_root}", "--ServerApp.open_browser=False",
         f"--LabApp.user_settings_dir={served_root / 'lab-settings'}",
         f"--JupyterNotebookApp.user_settings_dir={served_root / 'lab-settings'}",
         *_root_flag()],
        "notebook7", "/api/status")
    yield server
    _stop(server)


@pytest.fixture(scope="session")
def voila_server(served_root):
    """Voila on 127.0.0.1, a free port and a random token, serving a copy of notebooks/."""
    server = _start(
        [sys.executable, "-m", "voila", "--no-browser", "--Voila.ip=127.0.0.1",
         "--port={port}", "--token={token}", f"--Voila.root_dir={served_root / 'notebooks'}",
         "--VoilaConfiguration.show_tracebacks=False"],
        "voila", "/")
    yield server
    _stop(server)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        msg = (f"{CHROMIUM} not found: install Debian's chromium "
               "(`apt-get install -y chromium`, or run `make test` as root)")
        if IN_CI:
            pytest.fail(f"CI=true and {msg}", pytrace=False)
        pytest.skip(msg)
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium_path):
    """Headless Chromium via Playwright. Module-scoped so that Playwright's event loop
    is gone before other modules (nbclient) run their own."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, headless=True,
                              args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A fresh page at projector-like size; console errors are collected on it."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.console_errors = []
    pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
    yield pg
    ctx.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
