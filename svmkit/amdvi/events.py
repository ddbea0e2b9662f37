"""AMD-Vi event log entries (48882 2.5 "Event Logging").

Each event is a 128-bit entry; the event code sits in bits 63:60 (EventCode). Codes, named as
the spec's section titles (2.5.2 to 2.5.15):

    0x1 ILLEGAL_DEV_TABLE_ENTRY   0x2 IO_PAGE_FAULT          0x3 DEV_TAB_HARDWARE_ERROR
    0x4 PAGE_TAB_HARDWARE_ERROR   0x5 ILLEGAL_COMMAND_ERROR  0x6 COMMAND_HARDWARE_ERROR
    0x7 IOTLB_INV_TIMEOUT         0x8 INVALID_DEVICE_REQUEST 0x9 INVALID_PPR_REQUEST
    0xA EVENT_COUNTER_ZERO        0xB GUEST_EVENT_FAULT      0xC VIOMMU_HARDWARE_ERROR
    0xD RMP_PAGE_FAULT            0xE RMP_HARDWARE_ERROR

(Linux ``amd_iommu_types.h`` names 0x1-0x9, 0xD and 0xE with these numbers; FreeBSD's
``amdvi_priv.h`` has EVENT_COUNTER_ZERO at 0xA.)

Entry layout used for IO_PAGE_FAULT and ILLEGAL_DEV_TABLE_ENTRY (2.5.2, 2.5.3): bits 15:0
DeviceID; bits 19:16 PASID[19:16]; bits 47:32 PASID[15:0] when GN=1, else DomainID; bits
59:48 flags; bits 63:60 EventCode; bits 127:64 the address (Linux ``iommu_print_event``
reads the same positions). Flags (bit of the 12-bit field): GN 0 (the address is a guest
virtual address with a PASID), NX 1 (execute request), US 2 (user request), I 3 (interrupt
request), PR 4 (the page or DTE was present), RW 5 (write), PE 6 (permission violation),
RZ 7 (a reserved bit was set), TR 8 (translation request, not a transaction).
"""

from dataclasses import dataclass

__all__ = ["EVENT_CODES", "EVENT_NAMES", "FLAGS", "Event", "io_page_fault_flags"]

EVENT_CODES = {
    "ILLEGAL_DEV_TABLE_ENTRY": 0x1,
    "IO_PAGE_FAULT": 0x2,
    "DEV_TAB_HARDWARE_ERROR": 0x3,
    "PAGE_TAB_HARDWARE_ERROR": 0x4,
    "ILLEGAL_COMMAND_ERROR": 0x5,
    "COMMAND_HARDWARE_ERROR": 0x6,
    "IOTLB_INV_TIMEOUT": 0x7,
    "INVALID_DEVICE_REQUEST": 0x8,
    "INVALID_PPR_REQUEST": 0x9,
    "EVENT_COUNTER_ZERO": 0xA,
    "GUEST_EVENT_FAULT": 0xB,
    "VIOMMU_HARDWARE_ERROR": 0xC,
    "RMP_PAGE_FAULT": 0xD,
    "RMP_HARDWARE_ERROR": 0xE,
}
EVENT_NAMES = {code: name for name, code in EVENT_CODES.items()}

FLAGS = {"gn": 0, "nx": 1, "us": 2, "i": 3, "pr": 4, "rw": 5, "pe": 6, "rz": 7, "tr": 8}


def io_page_fault_flags(reason, access, *, gn, user=False, present=None):
    """The flags of an IO_PAGE_FAULT (48882 2.5.3, IO_PAGE_FAULT event types) for a walk
    that stopped with ``reason``: PR says the entry was present (every reason but
    not-present), PE a permission fault, RZ a reserved bit; RW, NX, US the request."""
    if present is None:
        present = reason != "not-present"
    f = 0
    f |= (1 << FLAGS["gn"]) if gn else 0
    f |= (1 << FLAGS["nx"]) if access == "x" else 0
    f |= (1 << FLAGS["us"]) if user else 0
    f |= (1 << FLAGS["pr"]) if present else 0
    f |= (1 << FLAGS["rw"]) if access == "w" else 0
    # ad-permission: the host table refused the write of a guest entry's A/D flags
    f |= (1 << FLAGS["pe"]) if reason in ("permission", "ad-permission") else 0
    f |= (1 << FLAGS["rz"]) if reason == "reserved-bit" else 0
    return f


@dataclass(frozen=True)
class Event:
    """One event-log entry: ``code`` (see :data:`EVENT_CODES`), ``device_id``, ``pasid`` (or
    None), ``domain_id``, ``flags`` (12 bits), ``address``."""
    code: int
    device_id: int
    address: int = 0
    flags: int = 0
    pasid: int | None = None
    domain_id: int = 0

    @property
    def name(self):
        return EVENT_NAMES.get(self.code, f"reserved-{self.code:#x}")

    def flag_names(self):
        return [n.upper() for n, b in FLAGS.items() if self.flags >> b & 1]

    def encode(self):
        """The 128-bit entry as two qwords (low, high)."""
        tag = self.pasid if self.flags & 1 else self.domain_id
        tag = tag or 0
        lo = (self.device_id & 0xFFFF) | (((tag >> 16) & 0xF) << 16) | ((tag & 0xFFFF) << 32)
        lo |= (self.flags & 0xFFF) << 48 | (self.code & 0xF) << 60
        return lo, self.address & ((1 << 64) - 1)

    @classmethod
    def decode(cls, lo, hi):
        code, flags = lo >> 60 & 0xF, lo >> 48 & 0xFFF
        tag = (lo >> 32 & 0xFFFF) | ((lo >> 16 & 0xF) << 16)
        gn = flags & 1
        return cls(code=code, device_id=lo & 0xFFFF, address=hi, flags=flags,
                   pasid=tag if gn else None, domain_id=0 if gn else tag)

    def __str__(self):
        who = f"pasid={self.pasid:#x}" if self.pasid is not None else \
            f"domain={self.domain_id:#06x}"
        return (f"{self.name} device={self.device_id >> 8:02x}:"
                f"{self.device_id >> 3 & 0x1f:02x}.{self.device_id & 7} {who} "
                f"address={self.address:#x} flags={self.flags:#06x} "
                f"[{' '.join(self.flag_names())}]")
