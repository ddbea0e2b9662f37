"""ARM SMMUv3 (IHI 0070): stream table, context descriptors, nested stage 1 + stage 2 walks,
configuration cache and TLB with the CMD_CFGI_* and CMD_TLBI_* commands.

``Iommu`` translates (``translate(stream_id, address, *, pasid=None, access="r")``),
``Driver`` writes STEs and CDs and issues commands, ``commands`` holds the commands,
``events`` the event names and numbers, ``structures`` the STE/CD field layouts. The page
tables are the VMSAv8-64 formats ``arm64_s1`` and ``arm64_s2`` of :mod:`svmkit.formats`.
See docs/smmuv3.md.
"""

from . import commands, events, structures
from .commands import *  # noqa: F401,F403  (the CMD_* classes)
from .driver import Driver, Ops
from .events import EVENTS, Event
from .model import Iommu, Ref
from .tables import Guest, map_page, new_root

__all__ = ["Iommu", "Driver", "Ops", "Event", "EVENTS", "Ref", "Guest", "map_page", "new_root",
           "commands", "events", "structures"] + [c.__name__ for c in commands.COMMANDS]
