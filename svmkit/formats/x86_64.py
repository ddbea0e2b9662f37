"""IA-32e (x86-64) paging: a CPU's CR3, VT-d first-level tables, AMD guest tables.

Implements Intel SDM Vol. 3A, chapter 4.5 "4-Level Paging and 5-Level Paging", with the
entry formats of Tables 4-15 to 4-20, the access rights of 4.6 and the accessed and dirty
flags of 4.8. VT-d uses the same format for first-stage tables (VT-d spec 3.6 "First-Stage
Translation" and 9.7 "First-Stage Paging Entries"), and so does AMD-Vi for guest tables.

Levels (walker numbering : SDM name):
    5 : PML5E   4 : PML4E   3 : PDPTE (1 GiB leaf with PS)   2 : PDE (2 MiB leaf with PS)
    1 : PTE

Modelled: P, R/W, U/S, PWT, PCD, A, D, PS, G, the address, XD (EFER.NXE=1). Reserved: address
bits 51:MAXPHYADDR (``phys_bits``) in every entry, PS in PML5E/PML4E, bits 29:13 of a 1 GiB
leaf and 20:13 of a 2 MiB leaf (bit 12 is PAT there). Not modelled: protection keys, SMEP,
SMAP, PAT/MTRR memory types (bits kept and shown, never used).
"""

from . import layout as L
from .base import Field, Format
from ..walker.faults import reason_id

P, RW, US, PWT, PCD, A, D, PS, G = (1 << i for i in range(9))
XD = 1 << 63


class X86_64(Format):
    name = "x86_64"
    spec = "Intel SDM Vol. 3A 4.5 (Tables 4-15..4-20), 4.6, 4.8"
    levels_allowed = (4, 5)
    level_names = {5: "pml5e", 4: "pml4e", 3: "pdpte", 2: "pde", 1: "pte"}
    leaf_names = {3: "pdpte-1g", 2: "pde-2m"}
    page_sizes = {1: 1 << 12, 2: 1 << 21, 3: 1 << 30}
    fields = (
        Field("p", 0, 0, doc="present"),
        Field("rw", 1, 1, doc="read/write: 0 forbids writes below this entry"),
        Field("us", 2, 2, doc="user/supervisor: 0 forbids user accesses"),
        Field("pwt", 3, 3), Field("pcd", 4, 4),
        Field("a", 5, 5, doc="accessed"),
        Field("d", 6, 6, "leaf", doc="dirty"),
        Field("ps", 7, 7, doc="page size (PDPTE, PDE)"),
        Field("g", 8, 8, "leaf", doc="global"),
        Field("addr", 51, 12, doc="address of the next table or the page", address=True),
        Field("xd", 63, 63, doc="execute disable"),
    )

    def descriptor(self, levels=4, phys_bits=52, nxe=True):
        """Answers for a ``levels``-deep walk with MAXPHYADDR ``phys_bits`` (SDM 4.1.4)."""
        self.check_levels(levels)
        d, high = L.radix(levels, phys_bits, canonical=True)
        if not nxe:
            high |= L.to_i64(XD)
        d[0, L.G_A] = A
        d[0, L.G_D] = D
        d[0, L.G_EXEC_READ] = 1
        d[0, L.G_RSVD_REASON] = reason_id("reserved-bit")
        d[0, L.G_WP_APPLIES] = 1
        L.ps_leaves(d, phys_bits, high, PS, 13)
        for lv in range(1, levels + 1):
            row = d[lv]
            row[L.L_PRESENT_ANY] = P
            row[L.L_RSVD_TABLE] = high | (PS if lv > 3 else 0)   # PS reserved in PML4E/PML5E
            for allow, deny in ((L.T_ALLOW, L.T_DENY), (L.P_ALLOW, L.P_DENY)):
                row[allow + L.WRITE] = RW
                row[allow + L.USER] = US
                row[deny + L.XUSER] = L.to_i64(XD)
                row[deny + L.XPRIV] = L.to_i64(XD)
        return d

    def fault_code(self, reason, access, user):
        """The #PF error code (SDM 4.7): P, W/R, U/S, RSVD, I/D. None where a CPU would not
        raise #PF (a non-canonical address gives #GP; non-existent memory a machine check)."""
        if reason in ("non-existent-memory", "address-width"):
            return None
        code = 0 if reason == "not-present" else 1
        code |= 2 if access == "w" else 0
        code |= 4 if user else 0
        code |= 8 if reason == "reserved-bit" else 0
        code |= 16 if access == "x" else 0
        return code

    # -- entry builders, for tests and scenarios --------------------------------------------

    def table(self, pa, *, write=True, user=True, xd=False):
        """A present table entry pointing at the table at ``pa``."""
        return pa | P | (RW if write else 0) | (US if user else 0) | (XD if xd else 0)

    def leaf(self, pa, level=1, *, write=True, user=True, xd=False, a=False, d=False, g=False):
        """A present leaf mapping the page at ``pa`` at ``level`` (PS set above level 1)."""
        e = pa | P | (RW if write else 0) | (US if user else 0) | (XD if xd else 0)
        e |= (A if a else 0) | (D if d else 0) | (G if g else 0)
        return e | (PS if level > 1 else 0)


FORMAT = X86_64()
