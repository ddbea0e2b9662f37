"""Queued-invalidation descriptors (VT-d §6.5.2).

Each descriptor is a small frozen dataclass with `.name` (the spec's
name), `.encode()` -> four qwords (the 256-bit scalable-mode form; a
legacy 128-bit queue uses the first two) and `decode(qwords)` (module
level) -> the descriptor. The type field is bits 3:0 (bits 11:9 are its
high part, always zero here).

Granularities, by the spec's encodings of the G field (bits 5:4):
- context-cache (§6.5.2.1): 01b global, 10b domain, 11b device (SID, with
  the function mask FM);
- PASID-cache (§6.5.2.2): 00b domain, 01b PASID within domain, 11b global;
- IOTLB (§6.5.2.3): 01b global, 10b domain, 11b page (ADDR, AM: 2^AM
  pages; IH: leaf entries only, keep paging-structure caches);
- PASID-based IOTLB (§6.5.2.4): 10b all non-global entries of a PASID,
  11b page-selective within a PASID (ADDR, AM, IH);
- device-TLB (§6.5.2.5) and PASID-based device-TLB (§6.5.2.6): SID,
  ADDR with the size bit S, and for the latter PASID and G (global);
- invalidation wait (§6.5.2.8): status write of 32-bit data to an address.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["ContextCacheInv", "PasidCacheInv", "IotlbInv", "PasidIotlbInv",
           "DevTlbInv", "PasidDevTlbInv", "InvWait", "decode", "DESCRIPTORS"]

M64 = 0xFFFF_FFFF_FFFF_FFFF


def _check(name, value, bits):
    if not isinstance(value, (int,)) or isinstance(value, bool) and bits != 1:
        raise ValueError(f"{name}: an integer of {bits} bits, got {value!r}")
    if value < 0 or value >> bits:
        raise ValueError(f"{name}: {value:#x} does not fit {bits} bits")


def _gran(cls, g):
    if g not in cls.GRANULARITY:
        raise ValueError(f"granularity: {g!r}; allowed: {sorted(cls.GRANULARITY)}")


class _Desc:
    TYPE = 0
    GRANULARITY: dict = {}

    def __post_init__(self):
        if self.GRANULARITY:
            _gran(type(self), self.granularity)
        for f in fields(self):
            bits = self.WIDTHS.get(f.name)
            if bits:
                _check(f.name, int(getattr(self, f.name)), bits)
        if getattr(self, "addr", 0) & 0xFFF:
            raise ValueError("addr: must be 4 KiB aligned")

    def _g(self):
        return self.GRANULARITY[self.granularity] << 4 if self.GRANULARITY else 0

    @classmethod
    def _gname(cls, qw0):
        g = (qw0 >> 4) & 3
        for k, v in cls.GRANULARITY.items():
            if v == g:
                return k
        return None

    def __str__(self):
        parts = [self.granularity] if self.GRANULARITY else []
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name != "granularity" and v:
                parts.append(f"{f.name}={v:#x}")
        return f"{self.name} {' '.join(parts)}"


@dataclass(frozen=True)
class ContextCacheInv(_Desc):
    """Context-cache invalidate descriptor (VT-d §6.5.2.1), type 1."""
    granularity: str = "global"
    did: int = 0
    sid: int = 0
    fm: int = 0
    name = "cc_inv_dsc"
    TYPE = 1
    GRANULARITY = {"global": 1, "domain": 2, "device": 3}
    WIDTHS = {"did": 16, "sid": 16, "fm": 2}

    def encode(self):
        return (self.TYPE | self._g() | self.did << 16 | self.sid << 32 | self.fm << 48, 0, 0, 0)

    @classmethod
    def from_qwords(cls, q):
        return cls(cls._gname(q[0]), (q[0] >> 16) & 0xFFFF, (q[0] >> 32) & 0xFFFF, (q[0] >> 48) & 3)


@dataclass(frozen=True)
class PasidCacheInv(_Desc):
    """PASID-cache invalidate descriptor (VT-d §6.5.2.2), type 7."""
    granularity: str = "global"
    did: int = 0
    pasid: int = 0
    name = "pc_inv_dsc"
    TYPE = 7
    GRANULARITY = {"domain": 0, "pasid": 1, "global": 3}
    WIDTHS = {"did": 16, "pasid": 20}

    def encode(self):
        return (self.TYPE | self._g() | self.did << 16 | self.pasid << 32, 0, 0, 0)

    @classmethod
    def from_qwords(cls, q):
        return cls(cls._gname(q[0]), (q[0] >> 16) & 0xFFFF, (q[0] >> 32) & 0xFFFFF)


@dataclass(frozen=True)
class IotlbInv(_Desc):
    """IOTLB invalidate descriptor (VT-d §6.5.2.3), type 2. DR/DW (drain)
    are accepted and have no effect in the model."""
    granularity: str = "global"
    did: int = 0
    addr: int = 0
    am: int = 0
    ih: int = 0
    dr: int = 0
    dw: int = 0
    name = "iotlb_inv_dsc"
    TYPE = 2
    GRANULARITY = {"global": 1, "domain": 2, "page": 3}
    WIDTHS = {"did": 16, "am": 6, "ih": 1, "dr": 1, "dw": 1, "addr": 64}

    def encode(self):
        return (self.TYPE | self._g() | self.dw << 6 | self.dr << 7 | self.did << 16,
                self.am | self.ih << 6 | self.addr, 0, 0)

    @classmethod
    def from_qwords(cls, q):
        return cls(cls._gname(q[0]), (q[0] >> 16) & 0xFFFF, q[1] & ~0xFFF & M64,
                   q[1] & 0x3F, (q[1] >> 6) & 1, (q[0] >> 7) & 1, (q[0] >> 6) & 1)


@dataclass(frozen=True)
class PasidIotlbInv(_Desc):
    """PASID-based-IOTLB invalidate descriptor (VT-d §6.5.2.4), type 6.
    "pasid" removes the PASID's non-global entries; "page" the entries
    (global ones too) for 2^AM pages at ADDR."""
    granularity: str = "pasid"
    did: int = 0
    pasid: int = 0
    addr: int = 0
    am: int = 0
    ih: int = 0
    name = "p_iotlb_inv_dsc"
    TYPE = 6
    GRANULARITY = {"pasid": 2, "page": 3}
    WIDTHS = {"did": 16, "pasid": 20, "am": 6, "ih": 1, "addr": 64}

    def encode(self):
        return (self.TYPE | self._g() | self.did << 16 | self.pasid << 32,
                self.am | self.ih << 6 | self.addr, 0, 0)

    @classmethod
    def from_qwords(cls, q):
        return cls(cls._gname(q[0]), (q[0] >> 16) & 0xFFFF, (q[0] >> 32) & 0xFFFFF,
                   q[1] & ~0xFFF & M64, q[1] & 0x3F, (q[1] >> 6) & 1)


@dataclass(frozen=True)
class DevTlbInv(_Desc):
    """Device-TLB invalidate descriptor (VT-d §6.5.2.5), type 3. Sent to
    the device's ATS translation cache; the model has no device TLB, so
    executing it changes nothing here."""
    sid: int = 0
    addr: int = 0
    size: int = 0
    qdep: int = 0
    name = "dev_tlb_inv_dsc"
    TYPE = 3
    WIDTHS = {"sid": 16, "size": 1, "qdep": 5, "addr": 64}

    def encode(self):
        return (self.TYPE | self.qdep << 16 | self.sid << 32, self.size | self.addr, 0, 0)

    @classmethod
    def from_qwords(cls, q):
        return cls((q[0] >> 32) & 0xFFFF, q[1] & ~0xFFF & M64, q[1] & 1, (q[0] >> 16) & 0x1F)


@dataclass(frozen=True)
class PasidDevTlbInv(_Desc):
    """PASID-based-device-TLB invalidate descriptor (VT-d §6.5.2.6), type 8
    (no device TLB in the model: no effect here)."""
    sid: int = 0
    pasid: int = 0
    addr: int = 0
    size: int = 0
    glob: int = 0
    name = "p_dev_tlb_inv_dsc"
    TYPE = 8
    WIDTHS = {"sid": 16, "pasid": 20, "size": 1, "glob": 1, "addr": 64}

    def encode(self):
        return (self.TYPE | self.sid << 16 | self.pasid << 32,
                self.glob | self.size << 11 | self.addr, 0, 0)

    @classmethod
    def from_qwords(cls, q):
        return cls((q[0] >> 16) & 0xFFFF, (q[0] >> 32) & 0xFFFFF, q[1] & ~0xFFF & M64,
                   (q[1] >> 11) & 1, q[1] & 1)


@dataclass(frozen=True)
class InvWait(_Desc):
    """Invalidation wait descriptor (VT-d §6.5.2.8), type 5: with SW set,
    writes `status_data` (32 bits) to `status_addr` once the invalidations
    before it are done."""
    status_write: int = 0
    status_addr: int = 0
    status_data: int = 0
    fence: int = 0
    name = "inv_wait_dsc"
    TYPE = 5
    WIDTHS = {"status_write": 1, "status_data": 32, "fence": 1}

    def __post_init__(self):
        super().__post_init__()
        if self.status_addr & 3 or self.status_addr < 0 or self.status_addr >> 64:
            raise ValueError("status_addr: a 4-byte aligned 64-bit address")

    def encode(self):
        return (self.TYPE | self.status_write << 5 | self.fence << 6 | self.status_data << 32,
                self.status_addr, 0, 0)

    @classmethod
    def from_qwords(cls, q):
        return cls((q[0] >> 5) & 1, q[1] & ~3 & M64, (q[0] >> 32) & 0xFFFFFFFF, (q[0] >> 6) & 1)


DESCRIPTORS = {c.TYPE: c for c in (ContextCacheInv, PasidCacheInv, IotlbInv, PasidIotlbInv,
                                   DevTlbInv, PasidDevTlbInv, InvWait)}


def decode(qwords):
    """The descriptor encoded in `qwords` (2 or 4 qwords). Raises
    ValueError for a type or granularity the spec reserves (hardware
    reports those as an invalidation queue error, IQE)."""
    q = tuple(int(x) & M64 for x in qwords) + (0,) * (4 - len(qwords))
    t = (q[0] & 0xF) | ((q[0] >> 9) & 7) << 4
    cls = DESCRIPTORS.get(t)
    if cls is None:
        raise ValueError(f"qwords: descriptor type {t:#x} not modelled; allowed: "
                         f"{sorted(DESCRIPTORS)}")
    if cls.GRANULARITY and cls._gname(q[0]) is None:
        raise ValueError(f"qwords: reserved granularity {(q[0] >> 4) & 3} for {cls.name}")
    return cls.from_qwords(q)
