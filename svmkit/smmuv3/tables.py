"""Building VMSAv8-64 translation tables in memory, for tests, scenarios and the driver.

The builder itself is :func:`svmkit.pagetable.map_page` (format-generic; tables larger than
4 KiB, for 16/64 KiB granules and concatenated stage 2 start tables, are allocated contiguous
and aligned to their size, as the Arm ARM D8.2 requires of a translation table base). Here:
the root of a walk and a guest's IPA space.
"""

from ..formats import layout as L
from ..memory import PAGE
from ..pagetable import alloc_table, entry_address, map_page, table_bytes  # noqa: F401


def new_root(alloc, d):
    """A zeroed top-level table for a walk with descriptor ``d``."""
    return alloc_table(alloc, table_bytes(d, int(d[0, L.G_LEVELS])))


class Guest:
    """A guest's memory: IPA frames backed by host memory through stage 2 tables.

    ``alloc()`` hands out consecutive 4 KiB IPA frames from ``ipa_base``, backed by fresh
    host memory mapped at stage 2 (tables at ``s2root``, descriptor ``d2``) one stage 2
    page (the granule) at a time; ``to_host(ipa)`` finds the host address;
    ``read_u64``/``write_u64`` take IPAs, so :func:`map_page` and
    :class:`svmkit.pagetable.PageTable` (``alloc=guest.alloc, to_host=guest.to_host``) can
    build the guest's own stage 1 tables. ``writes`` collects the stage 2 writes made.
    """

    def __init__(self, mem, alloc, s2root, d2, *, ipa_base=0x4000_0000, fmt=None):
        from ..formats import arm64_s2
        self.mem, self.host_alloc = mem, alloc
        self.s2root, self.d2 = s2root, d2
        self.fmt = fmt or arm64_s2.FORMAT
        self.page = 1 << int(d2[1, L.L_SHIFT])
        if ipa_base % self.page:
            raise ValueError(f"ipa_base={ipa_base:#x} is not aligned to the stage 2 page")
        self.next = ipa_base
        self.pages = {}                 # IPA page -> host page (stage 2 granule)
        self.writes = []

    def alloc(self, frames=1):
        ipa = self.next
        for i in range(frames):
            page = (ipa + PAGE * i) & ~(self.page - 1)
            if page not in self.pages:
                self.map(page, alloc_table(self.host_alloc, self.page))
        self.next += PAGE * frames
        return ipa

    def map(self, ipa, pa, **leaf):
        """Map the stage 2 page at ``ipa`` to host memory at ``pa``."""
        self.pages[ipa & ~(self.page - 1)] = pa & ~(self.page - 1)
        self.writes += map_page(self.mem, self.host_alloc, self.s2root, ipa, pa, self.fmt,
                                self.d2, **leaf)

    def to_host(self, ipa):
        return self.pages[ipa & ~(self.page - 1)] + (ipa & (self.page - 1))

    def read_u64(self, ipa):
        return self.mem.read_u64(self.to_host(ipa))

    def write_u64(self, ipa, value):
        self.mem.write_u64(self.to_host(ipa), value)
