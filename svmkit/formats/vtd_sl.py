"""VT-d second-level (second-stage) paging entries: GPA (or IOVA) to HPA.

Implements Intel VT-d Architecture Specification 3.7 "Second-Stage Translation" and 9.8
"Second-Stage Paging Entries" (older revisions: "Second-Level", same bits).

Levels (walker numbering : spec name):
    5 : SL-PML5E   4 : SL-PML4E   3 : SL-PDPTE (1 GiB leaf with PS)
    2 : SL-PDE (2 MiB leaf with PS)   1 : SL-PTE
The width (AW in the context or PASID-table entry) picks the depth: 39-bit 3 levels, 48-bit 4,
57-bit 5; an input address beyond it faults (address-width).

Bits: R 0, W 1, X 2 (used only with execute requests enabled, ``slee``), EMT 5:3 and IPAT 6
(leaf memory type), PS 7, A 8 and D 9 (only with SSADE, ``ad``), SNP 11 (leaf only), address
51:12, TM 62 (leaf only). There is no present bit: an entry with R and W (and X when execute
requests are enabled) clear is not present (3.7). Reserved: address bits 51:HAW in every
entry, PS in SL-PML5E/SL-PML4E, SNP and TM in non-leaf entries, bits 20:12 of a 2 MiB and 29:12
of a 1 GiB leaf.
"""

from . import layout as L
from .base import Field, Format
from ..walker.faults import reason_id

R, W, X = 1, 2, 4
PS = 1 << 7
A, D = 1 << 8, 1 << 9
SNP = 1 << 11
TM = 1 << 62


class VtdSecondLevel(Format):
    name = "vtd_sl"
    stage_name = "second"
    spec = "Intel VT-d 3.7, 9.8"
    levels_allowed = (3, 4, 5)
    level_names = {5: "sl-pml5e", 4: "sl-pml4e", 3: "sl-pdpte", 2: "sl-pde", 1: "sl-pte"}
    leaf_names = {3: "sl-pdpte-1g", 2: "sl-pde-2m"}
    page_sizes = {1: 1 << 12, 2: 1 << 21, 3: 1 << 30}
    fields = (
        Field("r", 0, 0, doc="read"), Field("w", 1, 1, doc="write"),
        Field("x", 2, 2, doc="execute (with execute requests enabled)"),
        Field("emt", 5, 3, "leaf", doc="extended memory type"),
        Field("ipat", 6, 6, "leaf", doc="ignore PAT"),
        Field("ps", 7, 7, doc="page size"),
        Field("a", 8, 8, doc="accessed (SSADE)"), Field("d", 9, 9, "leaf", doc="dirty (SSADE)"),
        Field("snp", 11, 11, "leaf", doc="snoop"),
        Field("addr", 51, 12, doc="address of the next table or the page", address=True),
        Field("tm", 62, 62, "leaf", doc="transient mapping"),
    )

    def descriptor(self, levels=4, phys_bits=52, ad=False, slee=False):
        """Answers for a ``levels``-deep walk with host address width ``phys_bits`` (HAW);
        ``ad`` enables accessed/dirty flags (SSADE), ``slee`` execute permission (X)."""
        self.check_levels(levels)
        d, high = L.radix(levels, phys_bits, canonical=False)
        d[0, L.G_A] = A if ad else 0
        d[0, L.G_D] = D if ad else 0
        d[0, L.G_EXEC_READ] = 1
        d[0, L.G_RSVD_REASON] = reason_id("reserved-bit")
        d[0, L.G_WP_APPLIES] = 0
        L.ps_leaves(d, phys_bits, high, PS, 12)
        for lv in range(1, levels + 1):
            row = d[lv]
            row[L.L_PRESENT_ANY] = R | W | (X if slee else 0)
            # SNP and TM are leaf bits; PS is reserved in SL-PML4E/SL-PML5E
            row[L.L_RSVD_TABLE] = high | SNP | L.to_i64(TM) | (PS if lv > 3 else 0)
            for allow in (L.T_ALLOW, L.P_ALLOW):
                row[allow + L.READ] = R
                row[allow + L.WRITE] = W
                row[allow + L.XUSER] = X if slee else 0
                row[allow + L.XPRIV] = X if slee else 0
        return d

    def fault_code(self, reason, access, user):
        """Legacy-mode fault reasons (VT-d 7.1.3, Table "Unrecoverable Fault Conditions"):
        4 address beyond MGAW, 5 write not permitted, 6 read not permitted, 7 next table
        pointer invalid, 0xC reserved field set in a paging entry. A model in scalable mode
        maps reasons to its own numbers."""
        if reason == "ad-permission":   # only nested walks have it, and only scalable mode nests
            return 0x77
        if reason in ("not-present", "permission"):
            return 5 if access == "w" else 6
        return {"address-width": 4, "non-existent-memory": 7, "reserved-bit": 0xC}.get(reason)

    # -- entry builders ------------------------------------------------------------------------

    def table(self, pa, *, r=True, w=True, x=False):
        """A table entry pointing at ``pa`` granting the rights given."""
        return pa | (R if r else 0) | (W if w else 0) | (X if x else 0)

    def leaf(self, pa, level=1, *, r=True, w=True, x=False, snp=False, emt=6):
        """A leaf mapping ``pa`` at ``level`` (PS above level 1); EMT 6 is write-back."""
        e = pa | (R if r else 0) | (W if w else 0) | (X if x else 0) | (emt << 3)
        return e | (SNP if snp else 0) | (PS if level > 1 else 0)


FORMAT = VtdSecondLevel()
