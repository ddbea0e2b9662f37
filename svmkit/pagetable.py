"""Building page tables in :class:`~svmkit.memory.Memory`, the way an OS or a VMM does.

One builder serves every format: the shape of the tables (levels, index bits, table size,
where a table address sits) comes from the format's descriptor
(:mod:`svmkit.formats.layout`), the entries from the format's ``table`` and ``leaf``
builders. :func:`map_page` is the builder; :class:`PageTable` keeps one tree and its root for
the common case. Tables may live in guest memory: then the allocator hands out
guest-physical frames and ``to_host`` says where a guest-physical address sits in host
memory, which is how a guest kernel's CR3 tables end up in the host's RAM.
:class:`GuestMemory` is such a guest: its frames, the second stage that backs them and the
GPA -> HPA look-up, for every model.
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


class GuestMemory:
    """A guest's physical address space, backed by host memory through a second stage:
    the VT-d second-level table (VT-d 3.7, nested 3.8), the SMMUv3 stage 2 tables
    (IHI 0070 5.2 STE.S2TTB; Arm ARM D8, VMSAv8-64 stage 2) or the AMD-Vi host page table
    (48882 2.2.3) that turns the guest's physical addresses (GPA; IPA on Arm) into host
    physical ones (HPA), the way a VMM maps its guest's RAM.

    ``root`` is the second stage's top table (an HPA), ``fmt`` its format and ``d`` its
    descriptor; the second stage's own tables come from ``alloc``, a host
    :class:`svmkit.memory.FrameAllocator`. Guest memory is backed one second-stage page of
    ``page_size`` bytes at a time (default the smallest page, the granule: 4 KiB, or 16/64
    KiB with Arm's larger granules; 2 MiB or 1 GiB for a VMM that maps with large pages),
    either by fresh host memory from ``alloc`` (aligned to the page) or, with ``host_base``,
    at ``host_base + gpa``: RAM that is one block of host memory, as a VMM's mmap of it.

    ``alloc(frames=1)`` gives the GPA of fresh zeroed contiguous 4 KiB guest frames (in
    ascending order from ``gpa_base``, so :func:`alloc_table` and :class:`PageTable` accept
    it); ``back(gpa)`` backs the page holding ``gpa`` without handing it out; ``map(gpa,
    hpa)`` maps a page to host memory of the caller's choice; ``to_host(gpa)`` is the HPA
    behind a GPA (ValueError for a GPA this guest has not backed);
    ``read_u64``/``write_u64`` take GPAs, so ``map_page(guest, guest, ...)`` builds the
    guest's own first-stage tables in its memory. ``writes`` records every second-stage
    write as ``(pa, old, new, what)``; ``pages`` maps each backed page's GPA to its HPA.
    """

    def __init__(self, mem, alloc, root, fmt, d, *, gpa_base=0, page_size=None,
                 host_base=None):
        self.mem, self.host_alloc = mem, alloc
        self.root, self.fmt, self.d = root, fmt, d
        sizes = {1 << int(d[lv, L.L_SHIFT]): lv for lv in range(1, int(d[0, L.G_LEVELS]) + 1)
                 if d[lv, L.L_LEAF] != L.LEAF_NEVER}        # the pages this stage can map
        page_size = page_size or min(sizes)
        if page_size not in sizes:
            raise ValueError(f"page_size={page_size:#x} is not a page of this second stage; "
                             f"allowed: {', '.join(f'{s:#x}' for s in sorted(sizes))}")
        self.page_size, self._level = page_size, sizes[page_size]
        if gpa_base % PAGE:
            raise ValueError(f"gpa_base={gpa_base:#x} is not 4 KiB aligned")
        if (host_base or 0) % page_size:
            raise ValueError(f"host_base={host_base:#x} is not aligned to page_size "
                             f"{page_size:#x}")
        self.host_base = host_base
        self.next = gpa_base
        self.pages = {}                 # GPA of a second-stage page -> HPA behind it
        self.writes = []

    def alloc(self, frames=1):
        """The GPA of ``frames`` fresh zeroed, contiguous 4 KiB guest frames, backed."""
        gpa = self.next
        self.next += frames * PAGE
        for g in range(gpa, gpa + frames * PAGE, PAGE):
            self.back(g)
            # zeroed here: a page backed earlier (or RAM at host_base) may hold anything
            self.mem.write(self.to_host(g), bytes(PAGE))
        return gpa

    def back(self, gpa, **leaf):
        """Back the second-stage page holding ``gpa`` if it is not yet; the writes made."""
        page = gpa & ~(self.page_size - 1)
        if page in self.pages:
            return []
        if self.host_base is None:
            hpa = alloc_table(self.host_alloc, self.page_size)
        else:
            hpa = self.host_base + page
        return self.map(page, hpa, **leaf)

    def map(self, gpa, hpa, **leaf):
        """Map the second-stage page at ``gpa`` to host memory at ``hpa`` (both aligned to
        ``page_size``), ``leaf`` going to the format's ``leaf`` (permissions); the second
        stage's writes."""
        if gpa % self.page_size or hpa % self.page_size:
            raise ValueError(f"gpa={gpa:#x} and hpa={hpa:#x} must be aligned to page_size "
                             f"{self.page_size:#x}")
        writes = map_page(self.mem, self.host_alloc, self.root, gpa, hpa, self.fmt, self.d,
                          level=self._level, **leaf)
        self.pages[gpa] = hpa           # after map_page, which refuses a larger page's GPA
        self.writes += writes
        return writes

    def to_host(self, gpa):
        """The HPA of guest-physical address ``gpa``."""
        hpa = self.pages.get(gpa & ~(self.page_size - 1))
        if hpa is None:
            raise ValueError(f"gpa={gpa:#x} is not backed by this guest's second stage")
        return hpa + (gpa & (self.page_size - 1))

    def read_u64(self, gpa):
        return self.mem.read_u64(self.to_host(gpa))

    def write_u64(self, gpa, value):
        self.mem.write_u64(self.to_host(gpa), value)
