"""AMD-Vi device table entries and GCR3 table entries.

Device Table Entry (DTE): 48882 2.2.2 "Device Table Entry Format" (256 bits, four qwords;
bit numbers here are absolute: bit 64 is bit 0 of the second qword). The device table is
indexed by the 16-bit DeviceID (``bus << 8 | devfn``), 32 bytes an entry.

Modelled fields (absolute bits):
    0 V, 1 TV, 8:7 HAD, 11:9 Mode, 51:12 Host Page Table Root Pointer, 52 PPR, 53 GPRP,
    54 GIoV, 55 GV, 57:56 GLX, 60:58 GCR3 Table Root Pointer[14:12], 61 IR, 62 IW;
    79:64 DomainID, 95:80 GCR3 Table Root Pointer[30:15], 96 I, 97 SE, 98 SA, 100:99 IoCtl,
    101 Cache, 102 SD, 103 EX, 105:104 SysMgt, 127:107 GCR3 Table Root Pointer[51:31];
    128 IV, 132:129 IntTabLen, 133 IG, 179:134 Interrupt Table Root Pointer[51:6],
    183:182 GuestPagingMode (0: 4-level, 1: 5-level guest tables), 184 InitPass,
    185 EIntPass, 186 NMIPass, 189:188 IntCtl, 190 Lint0Pass, 191 Lint1Pass.
Reserved (must be zero, else ILLEGAL_DEV_TABLE_ENTRY): 6:2, 63, 106, 181:180, 187.
The fourth qword (255:192) holds the later revisions' vIOMMU and SNP attribute fields, which
are not modelled: it is ignored, not checked.

The GCR3 table root pointer is split in three (the spec's "GCR3 Table Root Pointer[14:12]",
"[30:15]", "[51:31]"); :func:`gcr3_root` joins them and :func:`encode_dte` splits them.

GCR3 table entry: 48882 2.2, "Guest CR3 table": 64 bits, bit 0 V (GCR3_VALID in Linux),
bits 51:12 the address: the next GCR3 table level, or the guest CR3 in the last level.
Bits 11:1 and 63:52 are reserved. With GLX = g the table has g + 1 levels of 512 entries,
the top indexed by PASID bits 9g+8:9g, the last by PASID bits 8:0 (GLX 3 is reserved).
"""

from dataclasses import dataclass

__all__ = [
    "DteField", "DTE_FIELDS", "DTE_RESERVED", "DTE_SIZE", "decode_dte", "encode_dte",
    "dte_reserved", "gcr3_root", "GCR3_V", "GCR3_ADDR", "GCR3_RESERVED",
    "gcr3_entry", "gcr3_index", "MODE_LEVELS", "GPM_LEVELS",
]

DTE_SIZE = 32


@dataclass(frozen=True)
class DteField:
    """A DTE field at absolute bits ``hi..lo``; ``addr`` True when the value is an address
    whose low ``lo % 64`` bits are implied zero (the field holds address bits hi..lo)."""
    name: str
    hi: int
    lo: int
    addr: bool = False

    @property
    def mask(self):
        return ((1 << (self.hi - self.lo + 1)) - 1) << self.lo


DTE_FIELDS = (
    DteField("v", 0, 0), DteField("tv", 1, 1), DteField("had", 8, 7),
    DteField("mode", 11, 9), DteField("host_pt_root", 51, 12, addr=True),
    DteField("ppr", 52, 52), DteField("gprp", 53, 53), DteField("giov", 54, 54),
    DteField("gv", 55, 55), DteField("glx", 57, 56), DteField("gcr3_14_12", 60, 58),
    DteField("ir", 61, 61), DteField("iw", 62, 62),
    DteField("domain_id", 79, 64), DteField("gcr3_30_15", 95, 80), DteField("i", 96, 96),
    DteField("se", 97, 97), DteField("sa", 98, 98), DteField("ioctl", 100, 99),
    DteField("cache", 101, 101), DteField("sd", 102, 102), DteField("ex", 103, 103),
    DteField("sysmgt", 105, 104), DteField("gcr3_51_31", 127, 107),
    DteField("iv", 128, 128), DteField("inttablen", 132, 129), DteField("ig", 133, 133),
    DteField("int_table_root", 179, 134, addr=True), DteField("gpm", 183, 182),
    DteField("initpass", 184, 184), DteField("eintpass", 185, 185),
    DteField("nmipass", 186, 186), DteField("intctl", 189, 188),
    DteField("lint0pass", 190, 190), DteField("lint1pass", 191, 191),
)
_BY_NAME = {f.name: f for f in DTE_FIELDS}
_IGNORED = ((1 << 64) - 1) << 192          # fourth qword: not modelled
DTE_RESERVED = ((1 << 256) - 1) & ~_IGNORED & ~sum(f.mask for f in DTE_FIELDS)

