"""Guest memory for AMD-Vi set-ups (tests, scenarios, the comparison).

Page tables are built with :func:`svmkit.pagetable.map_page`, which gives an AMD v1 PDE the
level it is written at (48882 2.2.3: a PDE names its next level).

:class:`GuestSpace` is a VM's guest-physical memory: frames the guest allocates get the next
GPA and are mapped GPA -> HPA by the host (second-stage) table with 4 KiB pages, so a
nested walk of anything the guest built costs the full second-stage walk.
"""

from ..pagetable import GuestMemory, map_page  # map_page: re-exported for callers

__all__ = ["GuestSpace", "map_page"]


class GuestSpace(GuestMemory):
    """Guest-physical memory of one VM, backed by host frames from ``alloc`` and mapped by
    the host table at ``host_root`` (format ``host_fmt``, ``host_levels`` levels): a
    :class:`svmkit.pagetable.GuestMemory` with AMD-Vi's names.

    ``alloc()`` gives the GPA of a fresh zeroed guest frame; ``to_hpa(gpa)`` the host frame
    behind it (ValueError for a GPA the guest never allocated); ``map(gpa, hpa)`` returns
    the host-table writes."""

    def __init__(self, mem, alloc, host_root, host_fmt, host_levels, *, gpa_base=0x1000_0000):
        super().__init__(mem, alloc, host_root, host_fmt, host_fmt.descriptor(host_levels),
                         gpa_base=gpa_base)

    # AMD-Vi's names for GuestMemory's own state and look-up
    host_root = property(lambda self: self.root)
    host_fmt = property(lambda self: self.fmt)
    to_hpa = GuestMemory.to_host
