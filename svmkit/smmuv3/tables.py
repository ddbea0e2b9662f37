"""Building VMSAv8-64 translation tables in memory, for tests, scenarios and the driver.

The builder itself is :func:`svmkit.pagetable.map_page` (format-generic; tables larger than
4 KiB, for 16/64 KiB granules and concatenated stage 2 start tables, are allocated contiguous
and aligned to their size, as the Arm ARM D8.2 requires of a translation table base). Here:
the root of a walk and a guest's IPA space.
"""

from ..formats import layout as L
from ..pagetable import (GuestMemory, alloc_table, entry_address,  # noqa: F401
                         map_page, table_bytes)


def new_root(alloc, d):
    """A zeroed top-level table for a walk with descriptor ``d``."""
    return alloc_table(alloc, table_bytes(d, int(d[0, L.G_LEVELS])))


class Guest(GuestMemory):
    """A guest's memory: IPA frames backed by host memory through stage 2 tables (a
    :class:`svmkit.pagetable.GuestMemory` with SMMUv3's names).

    ``alloc()`` hands out consecutive 4 KiB IPA frames from ``ipa_base``, backed by fresh
    host memory mapped at stage 2 (tables at ``s2root``, descriptor ``d2``) one stage 2
    page (the granule, ``page_size``) at a time; ``to_host(ipa)`` finds the host address;
    ``read_u64``/``write_u64`` take IPAs, so :func:`map_page` and
    :class:`svmkit.pagetable.PageTable` (``alloc=guest.alloc, to_host=guest.to_host``) can
    build the guest's own stage 1 tables. ``writes`` collects the stage 2 writes made.
    """

    def __init__(self, mem, alloc, s2root, d2, *, ipa_base=0x4000_0000, fmt=None):
        from ..formats import arm64_s2
        super().__init__(mem, alloc, s2root, fmt or arm64_s2.FORMAT, d2, gpa_base=ipa_base)

    # SMMUv3's names for GuestMemory's own state, not copies of it
    s2root = property(lambda self: self.root)
    d2 = property(lambda self: self.d)
    page = property(lambda self: self.page_size)
