"""Guest memory for AMD-Vi set-ups (tests, scenarios, the comparison).

Page tables are built with :func:`svmkit.pagetable.map_page`, which gives an AMD v1 PDE the
level it is written at (48882 2.2.3: a PDE names its next level).

:class:`GuestSpace` is a VM's guest-physical memory: frames the guest allocates get the next
GPA and are mapped GPA -> HPA by the host (second-stage) table with 4 KiB pages, so a
nested walk of anything the guest built costs the full second-stage walk.
"""

from ..memory import PAGE
from ..pagetable import map_page     # the one page-table builder (re-exported for callers)

__all__ = ["GuestSpace", "map_page"]


class GuestSpace:
    """Guest-physical memory of one VM, backed by host frames from ``alloc`` and mapped by
    the host table at ``host_root`` (format ``host_fmt``, ``host_levels`` levels).

    ``alloc()`` gives the GPA of a fresh zeroed guest frame; ``to_hpa(gpa)`` the host frame
    behind it (ValueError for a GPA the guest never allocated)."""

    def __init__(self, mem, alloc, host_root, host_fmt, host_levels, *, gpa_base=0x1000_0000):
        self.mem, self.host_alloc = mem, alloc
        self.host_root, self.host_fmt = host_root, host_fmt
        self.d = host_fmt.descriptor(host_levels)
        self.next = gpa_base
        self._hpa = {}

    def map(self, gpa, hpa, **leaf):
        """Map the guest frame ``gpa`` to the host frame ``hpa``; the host-table writes."""
        self._hpa[gpa // PAGE] = hpa // PAGE
        return map_page(self.mem, self.host_alloc, self.host_root, gpa, hpa, self.host_fmt,
                        self.d, **leaf)

    def alloc(self, frames=1):
        """The GPA of ``frames`` fresh zeroed, contiguous guest frames."""
        gpa = self.next
        for i in range(frames):
            self.map(gpa + i * PAGE, self.host_alloc.alloc())
        self.next += frames * PAGE
        return gpa

    def to_hpa(self, gpa):
        frame = self._hpa.get(gpa // PAGE)
        if frame is None:
            raise ValueError(f"gpa={gpa:#x} is not guest memory of this VM")
        return frame * PAGE + gpa % PAGE
