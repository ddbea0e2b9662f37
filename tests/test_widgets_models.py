"""The walk stepper over the IOMMU models, through the example scenarios (runs once
svmkit.scenario and the models are in the kit)."""

from __future__ import annotations

import re

import pytest

from svmkit.widgets import WalkStepper
from svmkit.widgets import setups as S

scenario = pytest.importorskip("svmkit.scenario", reason="svmkit.scenario is not in the kit yet")
KEYS = [k for k in S.catalogue() if k.startswith("scenario:")]


@pytest.fixture(scope="module")
def stepper():
    return WalkStepper("first4")


@pytest.mark.parametrize("key", KEYS)
def test_every_device_pasid_and_address_steps_cleanly(stepper, key):
    stepper.setup_pick.value = key
    setup = stepper.setup
    assert setup is S.get(key) and stepper.message.value == "", stepper.message.value
    assert setup.devices, key
    for label in setup.devices:
        stepper.device_pick.value = label
        for _, pasid in stepper.pasid_pick.options:
            stepper.pasid_pick.value = pasid
            for _, address in setup.addresses:
                w = stepper.load(address)
                assert w is not None, stepper.message.value
                for k in range(1, len(w.refs) + 1):
                    stepper.step()
                    lit = re.findall(r"data-ref='(\d+)' data-highlight='1'",
                                     stepper.grid.value)
                    assert lit == [str(k)], (key, label, pasid, hex(address), k)
                assert stepper.message.value == "", stepper.message.value
                assert "Traceback" not in stepper.entry.value


def test_vtd_walk_starts_with_root_context_and_pasid_reads(stepper):
    stepper.setup_pick.value = "scenario:nested-vtd"
    device = next(iter(stepper.setup.devices))
    stepper.device_pick.value = device
    pasid = next(p for _, p in stepper.pasid_pick.options if p >= 0)
    w = stepper.load(stepper.setup.addresses[0][1], pasid=pasid)
    names = [r.structure for r in w.refs[:4]]
    assert names == ["root-entry", "context-entry", "pasid-directory-entry", "pasid-entry"]
    for _ in range(4):
        stepper.step()
    # The PASID entry is decoded by the model's structure table: its PGTT says nested (3).
    assert re.search(r"<td>pgtt</td><td>3</td>", stepper.entry.value), stepper.entry.value


def test_structure_graph_lights_the_table_each_reference_reads(stepper):
    from svmkit import graphs
    stepper.setup_pick.value = "scenario:nested-vtd"
    pasid = next(p for _, p in stepper.pasid_pick.options if p >= 0)
    w = stepper.load(stepper.setup.addresses[0][1], pasid=pasid)
    g = graphs.structure_graph(stepper.setup.built)
    for ref in w.refs:
        stepper.step()
        table = ref.address & ~0xFFF
        lit = re.findall(r"<g data-node=(['\"])([^'\"]*)\1 data-highlight='1'",
                         stepper.path.value)
        assert len(lit) == 1, (ref, lit)
        assert lit[0][1] == g.nodes[table]["label"].split("\n")[0]
