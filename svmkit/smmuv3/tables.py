"""Building VMSAv8-64 translation tables in memory, for tests, scenarios and the driver.

Format-generic: the shape of the tables (how many levels, the index bits and the table
address of each) comes from the descriptor (:mod:`svmkit.formats.layout`), the entries from
the format's ``table`` and ``leaf`` builders. Tables larger than 4 KiB (16/64 KiB granules,
concatenated stage 2 start tables) are allocated contiguous and aligned to their size, as
the Arm ARM D8.2 requires of a translation table base.
"""

from ..formats import layout as L
from ..memory import PAGE


def alloc_table(alloc, nbytes):
    """``nbytes`` (a power of two) of zeroed memory aligned to its size, from ``alloc`` (a
    :class:`svmkit.memory.FrameAllocator`, which hands out frames in ascending order)."""
    frames = max(1, nbytes // PAGE)
    align = max(nbytes, PAGE)
    pa = alloc.alloc(1)
    while pa % align:                   # skip frames up to the alignment
        pa = alloc.alloc(1)
    if frames > 1:
        rest = alloc.alloc(frames - 1)
        if rest != pa + PAGE:
            raise ValueError("alloc must hand out frames in ascending order")
    return pa


def table_bytes(d, level):
    """Size in bytes of a table at walker ``level`` of descriptor ``d``."""
    return 8 << int(d[level, L.L_BITS])


def new_root(alloc, d):
    """A zeroed top-level table for a walk with descriptor ``d``."""
    return alloc_table(alloc, table_bytes(d, int(d[0, L.G_LEVELS])))


def map_page(mem, alloc, root, address, pa, d, fmt, *, level=1, **leaf):
    """Map ``address`` to ``pa`` with a leaf at walker ``level`` (1 = page; above, a block),
    creating the missing tables. ``leaf`` goes to ``fmt.leaf``. Returns the memory writes as
    ``(pa, old, new, what)`` (``what`` the spec name of the entry written)."""
    writes = []
    table = root
    for lv in range(int(d[0, L.G_LEVELS]), level, -1):
        ea = table + _index(address, lv, d) * 8
        e = mem.read_u64(ea)
        if e & 1 and not fmt.is_leaf(e, lv, d):
            table = e & L.to_u64(d[0, L.G_TABLE_ADDR])
            continue
        table = alloc_table(alloc, table_bytes(d, lv - 1))
        new = fmt.table(table)
        mem.write_u64(ea, new)
        writes.append((ea, e, new, fmt.structure(lv, False)))
    ea = table + _index(address, level, d) * 8
    old = mem.read_u64(ea)
    size = 1 << int(d[level, L.L_SHIFT])
    new = fmt.leaf(pa & ~(size - 1), level, **leaf)
    mem.write_u64(ea, new)
    writes.append((ea, old, new, fmt.structure(level, True)))
    return writes


def entry_address(mem, root, address, d, level):
    """Physical address of the entry that translates ``address`` at walker ``level``, by
    following present table entries from ``root``; None when a table on the way is
    missing."""
    table = root
    for lv in range(int(d[0, L.G_LEVELS]), level, -1):
        e = mem.read_u64(table + _index(address, lv, d) * 8)
        if not e & 1:
            return None
        table = e & L.to_u64(d[0, L.G_TABLE_ADDR])
    return table + _index(address, level, d) * 8


def _index(address, level, d):
    return (address >> int(d[level, L.L_SHIFT])) & ((1 << int(d[level, L.L_BITS])) - 1)


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
        self.writes += map_page(self.mem, self.host_alloc, self.s2root, ipa, pa, self.d2,
                                self.fmt, **leaf)

    def to_host(self, ipa):
        return self.pages[ipa & ~(self.page - 1)] + (ipa & (self.page - 1))

    def read_u64(self, ipa):
        return self.mem.read_u64(self.to_host(ipa))

    def write_u64(self, ipa, value):
        self.mem.write_u64(self.to_host(ipa), value)
