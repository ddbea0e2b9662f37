"""Scenarios: describe a system (host, VMs, processes, devices, an IOMMU
model, binds and changes over time), check it, save it as TOML, and build it
into one ``Memory`` with a symbol table. See docs/scenarios.md."""

from svmkit.scenario.build import Built, build
from svmkit.scenario.files import dumps, examples, from_dict, load, loads, save, to_dict
from svmkit.scenario.model import (
    SCHEMA, Bind, Device, Mapping, Process, Scenario, Step, Vm, bdf_str, parse_bdf, parse_size)
from svmkit.scenario.validate import Problem, ScenarioError, check

__all__ = [
    "SCHEMA", "Bind", "Built", "build", "Device", "Mapping", "Problem", "Process", "Scenario", "ScenarioError",
    "Step", "Vm", "bdf_str", "check", "dumps", "examples", "from_dict", "load", "loads",
    "parse_bdf", "parse_size", "save", "to_dict",
]
