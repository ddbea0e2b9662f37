"""The scenario description: host, VMs, processes with mappings, devices,
binds and steps. Plain data with a small builder API; checking is in
:mod:`svmkit.scenario.validate`, building the memory in
:mod:`svmkit.scenario.build`, files in :mod:`svmkit.scenario.files`.

Names: a process is named by its owner and its name, ``"host/drv"`` or
``"vm1/app"``; a device by its PCI address ``"00:02.0"`` (bus:device.function,
hex, VT-d sec. 3.4.1's requester id is ``bus << 8 | device << 3 | function``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SCHEMA = "svmkit-scenario/1"
HOST = "host"

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
_UNITS = {"": 1, "b": 1, "k": KiB, "kb": KiB, "kib": KiB, "m": MiB, "mb": MiB, "mib": MiB,
          "g": GiB, "gb": GiB, "gib": GiB, "t": TiB, "tb": TiB, "tib": TiB}
PERMS = ("r", "rw", "rx", "rwx")


def parse_size(v, argument="size") -> int:
    """``4096``, ``"4 KiB"``, ``"2M"``, ``"1 GiB"`` -> bytes. ValueError naming
    ``argument`` otherwise."""
    if isinstance(v, bool):
        raise ValueError(f"{argument}={v!r} is not a size; allowed: bytes or '4 KiB', '2 MiB' ...")
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        m = re.fullmatch(r"\s*(0x[0-9a-fA-F]+|\d+)\s*([A-Za-z]*)\s*", v)
        if m and m.group(2).lower() in _UNITS:
            return int(m.group(1), 0) * _UNITS[m.group(2).lower()]
    raise ValueError(f"{argument}={v!r} is not a size; allowed: bytes or '4 KiB', '2 MiB' ...")


def size_str(n: int):
    """The inverse for files: ``"2 MiB"`` when a unit divides, else the int."""
    for unit, name in ((TiB, "TiB"), (GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if n >= unit and n % unit == 0:
            return f"{n // unit} {name}"
    return n


def parse_bdf(v, argument="device") -> int:
    """``"00:02.0"`` (or ``"0000:00:02.0"``) -> requester id ``bus<<8 | dev<<3 | fn``."""
    if isinstance(v, str):
        m = re.fullmatch(r"(?:[0-9a-fA-F]{4}:)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])", v)
        if m and int(m.group(2), 16) < 32:
            return int(m.group(1), 16) << 8 | int(m.group(2), 16) << 3 | int(m.group(3))
    raise ValueError(f"{argument}={v!r} is not a PCI address; allowed: 'bus:dev.fn' in hex "
                     "with dev below 0x20 and fn below 8, e.g. '00:02.0'")


def bdf_str(rid: int) -> str:
    return f"{rid >> 8:02x}:{(rid >> 3) & 0x1f:02x}.{rid & 7}"


@dataclass
class Mapping:
    """``size`` bytes at ``va`` with ``perms`` (r, rw, rx, rwx); ``page_size``
    None lets the builder pick the largest pages that fit. ``va`` is a GVA for
    a process in a VM, a host VA otherwise."""

    va: int
    size: int
    perms: str = "rw"
    page_size: int | None = None


@dataclass
class Process:
    name: str
    owner: str = HOST
    levels: int = 4
    maps: list = field(default_factory=list)

    @property
    def qname(self) -> str:
        return f"{self.owner}/{self.name}"

    def map(self, va, size, perms="rw", page_size=None) -> "Process":
        """Add a mapping; returns the process so calls chain. Sizes accept
        ``"2 MiB"`` strings. Checked as a whole by ``Scenario.validate``."""
        self.maps.append(Mapping(int(va), parse_size(size), perms,
                                 None if page_size is None else parse_size(page_size, "page_size")))
        return self


@dataclass
class Vm:
    name: str
    ram: int
    second_levels: int = 4
    processes: list = field(default_factory=list)


@dataclass
class Device:
    """A PCI function. ``owner``: "host", a VM's name (the device is assigned
    to it: its requests without PASID go through the VM's second stage), or a
    list of VM names: a device whose PASIDs are shared out between VMs
    (Intel Scalable IOV's assignable interfaces), owned by the host."""

    bdf: str
    name: str | None = None
    owner: str | list = HOST

    @property
    def rid(self) -> int:
        return parse_bdf(self.bdf)

    @property
    def owners(self) -> list:
        return list(self.owner) if isinstance(self.owner, (list, tuple)) else [self.owner]

    @property
    def shared(self) -> bool:
        return isinstance(self.owner, (list, tuple))


@dataclass
class Bind:
    """Process ``process`` (qualified name) bound to ``device`` at ``pasid``.
    ``second_of`` names the VM whose second stage the PASID entry uses; None
    (the right thing) is the process's own VM. Another VM's is the classic
    VMM mistake an audit must catch."""

    process: str
    device: str
    pasid: int
    second_of: str | None = None


@dataclass
class Step:
    """A change over time. ``action``: ``bind``/``unbind`` (process, device,
    pasid), ``map``/``unmap`` (process, va, size, perms, page_size),
    ``remap`` (the same range unmapped, then mapped to fresh pages),
    ``pasid-entry`` (device, pasid and the fields to change: ``second_of`` a VM
    name, ``first_of`` a process: point the entry at another's tables, the
    classic isolation mistake)."""

    action: str
    args: dict = field(default_factory=dict)
    name: str | None = None


ACTIONS = {
    "bind": ("process", "device", "pasid"),
    "unbind": ("device", "pasid"),
    "map": ("process", "va", "size"),
    "unmap": ("process", "va", "size"),
    "remap": ("process", "va", "size"),
    "pasid-entry": ("device", "pasid"),
}
STEP_OPTIONAL = {
    "bind": (), "unbind": (), "map": ("perms", "page_size"), "unmap": (),
    "remap": ("perms", "page_size"),
    "pasid-entry": ("second_of", "first_of"),
}


@dataclass
class Scenario:
    """A system to build: see docs/scenarios.md.

    >>> s = Scenario("demo", model="vtd")
    >>> vm = s.vm("vm1", ram="64 MiB")
    >>> s.process("app", vm="vm1").map(0x400000, "2 MiB", "rw")  # doctest: +ELLIPSIS
    Process(...)
    >>> s.device("00:02.0", vm="vm1")                              # doctest: +ELLIPSIS
    Device(...)
    >>> s.bind("vm1/app", "00:02.0", pasid=5)                      # doctest: +ELLIPSIS
    Bind(...)
    """

    name: str = "scenario"
    model: str = "vtd"
    description: str = ""
    memory: int = 1 * GiB
    phys_bits: int = 46
    options: dict = field(default_factory=dict)
    vms: list = field(default_factory=list)
    host_processes: list = field(default_factory=list)
    devices: list = field(default_factory=list)
    binds: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    source: str | None = None   # file it was loaded from, for messages
    #: A memory image instead of a built system (see svmkit.debugfs):
    #: ``{"root_table": int, "ttm": "scalable"|"legacy", "qwords": [(pa, value)],
    #: "labels": [(pa, size, kind, detail)]}``. Processes, VMs and binds are
    #: then not allowed: the tables are what they are.
    image: dict | None = None

    # -- builder API -------------------------------------------------------------------------

    def vm(self, name, ram="256 MiB", second_levels=4) -> Vm:
        v = Vm(name, parse_size(ram, "ram"), second_levels)
        self.vms.append(v)
        return v

    def process(self, name, vm=None, levels=4) -> Process:
        p = Process(name, vm or HOST, levels)
        if vm is None:
            self.host_processes.append(p)
        else:
            v = self.get_vm(vm)
            if v is None:
                raise ValueError(f"vm={vm!r} is not a VM of this scenario; allowed: "
                                 f"{', '.join(x.name for x in self.vms) or 'none yet'}")
            v.processes.append(p)
        return p

    def device(self, bdf, name=None, vm=None) -> Device:
        """``vm``: None for the host, a VM name, or a list of VM names for a
        device whose PASIDs are shared between VMs."""
        parse_bdf(bdf)
        d = Device(bdf, name, list(vm) if isinstance(vm, (list, tuple)) else vm or HOST)
        self.devices.append(d)
        return d

    def bind(self, process, device, pasid, second_of=None) -> Bind:
        b = Bind(process if "/" in process else f"{HOST}/{process}", device, int(pasid),
                 second_of)
        self.binds.append(b)
        return b

    def step(self, action, name=None, **args) -> Step:
        st = Step(action, args, name)
        self.steps.append(st)
        return st

    # -- lookups -----------------------------------------------------------------------------

    def get_vm(self, name):
        return next((v for v in self.vms if v.name == name), None)

    def processes(self):
        """Every process, host first, then each VM's."""
        return list(self.host_processes) + [p for v in self.vms for p in v.processes]

    def get_process(self, qname):
        return next((p for p in self.processes() if p.qname == qname), None)

    def get_device(self, bdf):
        try:
            rid = parse_bdf(bdf)
        except ValueError:
            return next((d for d in self.devices if d.name == bdf), None)
        return next((d for d in self.devices if d.rid == rid), None)

    # -- convenience -------------------------------------------------------------------------

    def validate(self):
        """Raise :class:`~svmkit.scenario.validate.ScenarioError` listing every
        problem; return self when there is none."""
        from svmkit.scenario.validate import check
        check(self)
        return self

    def build(self, **kw):
        from svmkit.scenario.build import build
        return build(self, **kw)

    def to_dict(self) -> dict:
        from svmkit.scenario.files import to_dict
        return to_dict(self)

    def save(self, path):
        from svmkit.scenario.files import save
        save(self, path)
