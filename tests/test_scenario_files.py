"""Scenario TOML: round trip, and a precise message for every mistake."""

import pytest
from hypothesis import given, settings, strategies as st

from svmkit.scenario import (
    Scenario, ScenarioError, dumps, examples, load, loads, save, to_dict)


def base():
    s = Scenario("t", model="vtd", memory=1 << 30)
    s.vm("vm1", ram="64 MiB")
    s.process("app", vm="vm1").map(0x400000, "2 MiB", "rw")
    s.process("drv").map(0x10000000, "1 MiB", "r")
    s.device("00:02.0", vm="vm1")
    s.device("00:03.0")
    s.bind("vm1/app", "00:02.0", 5)
    s.bind("drv", "00:03.0", 1)
    return s


def problems(text_or_scenario):
    with pytest.raises(ScenarioError) as e:
        if isinstance(text_or_scenario, str):
            loads(text_or_scenario, file="x.toml")
        else:
            text_or_scenario.validate()
    return e.value


def test_round_trip_and_options_before_process_tables(tmp_path):
    s = base()
    s.options["pasid_bits"] = 16
    s.step("map", process="vm1/app", va=0x800000, size=8192, perms="r")
    s.step("pasid-entry", device="00:02.0", pasid=5, second_of="vm1")
    s.step("unbind", name="drop", device="00:02.0", pasid=5)
    p = tmp_path / "s.toml"
    save(s, p)
    back = load(p)
    assert to_dict(back) == to_dict(s)
    assert dumps(back) == p.read_text()


sizes = st.sampled_from([4096, 8192, 1 << 21, 3 << 20])


@st.composite
def scenarios(draw):
    s = Scenario(draw(st.text("abc-_ xyz\"\\", min_size=1, max_size=8)),
                 model=draw(st.sampled_from(["vtd", "vtd-ecs", "smmuv3", "amdvi"])),
                 memory=1 << 32, description=draw(st.text(max_size=20)))
    nvm = draw(st.integers(0, 3))
    for i in range(nvm):
        s.vm(f"vm{i}", ram=draw(st.sampled_from(["64 MiB", "128 MiB"])))
    owners = [None] + [f"vm{i}" for i in range(nvm)]
    for j in range(draw(st.integers(0, 4))):
        owner = draw(st.sampled_from(owners))
        p = s.process(f"p{j}", vm=owner)
        va = 0
        for _ in range(draw(st.integers(0, 3))):
            va += draw(st.integers(0, 4)) * (1 << 21)
            size = draw(sizes)
            p.map(va, size, draw(st.sampled_from(["r", "rw", "rx", "rwx"])),
                  draw(st.sampled_from([None, 4096])))
            va += size
    return s


@given(scenarios())
@settings(max_examples=60, deadline=None)
def test_round_trip_property(s):
    s.validate()
    back = loads(dumps(s))
    assert to_dict(back) == to_dict(s)


@pytest.mark.parametrize("mutate, path, words", [
    (lambda s: s.get_process("vm1/app").map(0x500000, 4096), "vm[0].process[0].map[1]",
     "overlaps map[0]"),
    (lambda s: s.get_process("vm1/app").map(1 << 47, 4096), "vm[0].process[0].map[1].va",
     "beyond the 48-bit width"),
    (lambda s: s.bind("vm1/app", "00:02.0", 1 << 20), "bind[2].pasid",
     "outside the 20-bit PASID space"),
    (lambda s: s.bind("drv", "00:09.0", 7), "bind[2].device", "not a device"),
    (lambda s: s.get_process("host/drv").map(0x40000000, 1 << 21, page_size=1 << 16),
     "host.process[0].map[1].page_size", "not a page size of x86_64"),
    (lambda s: s.get_process("host/drv").map(0x40001000, 1 << 21, page_size=1 << 21),
     "host.process[0].map[1].page_size", "not both multiples"),
    (lambda s: s.bind("drv", "00:02.0", 9), "bind[2]", "assigned to 'vm1'"),
    (lambda s: s.get_process("host/drv").map(0x50000000, 4096, "w"),
     "host.process[0].map[1].perms", "not a permission set"),
    (lambda s: s.step("pasid-entry", device="00:02.0", pasid=5, second_of="vm7"),
     "step[0].second_of", "not a VM"),
    (lambda s: s.step("frobnicate"), "step[0].action", "'frobnicate'"),
    (lambda s: s.step("map", process="vm1/app", va=0x400000, size=4096, page_size=1 << 21),
     "step[0].page_size", "not both multiples"),
], ids=["overlap", "gva-width", "pasid-width", "no-device", "page-size", "alignment",
       "owner", "perms", "step-vm", "action", "step-page-size"])
def test_each_mistake_is_named(mutate, path, words):
    s = base()
    mutate(s)
    err = problems(s)
    hit = [p for p in err.problems if p.path == path]
    assert hit, [str(p) for p in err.problems]
    assert words in str(hit[0])
    assert "allowed:" in str(hit[0])


def test_file_messages_name_file_and_key():
    text = dumps(base()).replace('perms = "r"', 'perms = "rw", colour = "red"')
    err = problems(text)
    assert str(err.problems[0]).startswith("x.toml: host.process[0].map[0].colour: unknown key")
    assert "allowed: va, size, perms, page_size" in str(err.problems[0])
    err = problems(dumps(base()).replace('svmkit-scenario/1', 'svmkit-scenario/9'))
    assert err.problems[0].path == "schema"
    err = problems(dumps(base()).replace('ram = "64 MiB"', 'ram = "lots"'))
    assert err.problems[0].path == "vm[0].ram" and "'2 MiB'" in str(err.problems[0])
    err = problems("schema = [\nname = 1\n")
    assert err.problems[0].path == "(syntax)" and "line 2" in str(err)
    err = problems(dumps(base()) + '\n[[bind]]\nprocess = "vm1/app"\ndevice = "00:02.0"\n'
                   'pasid = 0x100000\n\n[[bind]]\nprocess = "nobody"\ndevice="00:02.0"\n'
                   'pasid = 3\n')
    assert {"bind[2].pasid", "bind[3].process"} <= {p.path for p in err.problems}
    assert err.first_line().endswith("more)")


def test_model_and_levels():
    s = base()
    s.model = "vtd"
    s.get_vm("vm1").second_levels = 6
    err = problems(s)
    assert err.problems[0].path == "vm[0].second_levels"
    s = base()
    s.model = "arm"
    assert problems(s).problems[0].path == "model"


def test_shipped_examples_load_and_round_trip():
    ex = examples()
    assert len(ex) >= 4
    for name, path in ex.items():
        s = load(path)
        assert to_dict(loads(dumps(s))) == to_dict(s), name
        assert load(name).name == s.name
