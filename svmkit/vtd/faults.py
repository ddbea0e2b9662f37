"""VT-d fault reasons and fault records.

The numbers are the fault-reason encodings of VT-d §7.1.3 (legacy mode,
0x1-0xD) and of the scalable-mode table in the same section (0x30-0x90;
the spec labels these conditions SRTA.*, SRT.*, SCT.*, SPD.*, SPT.*,
SFS.*, SSS.*, SGN.*). Each entry is (stable short name, what happened).
The short names are the ones `Fault.reason` uses across svmkit; the
descriptions are this project's wording.

Fault recording (VT-d §7.1.2, §10.4.14 fault recording registers): a
record holds the source-id, the PASID if the request had one, the page
address of the faulting request, read or write, and the reason. Faults
the spec calls "qualified" are not recorded when a Fault Processing
Disable (FPD) bit is set in an entry used for the request.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LEGACY_REASONS", "SCALABLE_REASONS", "FaultRecord", "describe",
           "NON_QUALIFIED", "OUT_OF_SCOPE"]

#: Legacy-mode fault reasons (VT-d §7.1.3, legacy table).
LEGACY_REASONS = {
    0x1: ("not-present", "root entry not present"),
    0x2: ("not-present", "context entry not present"),
    0x3: ("invalid-entry", "context entry programmed with an invalid value"),
    0x4: ("address-width", "input address beyond the domain's address width"),
    0x5: ("permission", "write to a page without write permission"),
    0x6: ("permission", "read of a page without read permission"),
    0x7: ("non-existent-memory", "second-level paging entry could not be read"),
    0x8: ("non-existent-memory", "root entry could not be read"),
    0x9: ("non-existent-memory", "context entry could not be read"),
    0xA: ("reserved-bit", "reserved bit set in a root entry"),
    0xB: ("reserved-bit", "reserved bit set in a context entry"),
    0xC: ("reserved-bit", "reserved bit set in a second-level paging entry"),
    0xD: ("blocked", "request blocked by the context entry's translation type"),
}

#: Scalable-mode fault reasons (VT-d §7.1.3, scalable-mode table).
SCALABLE_REASONS = {
    0x30: ("invalid-entry", "root table address invalid"),
    0x31: ("ttm-pasid", "request with PASID while the root table is in legacy mode"),
    0x32: ("ttm-pasid", "page request while the root table is in legacy mode"),
    0x38: ("non-existent-memory", "root entry could not be read"),
    0x39: ("not-present", "root entry not present"),
    0x3A: ("reserved-bit", "reserved bit set in a root entry"),
    0x40: ("non-existent-memory", "context entry could not be read"),
    0x41: ("not-present", "context entry not present"),
    0x42: ("reserved-bit", "reserved bit set in a context entry"),
    0x43: ("invalid-entry", "context entry programmed with an invalid value"),
    0x44: ("blocked", "translation request while DTE is clear"),
    0x45: ("pasid-disabled", "request with PASID while PASIDE is clear"),
    0x46: ("pasid-range", "PASID beyond the PASID directory size (PDTS)"),
    0x47: ("blocked", "page request while PRE is clear"),
    0x48: ("invalid-entry", "RID_PASID not usable"),
    0x50: ("non-existent-memory", "PASID-directory entry could not be read"),
    0x51: ("not-present", "PASID-directory entry not present"),
    0x52: ("reserved-bit", "reserved bit set in a PASID-directory entry"),
    0x58: ("non-existent-memory", "PASID-table entry could not be read"),
    0x59: ("not-present", "PASID-table entry not present"),
    0x5A: ("reserved-bit", "reserved bit set in a PASID-table entry"),
    0x5B: ("invalid-entry", "PASID-table entry programmed with an invalid value"),
    0x5C: ("execute-disabled", "execute request while ERE is clear"),
    0x5D: ("supervisor-disabled", "supervisor request while SRE is clear"),
    0x70: ("non-existent-memory", "first-level paging entry could not be read"),
    0x71: ("not-present", "first-level paging entry not present"),
    0x72: ("reserved-bit", "reserved bit set in a first-level paging entry"),
    0x73: ("non-existent-memory", "first-level table pointer (FLPTPTR) invalid"),
    0x74: ("address-width", "nested: first-level table GPA beyond the second-level width"),
    0x75: ("permission", "nested: second level denies reading the top first-level table"),
    0x76: ("permission", "nested: second level denies reading a first-level table"),
    0x77: ("ad-permission", "nested: second level denies the A/D update of a first-level entry"),
    0x78: ("non-existent-memory", "second-level paging entry could not be read"),
    0x79: ("not-present", "second-level paging entry has neither read nor write"),
    0x7A: ("reserved-bit", "reserved bit set in a second-level paging entry"),
    0x7B: ("non-existent-memory", "second-level table pointer (SLPTPTR) invalid"),
    0x7C: ("access-flag", "second-level A/D update needed without snoop"),
    0x80: ("non-canonical", "first-level input address not canonical"),
    0x81: ("permission", "user request to a supervisor page (U/S clear)"),
    0x82: ("permission", "execute request to a no-execute page"),
    0x83: ("address-width", "input address beyond the address width in force"),
    0x84: ("address-size", "second-level entry address beyond the host address width"),
    0x85: ("permission", "write or atomic request without write permission"),
    0x86: ("permission", "read or atomic request without read permission"),
    0x87: ("interrupt-address", "translated address in the interrupt range"),
    0x90: ("access-flag", "first-level A/D update needed without snoop"),
}

#: Reasons the model never produces, with why: the conditions need
#: requests or attributes it does not have. Every other number of the two
#: tables is produced (tests/test_vtd_faults.py keeps the account).
OUT_OF_SCOPE = {
    0x32: "page requests (PRI) are not modelled (§7.1.3, §7.4)",
    0x44: "translation requests (ATS) and device-TLBs are not modelled (§7.1.3, §9.4 DTE)",
    0x47: "page requests (PRI) are not modelled (§7.1.3, §9.4 PRE)",
    0x7C: "no snoop attribute is modelled: A/D updates always snoop (§7.1.3, §9.6 PWSNP)",
    0x90: "no snoop attribute is modelled: A/D updates always snoop (§7.1.3, §9.6 PWSNP)",
}

#: Reasons the spec does not let FPD suppress (VT-d §7.1.2: no context
#: entry is yet known, so there is no FPD to honour).
NON_QUALIFIED = {
    "legacy": frozenset({0x1, 0x8, 0x9, 0xA}),
    "scalable": frozenset({0x30, 0x31, 0x32, 0x38, 0x39, 0x3A, 0x40}),
}


def describe(code: int, mode: str) -> tuple:
    """(short name, description) of reason `code` in `mode` ("legacy",
    "scalable" or "extended").

    Legacy mode reports a request with PASID with the scalable table's
    0x31. The extended-context (VT-d 2.x) model uses the legacy numbers for
    root, context and second-level conditions and, as a simplification,
    the scalable numbers for PASID-table and first-level ones (2.x had its
    own, now retired, encodings for these)."""
    if mode not in ("legacy", "scalable", "extended"):
        raise ValueError(f"mode: {mode!r}; allowed: 'legacy', 'scalable', 'extended'")
    first, other = ((SCALABLE_REASONS, LEGACY_REASONS) if mode == "scalable"
                    else (LEGACY_REASONS, SCALABLE_REASONS))
    return first.get(code) or other.get(code) or ("unknown", f"reason {code:#x}")


@dataclass(frozen=True)
class FaultRecord:
    """One primary fault record (VT-d §10.4.14: FRCD_REG): SID, PASID
    present and value, FI (the faulting page address), T (read or write),
    EXE and PRIV, FR (the reason). `access` is "r", "w" or "x"."""
    source_id: int
    pasid: int | None
    address: int
    access: str
    privileged: bool
    code: int
    reason: str
    description: str

    @property
    def fi(self) -> int:
        """The fault-info field: the page address (bits 63:12)."""
        return self.address & ~0xFFF

    def __str__(self):
        b, d, f = self.source_id >> 8, (self.source_id >> 3) & 0x1F, self.source_id & 7
        p = "NO_PASID" if self.pasid is None else f"PASID {self.pasid:#x}"
        kind = {"r": "DMA Read", "w": "DMA Write", "x": "DMA Exec"}[self.access]
        return (f"[{kind} {p}] {b:02x}:{d:02x}.{f} addr {self.fi:#x} "
                f"reason {self.code:#04x} {self.description}")
