"""AMD-Vi host I/O page tables ("v1" format).

Implements AMD I/O Virtualization Technology (IOMMU) Specification 48882, section 2.2.3
"I/O Page Tables for Host Translations": the page-directory entry (PDE) and page-table entry
(PTE) formats, the Next Level field with level skipping, and the access rights IR/IW that
every entry of a walk must grant. The DTE's Mode field (2.2.2, "Device Table Entry Format")
gives the number of levels: Mode n walks n levels and translates 12 + 9n address bits; the
address bits above must be zero.

Levels (walker numbering : spec name, as a table entry / as a leaf with Next Level = 0):
    5 : level-5 PDE / 256 TiB page   4 : level-4 PDE / 512 GiB page
    3 : level-3 PDE / 1 GiB page     2 : level-2 PDE / 2 MiB page    1 : level-1 PTE (4 KiB)

Entry bits (both forms): PR 0, A 5 (when the DTE enables HAD), Next Level 11:9, address
51:12, IR 61, IW 62; bit 63 and bits 8:7, 4:1 are ignored. A PDE has 60:52 reserved. A PTE
has D 6 (HAD), 58:52 reserved, U 59, FC 60 (force coherent: a memory attribute, not a
right).

Next Level (the descriptor's ``G_NL_SHIFT``/``G_NL_MASK``): in an entry read at level L,
0 marks a PTE that maps the default page size of level L; 1 <= NL < L points to a table of
level NL, skipping the levels between (their address bits take index 0); NL >= L is an
error in the table. NL = 7 is the spec's "page size encoded in the address" PTE
(Table 14, "Example Page Size Encodings"): the walker's descriptor cannot express it, so
this module models the default page sizes only and an NL = 7 entry faults as a reserved
encoding (IO_PAGE_FAULT with RZ). ``docs/amdvi.md`` gives the descriptor column that would
express it.

Not modelled: Mode 6 (64-bit input; a descriptor has five level rows), the HAD dirty-bit
protocol beyond setting A and D, the U and FC attributes (kept and shown, never used), and
the large-page address bits below the page size, which are ignored here as Linux's
``PM_MAP_MASK`` ignores them.
"""

from . import layout as L
from .base import Field, Format
from ..walker.faults import reason_id

PR = 1 << 0
A = 1 << 5
D = 1 << 6
NL_SHIFT = 9
NL_MASK = 0x7
NL_LEAF = 0             # Next Level 0: a PTE of the level's default page size
NL_SIZE_ENCODED = 7     # Next Level 7: page size in the address bits (not expressible)
U = 1 << 59
FC = 1 << 60
IR = 1 << 61
IW = 1 << 62

# 48882 2.5: event codes a page-table walk can end in (see svmkit.amdvi.events)
IO_PAGE_FAULT = 0x2
PAGE_TAB_HARDWARE_ERROR = 0x4


