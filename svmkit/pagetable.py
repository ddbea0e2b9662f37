"""Building page tables in :class:`~svmkit.memory.Memory`, the way an OS or a VMM does.

:class:`PageTable` owns one tree of tables in any format and maps pages into it. Its tables
may live in guest memory: then ``alloc`` hands out guest-physical frames and ``to_host``
says where a guest-physical address sits in host memory, which is how a guest kernel's CR3
tables end up in the host's RAM.
"""

from . import formats
from .formats import layout as L


class PageTable:
    """A page-table tree in format ``fmt`` with ``levels`` levels.

    ``alloc()`` returns the address of a fresh zeroed 4 KiB table (as the tables' owner sees
    it: an HPA for host tables, a GPA for a guest's); ``to_host(addr)`` maps such an address
    to the HPA where it is stored (identity by default).
    """

    def __init__(self, mem, alloc, *, fmt="x86_64", levels=4, phys_bits=52, to_host=None):
        self.mem = mem
        self.fmt = formats.get(fmt)
        self.fmt.check_levels(levels)
        self.levels = levels
        self.d = self.fmt.descriptor(levels, phys_bits)
        self._alloc = alloc
        self.to_host = to_host or (lambda addr: addr)
        self.root = self._new_table()
        self.tables = {self.root: levels}      # table address -> level, for symbol tables

    def _new_table(self):
        addr = self._alloc()
        self.mem.write(self.to_host(addr), bytes(4096))
        return addr

    def _slot(self, table, va, level):
        shift, bits = int(self.d[level, L.L_SHIFT]), int(self.d[level, L.L_BITS])
        return self.to_host(table + ((va >> shift) & ((1 << bits) - 1)) * 8)

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
        table = self.root
        for lv in range(self.levels, level, -1):
            slot = self._slot(table, va, lv)
            entry = self.mem.read_u64(slot)
            if entry == 0:
                child = self._new_table()
                self.tables[child] = lv - 1
                self.mem.write_u64(slot, self.fmt.table(child))
                table = child
            elif self.fmt.is_leaf(entry, lv, self.d):
                raise ValueError(f"va={va:#x} is already mapped by a larger page at level {lv}")
            else:
                table = entry & int(self.d[0, L.G_TABLE_ADDR])
        slot = self._slot(table, va, level)
        self.mem.write_u64(slot, self.fmt.leaf(pa, level, **perms))
        return slot

    def unmap(self, va, page_size=4096):
        """Clear the leaf that maps ``va`` (tables stay); returns its address, or None."""
        table = self.root
        for lv in range(self.levels, 0, -1):
            slot = self._slot(table, va, lv)
            entry = self.mem.read_u64(slot)
            if entry == 0:
                return None
            if self.fmt.is_leaf(entry, lv, self.d):
                self.mem.write_u64(slot, 0)
                return slot
            table = entry & int(self.d[0, L.G_TABLE_ADDR])
        return None
