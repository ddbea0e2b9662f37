"""SMMUv3 commands: configuration and TLB invalidation, executed with ``iommu.invalidate``.

IHI 0070, 4.3 "Configuration invalidation" (CMD_CFGI_*), 4.4 "TLB invalidation"
(CMD_TLBI_*), 4.7 "Command queue synchronization" (CMD_SYNC). Opcodes as in the spec (and
Linux ``arm-smmu-v3.h``). Each command is an object with ``.name`` (the spec's name),
``.opcode`` and its fields; ``encode()`` gives the two 64-bit doublewords of the command
queue entry (fields the model uses: opcode 7:0, SSV 11, SSID 31:12, SID 63:32 of CFGI;
VMID 47:32, ASID 63:48 and Leaf/address in the second word of TLBI).

Not modelled: range invalidation (NUM/SCALE/TG/TTL are kept zero: one page per command),
the EL2 and secure commands, ATC_INV, PRI_RESP, RESUME, PREFETCH_*.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """Base class: ``name`` and ``opcode`` are class attributes of each command."""

    name = ""
    opcode = 0

    def encode(self):
        return (self.opcode, 0)

    def __str__(self):
        fields = ", ".join(f"{k}={v:#x}" if isinstance(v, int) and not isinstance(v, bool)
                           else f"{k}={v}" for k, v in self.__dict__.items())
        return f"{self.name}({fields})"


@dataclass(frozen=True)
class CMD_CFGI_STE(Command):
    """Invalidate the cached STE of ``sid`` (and with ``leaf`` False its level 1
    descriptor); cached CDs of the stream go with it (they were reached through it)."""
    sid: int
    leaf: bool = True
    name = "CMD_CFGI_STE"
    opcode = 0x03

    def encode(self):
        return (self.opcode | self.sid << 32, int(self.leaf))


@dataclass(frozen=True)
class CMD_CFGI_STE_RANGE(Command):
    """Invalidate the STEs of the 2^(range+1) StreamIDs around ``sid``."""
    sid: int
    range: int = 0
    name = "CMD_CFGI_STE_RANGE"
    opcode = 0x04

    def encode(self):
        return (self.opcode | self.sid << 32, self.range & 31)


@dataclass(frozen=True)
class CMD_CFGI_CD(Command):
    """Invalidate the cached CD ``ssid`` of stream ``sid``."""
    sid: int
    ssid: int
    leaf: bool = True
    name = "CMD_CFGI_CD"
    opcode = 0x05

    def encode(self):
        return (self.opcode | 1 << 11 | self.ssid << 12 | self.sid << 32, int(self.leaf))


@dataclass(frozen=True)
class CMD_CFGI_CD_ALL(Command):
    """Invalidate every cached CD of stream ``sid``."""
    sid: int
    name = "CMD_CFGI_CD_ALL"
    opcode = 0x06

    def encode(self):
        return (self.opcode | self.sid << 32, 0)


@dataclass(frozen=True)
class CMD_CFGI_ALL(Command):
    """Invalidate all cached configuration (STEs, CDs)."""
    name = "CMD_CFGI_ALL"
    opcode = 0x04

    def encode(self):
        return (self.opcode, 31)        # CFGI_STE_RANGE with Range 31


@dataclass(frozen=True)
class CMD_TLBI_NH_ALL(Command):
    """Invalidate all stage 1 (and nested) entries of ``vmid``."""
    vmid: int = 0
    name = "CMD_TLBI_NH_ALL"
    opcode = 0x10

    def encode(self):
        return (self.opcode | self.vmid << 32, 0)


@dataclass(frozen=True)
class CMD_TLBI_NH_ASID(Command):
    """Invalidate the non-global stage 1 entries of ``asid`` under ``vmid``."""
    asid: int
    vmid: int = 0
    name = "CMD_TLBI_NH_ASID"
    opcode = 0x11

    def encode(self):
        return (self.opcode | self.vmid << 32 | self.asid << 48, 0)


@dataclass(frozen=True)
class CMD_TLBI_NH_VA(Command):
    """Invalidate the stage 1 entries of ``asid`` (and global ones) under ``vmid`` that
    translate ``addr``."""
    asid: int
    addr: int
    vmid: int = 0
    leaf: bool = True
    name = "CMD_TLBI_NH_VA"
    opcode = 0x12

    def encode(self):
        return (self.opcode | self.vmid << 32 | self.asid << 48,
                (self.addr & ~0xFFF & (1 << 64) - 1) | int(self.leaf))


@dataclass(frozen=True)
class CMD_TLBI_NH_VAA(Command):
    """Invalidate the stage 1 entries of any ASID under ``vmid`` that translate ``addr``."""
    addr: int
    vmid: int = 0
    leaf: bool = True
    name = "CMD_TLBI_NH_VAA"
    opcode = 0x13

    def encode(self):
        return (self.opcode | self.vmid << 32, (self.addr & ~0xFFF) | int(self.leaf))


@dataclass(frozen=True)
class CMD_TLBI_S12_VMALL(Command):
    """Invalidate every entry, stage 1, stage 2 and nested, of ``vmid``."""
    vmid: int
    name = "CMD_TLBI_S12_VMALL"
    opcode = 0x28

    def encode(self):
        return (self.opcode | self.vmid << 32, 0)


@dataclass(frozen=True)
class CMD_TLBI_S2_IPA(Command):
    """Invalidate the stage 2 entries of ``vmid`` that translate IPA ``addr``. Nested
    (combined stage 1 + 2) entries are not touched: the spec asks software to follow with
    CMD_TLBI_NH_ALL or CMD_TLBI_S12_VMALL for those."""
    addr: int
    vmid: int
    leaf: bool = True
    name = "CMD_TLBI_S2_IPA"
    opcode = 0x2A

    def encode(self):
        return (self.opcode | self.vmid << 32, (self.addr & ~0xFFF) | int(self.leaf))


@dataclass(frozen=True)
class CMD_TLBI_NSNH_ALL(Command):
    """Invalidate every non-secure, non-hypervisor TLB entry."""
    name = "CMD_TLBI_NSNH_ALL"
    opcode = 0x30


@dataclass(frozen=True)
class CMD_SYNC(Command):
    """Wait for the commands before it to complete (no effect on the model's caches)."""
    name = "CMD_SYNC"
    opcode = 0x46


COMMANDS = (CMD_CFGI_STE, CMD_CFGI_STE_RANGE, CMD_CFGI_CD, CMD_CFGI_CD_ALL, CMD_CFGI_ALL,
            CMD_TLBI_NH_ALL, CMD_TLBI_NH_ASID, CMD_TLBI_NH_VA, CMD_TLBI_NH_VAA,
            CMD_TLBI_S12_VMALL, CMD_TLBI_S2_IPA, CMD_TLBI_NSNH_ALL, CMD_SYNC)

__all__ = ["Command", "COMMANDS"] + [c.__name__ for c in COMMANDS]