class AmdV1(Format):
    name = "amd_v1"
    stage_name = "second"
    spec = "AMD IOMMU 48882 2.2.3 (I/O Page Tables for Host Translations), 2.2.2 (DTE Mode)"
    levels_allowed = (1, 2, 3, 4, 5)
    level_names = {5: "pde-l5", 4: "pde-l4", 3: "pde-l3", 2: "pde-l2", 1: "pte-l1"}
    leaf_names = {5: "pte-l5", 4: "pte-l4", 3: "pte-l3", 2: "pte-l2"}
    page_sizes = {lv: 1 << (12 + 9 * (lv - 1)) for lv in range(1, 6)}
    fields = (
        Field("pr", 0, 0, doc="present"),
        Field("a", 5, 5, doc="accessed (set by the IOMMU when the DTE enables HAD)"),
        Field("d", 6, 6, "leaf", doc="dirty (HAD)"),
        Field("next_level", 11, 9,
              doc="0: PTE; 1..L-1: level of the next table; 7: size-encoded PTE"),
        Field("addr", 51, 12, doc="address of the next table or the page", address=True),
        Field("u", 59, 59, "leaf", doc="attribute (not used for access control)"),
        Field("fc", 60, 60, "leaf", doc="force coherent"),
        Field("ir", 61, 61, doc="read permission"),
        Field("iw", 62, 62, doc="write permission"),
    )

    def descriptor(self, levels=4, phys_bits=52, had=False):
        """Answers for a walk of ``levels`` levels (the DTE's Mode) with ``phys_bits`` of
        system physical address; ``had`` makes the walk set A (and D on a write), as the
        DTE's HAD field asks (48882 2.2.3, 2.2.2)."""
        self.check_levels(levels)
        # bits above the Mode's width must be zero (not canonical)
        d, high = L.radix(levels, phys_bits, canonical=False)
        d[0, L.G_A] = A if had else 0
        d[0, L.G_D] = D if had else 0
        d[0, L.G_EXEC_READ] = 1           # host tables have no execute right: IR decides
        d[0, L.G_RSVD_REASON] = reason_id("reserved-bit")
        d[0, L.G_NL_SHIFT] = NL_SHIFT
        d[0, L.G_NL_MASK] = NL_MASK
        d[0, L.G_WP_APPLIES] = 0
        for lv in range(1, levels + 1):
            row = d[lv]
            row[L.L_PRESENT_ANY] = PR
            # a leaf is an entry whose Next Level is 0, at every level (level 1 too, so that
            # a non-zero Next Level there is caught as reserved by the walker's NL rule)
            row[L.L_LEAF] = L.LEAF_IF
            row[L.L_LEAF_MASK] = NL_MASK << NL_SHIFT
            row[L.L_LEAF_VAL] = NL_LEAF << NL_SHIFT
            row[L.L_RSVD_TABLE] = high | L.mask(60, 52)
            row[L.L_RSVD_LEAF] = high | L.mask(58, 52)
            row[L.L_LEAF_ADDR] = L.mask(phys_bits - 1, 12 + 9 * (lv - 1))
            for allow in (L.T_ALLOW, L.P_ALLOW):
                row[allow + L.READ] = IR
                row[allow + L.WRITE] = L.to_i64(IW)
        return d

    def fault_code(self, reason, access, user):
        """The event code (48882 2.5): a table read from non-existent memory is a
        PAGE_TAB_HARDWARE_ERROR (2.5.5); every other walk fault is an IO_PAGE_FAULT (2.5.3)
        whose flags (PR, RW, PE, RZ) :mod:`svmkit.amdvi.events` builds."""
        if reason == "non-existent-memory":
            return PAGE_TAB_HARDWARE_ERROR
        return IO_PAGE_FAULT

    # -- entry builders, for tests and scenarios --------------------------------------------

    def table(self, pa, level=None, *, next_level=None, read=True, write=True):
        """A PDE, read at ``level``, pointing at the table at ``pa`` of level
        ``next_level`` (default ``level - 1``; lower skips levels, 48882 2.2.3).

        ``level`` is required: an AMD v1 PDE names the level of its next table, so a
        builder that does not say where the entry goes cannot build one."""
        if level is None:
            raise ValueError("level: an amd_v1 table entry names its next level; pass the "
                             "level of the entry (2 to 5)")
        if next_level is None:
            next_level = level - 1
        if not 1 <= next_level < level:
            raise ValueError(f"next_level={next_level!r} is not allowed at level {level}; "
                             f"allowed: 1 to {level - 1}")
        return (pa | PR | (next_level << NL_SHIFT) | (IR if read else 0)
                | (IW if write else 0))

    def leaf(self, pa, level=1, *, read=True, write=True, fc=False, a=False, d=False):
        """A PTE (Next Level 0) mapping the page at ``pa`` with the default page size of
        ``level``."""
        if level not in self.page_sizes:
            raise ValueError(f"level={level!r} is not allowed; allowed: 1 to 5")
        return (pa | PR | (IR if read else 0) | (IW if write else 0) | (FC if fc else 0)
                | (A if a else 0) | (D if d else 0))


FORMAT = AmdV1()
