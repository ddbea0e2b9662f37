"""The svmkit command line: outputs, one-line errors with exit 2, help."""

import json
import xml.etree.ElementTree as ET

import pytest

from svmkit import cli

try:
    import svmkit.vtd  # noqa: F401
    HAVE_VTD = True
except ImportError:
    HAVE_VTD = False
needs_vtd = pytest.mark.skipif(not HAVE_VTD, reason="builds through svmkit.vtd")


def run(capsys, *argv):
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def mail_safe(s):
    return all(len(l) <= 72 and l.isascii() for l in s.splitlines())


@needs_vtd
def test_walk_text_json_svg(capsys, tmp_path):
    rc, out, err = run(capsys, "walk", "nested-vtd", "--device", "00:02.0", "--pasid", "5",
                       "--address", "0x600010")
    assert rc == 0 and mail_safe(out)
    assert "via GPA" in out and "VM vm1 process 'app' PML4 table" in out
    rc, out, _ = run(capsys, "walk", "nested-vtd", "--device", "accel", "--pasid", "5",
                     "--address", "0x600010", "--format", "json")
    d = json.loads(out)
    assert rc == 0 and d["schema"] == "svmkit-walk/1" and d["ok"]
    assert d["context"]["device"] == "00:02.0" and d["context"]["pasid"] == 5
    f = tmp_path / "w.svg"
    rc, out, _ = run(capsys, "walk", "nested-vtd", "--device", "00:02.0", "--pasid", "5",
                     "--address", "0x600010", "--format", "svg", "--highlight", "8",
                     "-o", str(f))
    assert rc == 0 and out == ""
    root = ET.fromstring(f.read_text())
    assert any(g.get("data-highlight") for g in root.iter("{http://www.w3.org/2000/svg}g"))


@needs_vtd
def test_steps_change_the_walk(capsys):
    args = ["walk", "userspace-driver-2017", "--device", "01:00.0", "--pasid", "1",
            "--address", "0x10000000"]
    assert "HPA" in run(capsys, *args)[1]
    rc, out, _ = run(capsys, *args, "--step", "1")
    assert rc == 0 and "not-present" in out
    rc, out, _ = run(capsys, *args, "--step", "all")
    assert rc == 0 and "pasid-entry" in out and "fault" in out


@needs_vtd
def test_audit_exit_status(capsys):
    rc, out, _ = run(capsys, "audit", "broken-isolation")
    assert rc == 1 and "reaches vm2 memory" in out and mail_safe(out)
    rc, out, _ = run(capsys, "audit", "two-vms-shared-device")
    assert rc == 0 and "no findings" in out
    # As a picture: the blamed PASID entry's pointer to vm2's table is outlined.
    rc, out, _ = run(capsys, "audit", "broken-isolation", "--format", "svg")
    root = ET.fromstring(out)
    hl = [p for p in root.iter("{http://www.w3.org/2000/svg}path")
          if p.get("stroke-width") == "4"]
    assert rc == 1 and len(hl) == 1 and "PASID 5" in hl[0].get("data-edge")


@needs_vtd
def test_show_variants(capsys, tmp_path):
    rc, out, _ = run(capsys, "show", "--list")
    assert rc == 0 and "broken-isolation" in out
    rc, out, _ = run(capsys, "show", "nested-vtd")
    assert rc == 0 and "root table" in out and mail_safe(out)
    rc, out, _ = run(capsys, "show", "nested-vtd", "--graph", "mapping")
    assert rc == 0 and "GVA 0x600000" in out
    # a GVA range names the GPA it lands at, the one a walk reaches
    rc, walked, _ = run(capsys, "walk", "nested-vtd", "--device", "00:02.0", "--pasid", "5",
                        "--address", "0x7f0000000000")
    gpa = walked.split(" via GPA ")[1].split()[0]
    assert f"GVA 0x7f0000000000 +0x4000 -> vm1 GPA {gpa} r" in out
    rc, out, _ = run(capsys, "show", "nested-vtd", "--format", "json")
    assert json.loads(out)["schema"] == "svmkit-scenario/1"
    rc, out, _ = run(capsys, "show", "nested-vtd", "--format", "toml")
    (tmp_path / "x.toml").write_text(out)
    assert run(capsys, "show", str(tmp_path / "x.toml"))[0] == 0
    rc, out, _ = run(capsys, "show", "nested-vtd", "--format", "svg")
    ET.fromstring(out)


@needs_vtd
@pytest.mark.parametrize("argv, words", [
    (["walk", "nested-vtd", "--device", "00:09.0", "--address", "1"], "not a device"),
    (["walk", "no-such-file.toml", "--device", "00:02.0", "--address", "1"], "cannot read"),
    (["walk", "nested-vtd", "--device", "00:02.0", "--address", "zz"], "not a number"),
    (["walk", "nested-vtd", "--device", "00:02.0"], "--address"),
    (["walk", "nested-vtd", "--device", "00:02.0", "--address", "1", "--step", "9"],
     "--step 9"),
    (["audit", "BAD"], "cannot read"),
    (["exercise", "--seed", "1", "--kind", "diagonal"], "invalid choice"),
    (["frobnicate"], "invalid choice"),
    (["show"], "give a SCENARIO"),
])
def test_errors_are_one_line_exit_2(capsys, argv, words):
    with pytest.raises(SystemExit) as e:
        raise SystemExit(cli.main(argv))
    assert e.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and words in err


def test_bad_file_names_key_path(capsys, tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('schema = "svmkit-scenario/1"\n[[bind]]\nprocess = "x"\ndevice = "00:02.0"\n'
                 'pasid = 3\n')
    rc, out, err = run(capsys, "audit", str(f))
    assert rc == 2 and err.startswith(f"svmkit audit: {f}: bind[0].process")
    assert len(err.strip().splitlines()) == 1


def test_help_has_examples(capsys):
    for c in cli.EXAMPLES:
        with pytest.raises(SystemExit) as e:
            cli.main([c, "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert "examples:" in out and f"svmkit {c}" in out


def test_exercise_and_compare(capsys):
    rc, out, _ = run(capsys, "exercise", "--seed", "3")
    assert rc == 0 and "seed 3" in out and "Answer" not in out and mail_safe(out)
    rc, out, _ = run(capsys, "exercise", "--seed", "3", "--answers")
    assert rc == 0 and "Answer" in out
    rc, out, err = run(capsys, "compare", "nested-vtd")
    try:
        import svmkit.compare  # noqa: F401
    except ImportError:
        assert rc == 2 and "unavailable" in err and len(err.strip().splitlines()) == 1
    else:
        assert rc == 0 and "PASID 5" in out


def test_progress_reports_only_slow_work():
    import io
    import time
    buf = io.StringIO()
    with cli.progress("quick", buf):
        pass
    assert buf.getvalue() == ""
    with cli.progress("slow", buf):
        time.sleep(1.3)
    assert "slow" in buf.getvalue() and "done" in buf.getvalue()


@needs_vtd
def test_show_ops_lists_driver_writes(capsys):
    rc, out, _ = run(capsys, "show", "userspace-driver-2017", "--ops", "--step", "all")
    assert rc == 0 and mail_safe(out)
    assert "bind host/udrv to 01:00.0 PASID 1:" in out and "pasid-entry" in out
    assert "invalidate" in out and "the process exits: unbind:" in out
