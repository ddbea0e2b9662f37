"""What the widgets translate through: named set-ups of memory, tables and (when the
models are present) an IOMMU.

A :class:`Setup` answers ``translate(device, pasid, address, access) -> Walk`` and lists
the devices, PASIDs and interesting addresses a user can pick. The plain set-ups below use
only :func:`svmkit.walk` (first level alone, second level alone, nested 4+4 and 5+5); the
scenario set-ups come from :mod:`svmkit.scenario` and go through an IOMMU model, so their
walks begin with the root, context and PASID (or STE/CD, DTE) reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import svmkit
from svmkit.memory import FrameAllocator, Memory
from svmkit.pagetable import GuestMemory, PageTable

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
#: How the widgets name "no device" and "no PASID" (a CPU walk, or a request without one).
CPU = "CPU (no device)"
NO_PASID = "none"


@dataclass
class Setup:
    """One thing to explore. ``devices`` maps a label to a device id (None for a CPU
    walk); ``pasids(device_label)`` lists (label, pasid) choices; ``addresses`` lists
    (label, address) suggestions; ``translate(device, pasid, address, access)`` gives the
    Walk. ``mem`` is the memory behind it, ``built`` the scenario build when there is one."""

    name: str
    description: str
    model: str
    devices: dict
    translate: Callable
    addresses: list
    pasid_choices: dict = field(default_factory=dict)   # device label -> [(label, pasid)]
    mem: Memory | None = None
    built: object = None
    phys_bits: int = 52
    notes: dict = field(default_factory=dict)
    # (device label, pasid) -> [(label, address)]: the suggestions that fit that choice
    address_choices: dict = field(default_factory=dict)

    def pasids(self, device_label):
        return self.pasid_choices.get(device_label, [(NO_PASID, None)])

    def addresses_for(self, device_label, pasid):
        """Suggested addresses for this device and PASID (the bound process's mappings),
        else every suggestion."""
        return self.address_choices.get((device_label, pasid)) or self.addresses


# -- plain walks (svmkit.walk only) --------------------------------------------------------

def _cpu_setup(levels: int) -> Setup:
    """A process's page table walked as a CPU (or a first-level-only IOMMU) would:
    Intel SDM vol. 3 sec. 4.5 (4- and 5-level paging)."""
    mem = Memory(4 * GiB)
    alloc = FrameAllocator(mem, 1 * MiB, 64 * MiB)
    pt = PageTable(mem, alloc.alloc, fmt="x86_64", levels=levels)
    pt.map(0x7F12_3456_7000, 0x1234_5000)
    pt.map(0x5555_5540_0000, 0x4000_0000, 2 * MiB)
    pt.map(0x7F00_0000_0000, 0x8000_0000, 1 * GiB)
    # A PML4E with PS set: a reserved bit at the top level (SDM 4.5, table 4-15).
    # Its own top-level slot: bit 44 selects one with 4 levels, bit 53 with 5.
    bad = 0x1000_0000_0000 if levels == 4 else 0x0020_0000_0000_0000
    pt.map(bad, 0x2345_6000)
    top = pt.root + ((bad >> (12 + 9 * (levels - 1))) & 511) * 8
    mem.write_u64(top, mem.read_u64(top) | 1 << 7)
    addresses = [
        ("4 KiB page", 0x7F12_3456_7123),
        ("2 MiB page", 0x5555_5541_2345),
        ("1 GiB page", 0x7F00_1234_5678),
        ("not mapped (fault)", 0x7F12_3456_8000),
        ("reserved bit set (fault)", bad),
    ]

    def translate(device, pasid, address, access="r"):
        return svmkit.walk(mem, address, root=pt.root, levels=levels, access=access, user=True)

    return Setup(f"First level alone: x86-64, {levels} levels",
                 f"A process's {levels}-level page table walked from CR3 (or from a "
                 "first-level-only PASID entry): one reference per level.",
                 "cpu", {CPU: None}, translate, addresses, mem=mem,
                 notes={"root": pt.root})


def _second_setup(levels: int) -> Setup:
    """A VM's second-level table walked alone for a GPA: VT-d sec. 3.7 and 9.8."""
    mem = Memory(8 * GiB)
    alloc = FrameAllocator(mem, 1 * MiB, 64 * MiB)
    sl = PageTable(mem, alloc.alloc, fmt="vtd_sl", levels=levels)
    sl.map(0x0000_1000, 0x1_0000_1000)
    sl.map(0x0020_0000, 0x1_0020_0000, 2 * MiB)
    sl.map(0x4000_0000, 0x1_4000_0000, 1 * GiB)
    sl.map(0x2000, 0x1_0000_2000, r=True, w=False)
    addresses = [
        ("4 KiB page", 0x1234),
        ("2 MiB page", 0x0023_4567),
        ("1 GiB page", 0x4123_4567),
        ("read-only page", 0x2000),
        ("not mapped (fault)", 0x8000_0000),
    ]

    def translate(device, pasid, address, access="r"):
        return svmkit.walk(mem, address, root=sl.root, fmt="vtd_sl", levels=levels,
                           access=access)

    return Setup(f"Second level alone: VT-d, {levels} levels",
                 "A VM's second-level (GPA to HPA) table walked for a GPA, as for a "
                 "request without PASID from a device assigned to the VM.",
                 "cpu", {CPU: None}, translate, addresses, mem=mem,
                 notes={"root": sl.root})


def _nested_setup(levels: int, second_levels: int) -> Setup:
    """A guest process's table (in guest memory) walked through the VM's second level:
    VT-d sec. 3.8 nested translation; the 2D walk of Bhargava et al. (ASPLOS 2008)."""
    mem = Memory(8 * GiB)
    host = FrameAllocator(mem, 1 * MiB, 64 * MiB)
    ram_base = 1 * GiB                        # guest RAM: GPA 0.. at HPA 1 GiB
    sl = PageTable(mem, host.alloc, fmt="vtd_sl", levels=second_levels)
    # 4 KiB second-level pages, so that every row of the grid has all its columns.
    guest = GuestMemory(mem, host, sl.root, sl.fmt, sl.d, gpa_base=1 * MiB,
                        host_base=ram_base)
    gpt = PageTable(mem, guest.alloc, fmt="x86_64", levels=levels, to_host=guest.to_host)
    gpt.map(0x7F12_3456_7000, 0x0200_0000)
    guest.back(0x0200_0000)
    gpt.map(0x5555_5540_0000, 0x0400_0000, 2 * MiB)
    guest.back(0x0400_0000 + 0x12_000)        # the page the suggestion below touches
    gpt.map(0x7F12_3456_9000, 0x0300_0000)    # guest maps it, the VMM does not back it
    addresses = [
        ("4 KiB guest page", 0x7F12_3456_7123),
        ("2 MiB guest page", 0x5555_5541_2345),
        ("guest not mapped (first-level fault)", 0x7F12_3456_8000),
        ("GPA not backed (second-level fault)", 0x7F12_3456_9000),
    ]

    def translate(device, pasid, address, access="r"):
        return svmkit.walk(mem, address, root=gpt.root, levels=levels, access=access,
                           user=True, second_root=sl.root, second_fmt="vtd_sl",
                           second_levels=second_levels)

    return Setup(f"Nested: {levels}-level guest over {second_levels}-level second level",
                 "A guest process's table lives in guest memory: every guest table pointer "
                 "and the final GPA go through a full second-level walk, the "
                 "two-dimensional walk.",
                 "cpu", {CPU: None}, translate, addresses, mem=mem,
                 notes={"root": gpt.root, "second_root": sl.root})


PLAIN = {
    "first4": lambda: _cpu_setup(4),
    "first5": lambda: _cpu_setup(5),
    "second4": lambda: _second_setup(4),
    "nested44": lambda: _nested_setup(4, 4),
    "nested55": lambda: _nested_setup(5, 5),
}


def model_installed(model: str) -> bool:
    """Whether this build has the package of IOMMU model ``model`` (a scenario's
    ``model``: "vtd", "vtd-ecs", "smmuv3", "amdvi")."""
    import importlib.util
    package = {"vtd-ecs": "vtd"}.get(model, model)
    return importlib.util.find_spec(f"svmkit.{package}") is not None


@lru_cache(maxsize=1)
def _examples() -> tuple:
    """(name, model) of the shipped example scenarios whose model is installed."""
    try:
        from svmkit import scenario
    except ImportError:
        return ()
    out = []
    for name in scenario.examples():
        model = scenario.load(name).model
        if model_installed(model):
            out.append((name, model))
    return tuple(out)


def scenario_setups() -> dict:
    """Set-ups from the example scenarios shipped with :mod:`svmkit.scenario` whose model
    this build has: key -> zero-argument builder. Empty without svmkit.scenario."""
    from svmkit import scenario
    # Caches off: the stepper shows every reference of every walk, not what a cache saved.
    return {f"scenario:{name}": (lambda name=name: from_scenario(scenario.load(name), name,
                                                                 caches="off"))
            for name, _model in _examples()}


def from_scenario(s, name=None, **build_options) -> Setup:
    """A Setup over scenario ``s`` (a :class:`svmkit.scenario.Scenario`): its devices,
    the PASIDs bound on each, and the bound processes' mappings as suggested addresses.
    ``build_options`` go to ``s.build`` (e.g. ``caches="off"``)."""
    b = s.build(**build_options)
    devices, pasids, addresses, per = {}, {}, [], {}
    maps = {p.qname: [(p.qname, m.va) for m in p.maps] for p in s.processes()}
    for d in s.devices:
        label = f"{d.bdf} ({d.name})" if d.name else d.bdf
        devices[label] = d.rid
        binds = [bd for bd in s.binds if s.get_device(bd.device).rid == d.rid]
        pasids[label] = [(f"{bd.pasid} ({bd.process})", bd.pasid) for bd in binds] + [
            (NO_PASID, None)]
        for bd in binds:
            per[(label, bd.pasid)] = maps.get(bd.process, [])
    for suggestions in maps.values():
        addresses += suggestions

    def translate(device, pasid, address, access="r"):
        return b.translate(device, address, pasid=pasid, access=access)

    name = name or s.name
    return Setup(f"Scenario {name} ({s.model})", s.description or name, s.model, devices,
                 translate, addresses, pasid_choices=pasids, mem=b.mem, built=b,
                 address_choices=per,
                 phys_bits=s.phys_bits)


def catalogue() -> dict:
    """Every set-up the widgets offer: key -> (title, builder). Plain walks first."""
    titles = {"first4": "First level alone (x86-64, 4 levels)",
              "first5": "First level alone (x86-64, 5 levels)",
              "second4": "Second level alone (VT-d, 4 levels)",
              "nested44": "Nested 4+4 (guest over second level)",
              "nested55": "Nested 5+5"}
    out = {k: (titles[k], v) for k, v in PLAIN.items()}
    for k, v in (scenario_setups() if _examples() else {}).items():
        out[k] = ("Scenario: " + k.split(":", 1)[1], v)
    return out


_CACHE: dict = {}


def get(key: str) -> Setup:
    """The set-up ``key`` of :func:`catalogue`, built once per kernel."""
    cat = catalogue()
    if key not in cat:
        raise ValueError(f"setup={key!r} is not known; allowed: {', '.join(cat)}")
    if key not in _CACHE:
        _CACHE[key] = cat[key][1]()
    return _CACHE[key]