#: DTE Mode -> levels of the host (v1) table; 0 is "translation disabled" (48882 2.2.2)
MODE_LEVELS = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}
#: GuestPagingMode -> levels of the guest (x86-64) tables
GPM_LEVELS = {0: 4, 1: 5}


def _join(qwords):
    if len(qwords) != 4:
        raise ValueError(f"qwords: a DTE has 4 qwords, got {len(qwords)}")
    v = 0
    for i, q in enumerate(qwords):
        v |= (int(q) & ((1 << 64) - 1)) << (64 * i)
    return v


def decode_dte(qwords):
    """Named fields of a DTE given as four qwords; ``gcr3_root`` joins the three GCR3 parts
    and ``reserved`` holds the reserved bits that are set (0 when well formed)."""
    v = _join(qwords)
    out = {}
    for f in DTE_FIELDS:
        raw = (v & f.mask) >> f.lo
        out[f.name] = raw << (f.lo % 64) if f.addr else raw
    out["gcr3_root"] = (out["gcr3_14_12"] << 12) | (out["gcr3_30_15"] << 15) | (
        out["gcr3_51_31"] << 31)
    out["reserved"] = v & DTE_RESERVED
    return out


def dte_reserved(qwords):
    """The reserved DTE bits that are set, as a 256-bit number (48882 2.2.2)."""
    return _join(qwords) & DTE_RESERVED


def gcr3_root(qwords):
    """The GCR3 Table Root Pointer, joined from its three parts."""
    return decode_dte(qwords)["gcr3_root"]


def encode_dte(*, gcr3_root=0, **fields):
    """The four qwords of a DTE with these fields (others zero). Address fields take the
    address; ``gcr3_root`` (4 KiB aligned) is split into its three parts."""
    if gcr3_root & 0xFFF or not 0 <= gcr3_root < 1 << 52:
        raise ValueError(f"gcr3_root={gcr3_root:#x} is not allowed; allowed: a 4 KiB "
                         "aligned address below 2**52")
    fields.setdefault("gcr3_14_12", (gcr3_root >> 12) & 0x7)
    fields.setdefault("gcr3_30_15", (gcr3_root >> 15) & 0xFFFF)
    fields.setdefault("gcr3_51_31", (gcr3_root >> 31) & 0x1FFFFF)
    v = 0
    for name, value in fields.items():
        f = _BY_NAME.get(name)
        if f is None:
            raise ValueError(f"{name}: not a DTE field; allowed: "
                             f"{', '.join(sorted(_BY_NAME))}, gcr3_root")
        value = int(value)
        if f.addr:
            low = f.lo % 64
            if value & ((1 << low) - 1):
                raise ValueError(f"{name}={value:#x} is not allowed; allowed: a multiple "
                                 f"of {1 << low:#x}")
            value >>= low
        if not 0 <= value < 1 << (f.hi - f.lo + 1):
            raise ValueError(f"{name}={value!r} does not fit in DTE bits {f.hi}:{f.lo}")
        v |= value << f.lo
    return tuple((v >> (64 * i)) & ((1 << 64) - 1) for i in range(4))


GCR3_V = 1
GCR3_ADDR = ((1 << 52) - 1) & ~0xFFF
GCR3_RESERVED = ((1 << 64) - 1) & ~GCR3_ADDR & ~GCR3_V


def gcr3_entry(pa):
    """A valid GCR3 table entry holding ``pa`` (a next-level table or a guest CR3)."""
    if pa & ~GCR3_ADDR:
        raise ValueError(f"pa={pa:#x} is not allowed; allowed: 4 KiB aligned below 2**52")
    return pa | GCR3_V


def gcr3_index(pasid, level):
    """Index into the GCR3 table level ``level`` (GLX is the top, 0 the last) for
    ``pasid`` (48882 2.2 GCR3 table; Linux ``__get_gcr3_pte`` walks it the same way)."""
    return (pasid >> (9 * level)) & 0x1FF
