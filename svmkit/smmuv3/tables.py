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
