"""AMD-Vi (AMD I/O Virtualization Technology, specification 48882): device table, GCR3 tables,
host v1 tables and guest x86-64 tables, nested; events, commands and caches.

``Iommu(mem, device_table=...)`` translates (``translate``, ``translate_many``) and executes
commands (``invalidate``); ``Driver(mem, alloc, iommu)`` writes DTEs and GCR3 entries
(``attach``, ``bind``, ``modify``, ``unbind``, ``detach``) and returns the :class:`Ops`.
See ``docs/amdvi.md``.
"""

from . import commands, dte, events, tables
from .commands import Command
from .driver import Driver, Ops
from .events import EVENT_CODES, EVENT_NAMES, Event
from .iommu import CacheConfig, Config, Fault, Iommu, Ref
from .tables import GuestSpace

__all__ = ["Iommu", "Driver", "Ops", "Fault", "Ref", "CacheConfig", "Config", "Command", "Event",
           "EVENT_CODES", "EVENT_NAMES", "GuestSpace", "commands", "dte",
           "events", "tables"]
