"""python -m svmkit.warm (Binder's postBuild) compiles everything it names, without error."""

import subprocess
import sys
from pathlib import Path


def test_warm_runs_every_example_scenario():
    out = subprocess.run([sys.executable, "-m", "svmkit.warm"], capture_output=True,
                         text=True, cwd=Path(__file__).resolve().parents[1], timeout=900)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    from svmkit.scenario import examples
    assert lines[0].startswith("svmkit.warm: walkers compiled")
    assert [line.split()[1] for line in lines[1:]] == list(examples())
