"""Building page tables and guest memory for AMD-Vi set-ups (tests, scenarios, the comparison).

Format-generic: the shape of the tables comes from the descriptor
(:mod:`svmkit.formats.layout`), the entries from the format's ``table`` and ``leaf``
builders. A format whose entries name their next level (AMD v1, ``G_NL_MASK`` set) gets the
level of the entry it builds (``fmt.table(pa, level)``), as 48882 2.2.3 requires.

:class:`GuestSpace` is a VM's guest-physical memory: frames the guest allocates get the next
GPA and are mapped GPA -> HPA by the host (second-stage) table with 4 KiB pages, so a
nested walk of anything the guest built costs the full second-stage walk.
"""

from ..formats import layout as L
from ..memory import PAGE


def _index(address, level, d):
    return (address >> int(d[level, L.L_SHIFT])) & ((1 << int(d[level, L.L_BITS])) - 1)


def _table_entry(fmt, d, pa, level):
    if d[0, L.G_NL_MASK]:
        return fmt.table(pa, level)
    return fmt.table(pa)


def map_page(mem, alloc, root, address, pa, fmt, d, *, level=1, to_hpa=None, **leaf):
    """Map ``address`` to ``pa`` with a leaf at walker ``level``, creating missing tables.

    ``to_hpa``, for tables that live in guest memory, turns a table's GPA into the HPA to
    write (and ``alloc`` then hands out GPAs, e.g. :meth:`GuestSpace.alloc`). Returns the
    writes as ``(pa, old, new, what)``, ``pa`` host-physical."""
    to_hpa = to_hpa or (lambda a: a)
    writes = []
    table = root
    for lv in range(int(d[0, L.G_LEVELS]), level, -1):
        ea = to_hpa(table) + _index(address, lv, d) * 8
        e = mem.read_u64(ea)
        if e & 1 and not fmt.is_leaf(e, lv, d):
            table = e & L.to_u64(d[0, L.G_TABLE_ADDR])
            continue
        table = alloc.alloc()
        new = _table_entry(fmt, d, table, lv)
        mem.write_u64(ea, new)
        writes.append((ea, e, new, fmt.structure(lv, False)))
    ea = to_hpa(table) + _index(address, level, d) * 8
    old = mem.read_u64(ea)
    size = 1 << int(d[level, L.L_SHIFT])
    new = fmt.leaf(pa & ~(size - 1), level, **leaf)
    mem.write_u64(ea, new)
    writes.append((ea, old, new, fmt.structure(level, True)))
    return writes


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

    def alloc(self):
        gpa = self.next
        self.next += PAGE
        self.map(gpa, self.host_alloc.alloc())
        return gpa

    def to_hpa(self, gpa):
        frame = self._hpa.get(gpa // PAGE)
        if frame is None:
            raise ValueError(f"gpa={gpa:#x} is not guest memory of this VM")
        return frame * PAGE + gpa % PAGE
