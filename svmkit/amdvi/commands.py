"""AMD-Vi commands (48882 2.4 "Commands"): 128-bit entries in the command buffer, the opcode in
bits 63:60.

    0x1 COMPLETION_WAIT             0x2 INVALIDATE_DEVTAB_ENTRY   0x3 INVALIDATE_IOMMU_PAGES
    0x4 INVALIDATE_IOTLB_PAGES      0x5 INVALIDATE_INTERRUPT_TABLE
    0x6 PREFETCH_IOMMU_PAGES        0x7 COMPLETE_PPR_REQUEST      0x8 INVALIDATE_IOMMU_ALL

Layouts follow 2.4.1-2.4.8 (the same dword positions as Linux ``build_inv_dte`` and
``build_inv_iommu_pages``): dword 0 DeviceID or PASID, dword 1 DomainID with the opcode in
bits 31:28, dwords 2-3 the address with S (bit 0), PDE (bit 1) and GN (bit 2) in its low
bits. With S=1 the address also encodes the size: the lowest clear bit at or above bit 12,
bit z, makes the range 2**(z+1) bytes aligned on its size; 0x7FFFFFFFFFFFF000 with S=1 is
every address (Linux ``CMD_INV_IOMMU_ALL_PAGES_ADDRESS``).

Commands are values; ``Iommu.invalidate(cmd)`` executes one against the model's caches.
"""

from dataclasses import dataclass

__all__ = ["Command", "OPCODES", "ALL_PAGES", "completion_wait", "invalidate_devtab_entry",
           "invalidate_iommu_pages", "invalidate_iotlb_pages", "invalidate_iommu_all",
           "invalidate_interrupt_table", "encode_range", "decode_range"]

OPCODES = {
    "COMPLETION_WAIT": 0x1,
    "INVALIDATE_DEVTAB_ENTRY": 0x2,
    "INVALIDATE_IOMMU_PAGES": 0x3,
    "INVALIDATE_IOTLB_PAGES": 0x4,
    "INVALIDATE_INTERRUPT_TABLE": 0x5,
    "PREFETCH_IOMMU_PAGES": 0x6,
    "COMPLETE_PPR_REQUEST": 0x7,
    "INVALIDATE_IOMMU_ALL": 0x8,
}
ALL_PAGES = 0x7FFF_FFFF_FFFF_F000


@dataclass(frozen=True)
class Command:
    """One command: ``name`` (the spec's), and the operands it has (others None/False)."""
    name: str
    device_id: int | None = None
    domain_id: int | None = None
    pasid: int | None = None
    address: int = 0
    s: bool = False
    pde: bool = False
    gn: bool = False

    @property
    def opcode(self):
        return OPCODES[self.name]

    def range(self):
        """(base, size) of the addresses an INVALIDATE_*_PAGES command covers."""
        if not self.s:
            return self.address & ~0xFFF, 1 << 12
        return decode_range(self.address)

    def encode(self):
        """The command as four dwords (48882 2.4)."""
        d0 = self.device_id if self.device_id is not None else 0
        if self.gn and self.pasid is not None:
            d0 = self.pasid & 0xFFFFF
        d1 = (self.domain_id or 0) & 0xFFFF | (self.opcode << 28)
        lo = (self.address & 0xFFFF_F000) | int(self.s) | int(self.pde) << 1 | int(self.gn) << 2
        return d0, d1, lo, (self.address >> 32) & 0xFFFF_FFFF

    def __str__(self):
        parts = [self.name]
        for k in ("device_id", "domain_id", "pasid"):
            v = getattr(self, k)
            if v is not None:
                parts.append(f"{k}={v:#x}")
        if self.name in ("INVALIDATE_IOMMU_PAGES", "INVALIDATE_IOTLB_PAGES"):
            base, size = self.range()
            parts.append("all" if size >= 1 << 63 else f"{base:#x}+{size:#x}")
            parts += [f for f in ("pde", "gn") if getattr(self, f)]
        return " ".join(parts)


def encode_range(base, size):
    """The S=1 address for the naturally aligned range ``base``..``base+size`` (size a power
    of two of at least 8 KiB), or the 4 KiB page address when ``size`` is 4 KiB."""
    if size & (size - 1) or size < 1 << 12 or base % size:
        raise ValueError(f"size={size:#x}/base={base:#x}: the range must be a power of two "
                         "of at least 4 KiB, aligned on its size")
    if size == 1 << 12:
        return base, False
    return base | ((size >> 1) - 1) & ~0xFFF, True


def decode_range(address):
    z = 12
    while z < 64 and address >> z & 1:
        z += 1
    size = 1 << (z + 1) if z < 63 else 1 << 64
    return address & ~(size - 1) & ((1 << 64) - 1), size


def completion_wait():
    return Command("COMPLETION_WAIT")


def invalidate_devtab_entry(device_id):
    """Drop the cached DTE of ``device_id`` (48882 2.4.2)."""
    return Command("INVALIDATE_DEVTAB_ENTRY", device_id=device_id)


def invalidate_iommu_pages(domain_id, address=None, size=1 << 12, *, pasid=None, pde=True):
    """Drop cached translations of ``domain_id`` (48882 2.4.3): host (GN=0) translations, or
    with ``pasid`` the guest (GN=1) translations of that PASID. ``address`` None means every
    address; ``pde`` also drops cached directory entries."""
    if address is None:
        addr, s = ALL_PAGES, True
    else:
        addr, s = encode_range(address & ~(size - 1), size)
    return Command("INVALIDATE_IOMMU_PAGES", domain_id=domain_id, pasid=pasid, address=addr,
                   s=s, pde=pde, gn=pasid is not None)


def invalidate_iotlb_pages(device_id, address=None, size=1 << 12, *, pasid=None):
    """Invalidate the device's own IOTLB (ATS) (48882 2.4.4). The device TLB is not modelled:
    the command is recorded and changes no IOMMU cache."""
    if address is None:
        addr, s = ALL_PAGES, True
    else:
        addr, s = encode_range(address & ~(size - 1), size)
    return Command("INVALIDATE_IOTLB_PAGES", device_id=device_id, pasid=pasid, address=addr,
                   s=s, gn=pasid is not None)


def invalidate_interrupt_table(device_id):
    return Command("INVALIDATE_INTERRUPT_TABLE", device_id=device_id)


def invalidate_iommu_all():
    """Drop everything the IOMMU caches (48882 2.4.8)."""
    return Command("INVALIDATE_IOMMU_ALL")
