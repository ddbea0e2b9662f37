"""Building page tables in :class:`~svmkit.memory.Memory`, the way an OS or a VMM does.

One builder serves every format: the shape of the tables (levels, index bits, table size,
where a table address sits) comes from the format's descriptor
(:mod:`svmkit.formats.layout`), the entries from the format's ``table`` and ``leaf``
builders. :func:`map_page` is the builder; :class:`PageTable` keeps one tree and its root for
the common case. Tables may live in guest memory: then the allocator hands out
guest-physical frames and ``to_host`` says where a guest-physical address sits in host
memory, which is how a guest kernel's CR3 tables end up in the host's RAM.
"""

from . import formats
from .formats import layout as L
from .memory import PAGE


def index(address, level, d):
    """The entry number that ``address`` selects in a table at ``level`` of descriptor ``d``."""
    return (address >> int(d[level, L.L_SHIFT])) & ((1 << int(d[level, L.L_BITS])) - 1)


def table_bytes(d, level):
    """Size in bytes of a table at ``level`` of descriptor ``d`` (4 KiB for 512 entries; Arm's
    16/64 KiB granules and concatenated stage-2 start tables are larger)."""
    return 8 << int(d[level, L.L_BITS])


def alloc_table(alloc, nbytes):
    """``nbytes`` (a power of two) of zeroed memory aligned to its size, from ``alloc`` (a
    :class:`svmkit.memory.FrameAllocator` or anything whose ``alloc(frames=1)`` hands out
    frames in ascending order), as a translation-table base must be (Arm ARM D8.2)."""
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


def map_page(mem, alloc, root, address, pa, fmt, d, *, level=1, to_host=None, **leaf):
    """Map ``address`` to ``pa`` with a leaf at walker ``level`` (1 = a page; above, a large
    page or block), creating the missing tables with :func:`alloc_table` (whose frames
    must come zeroed, as a FrameAllocator's do). ``leaf`` goes to
    ``fmt.leaf``. A format whose entries name their next level (AMD v1, ``G_NL_MASK``) gets
    the level of the table entry it builds, ``fmt.table(pa, level)``. ``to_host`` turns a
    table address as its owner sees it (a GPA) into the HPA to write.

    Returns the memory writes as ``(pa, old, new, what)``, ``pa`` host-physical and ``what``
    the spec name of the entry written."""
    to_host = to_host or (lambda a: a)
    names_level = bool(d[0, L.G_NL_MASK])
    writes = []
    table = root
    for lv in range(int(d[0, L.G_LEVELS]), level, -1):
        ea = to_host(table) + index(address, lv, d) * 8
        e = mem.read_u64(ea)
        if _present(e, lv, d):
            if fmt.is_leaf(e, lv, d):
                raise ValueError(f"address={address:#x} is already mapped by a larger page "
                                 f"at level {lv}")
            table = e & L.to_u64(d[0, L.G_TABLE_ADDR])
            continue
        table = alloc_table(alloc, table_bytes(d, lv - 1))
        new = fmt.table(table, lv) if names_level else fmt.table(table)
        mem.write_u64(ea, new)
        writes.append((ea, e, new, fmt.structure(lv, False)))
    ea = to_host(table) + index(address, level, d) * 8
    old = mem.read_u64(ea)
    size = 1 << int(d[level, L.L_SHIFT])
    new = fmt.leaf(pa & ~(size - 1), level, **leaf)
    mem.write_u64(ea, new)
    writes.append((ea, old, new, fmt.structure(level, True)))
    return writes


def _present(e, level, d):
    e = L.to_i64(e)
    return (e & int(d[level, L.L_PRESENT_ANY])) != 0 and \
        (e & int(d[level, L.L_PRESENT_ALL])) == int(d[level, L.L_PRESENT_ALL])


def entry_address(mem, root, address, d, level, to_host=None):
    """Physical address of the entry that translates ``address`` at walker ``level``, by
    following present table entries from ``root``; None when a table on the way is
    missing."""
    to_host = to_host or (lambda a: a)
    table = root
    for lv in range(int(d[0, L.G_LEVELS]), level, -1):
        e = mem.read_u64(to_host(table) + index(address, lv, d) * 8)
        if not _present(e, lv, d):
            return None
        table = e & L.to_u64(d[0, L.G_TABLE_ADDR])
    return to_host(table) + index(address, level, d) * 8


class PageTable:
    """A page-table tree in format ``fmt`` with ``levels`` levels (4 KiB tables).

    ``alloc()`` returns the address of a fresh zeroed 4 KiB table (as the tables' owner sees
    it: an HPA for host tables, a GPA for a guest's); ``to_host(addr)`` maps such an address
    to the HPA where it is stored (identity by default). ``tables`` maps every table's
    address to its level, for symbol tables.
    """

    def __init__(self, mem, alloc, *, fmt="x86_64", levels=4, phys_bits=52, to_host=None):
        self.mem = mem
        self.fmt = formats.get(fmt)
        self.fmt.check_levels(levels)
        self.levels = levels
        self.d = self.fmt.descriptor(levels, phys_bits)
        self._frames = _OneFrame(alloc)
        self.to_host = to_host or (lambda addr: addr)
        self.root = alloc()
        mem.write(self.to_host(self.root), bytes(PAGE))
        self.tables = {self.root: levels}

    def map(self, va, pa, page_size=4096, **perms):
        """Map the page of ``page_size`` at ``va`` to ``pa``, with the leaf's permission
        keywords of the format (``write``, ``user``, ``xd`` for x86-64; ``r``, ``w``, ``x``
        for VT-d second level). Missing tables are created; returns the leaf's address."""
        level = next((lv for lv, size in self.fmt.page_sizes.items() if size == page_size), None)
        if level is None or level > self.levels:
            sizes = ", ".join(f"{s:#x}" for lv, s in self.fmt.page_sizes.items()
                              if lv <= self.levels)
            raise ValueError(f"page_size={page_size:#x} is not allowed for {self.fmt.name}; "
                             f"allowed: {sizes}")
        if va % page_size or pa % page_size:
            raise ValueError(f"va={va:#x} and pa={pa:#x} must be aligned to {page_size:#x}")
        writes = map_page(self.mem, self._frames, self.root, va, pa, self.fmt, self.d,
                          level=level, to_host=self.to_host, **perms)
        # the tables made are the levels just above the leaf, the last one lowest
        for k, (_, _, new, _) in enumerate(reversed(writes[:-1])):
            self.tables[new & L.to_u64(self.d[0, L.G_TABLE_ADDR])] = level + k
        return writes[-1][0]

    def unmap(self, va, page_size=4096):
        """Clear the leaf that maps ``va`` (tables stay); returns its address, or None."""
        table = self.root
        for lv in range(self.levels, 0, -1):
            slot = self.to_host(table) + index(va, lv, self.d) * 8
            entry = self.mem.read_u64(slot)
            if not _present(entry, lv, self.d):
                return None
            if self.fmt.is_leaf(entry, lv, self.d):
                self.mem.write_u64(slot, 0)
                return slot
            table = entry & L.to_u64(self.d[0, L.G_TABLE_ADDR])
        return None


class _OneFrame:
    """An ``alloc(frames=1)`` object over a function that returns one fresh table."""

    def __init__(self, fn):
        self._fn = fn

    def alloc(self, frames=1):
        if frames != 1:
            raise ValueError("PageTable builds 4 KiB tables only")
        return self._fn()
