"""The installed package is the source tree: every package folder is listed in pyproject,
and the model imports no Jupyter package."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_installed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "svmkit").rglob("__init__.py")}
    assert found | {"svmkit.widgets"} == listed


def test_import_svmkit_pulls_in_no_jupyter_package():
    code = ("import sys, svmkit, svmkit.vtd, svmkit.smmuv3, svmkit.amdvi, svmkit.scenario, "
            "svmkit.graphs, svmkit.render, svmkit.cli; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('ipywidgets', 'IPython', 'jupyter_core', 'ipykernel', 'matplotlib', 'traitlets')]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""
