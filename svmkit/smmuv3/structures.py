"""SMMUv3 in-memory structures: stream table entries, context descriptors and the level 1
descriptors of two-level tables, as named fields over their 64-bit doublewords.

ARM System Memory Management Unit Architecture Specification, SMMU architecture version 3
(IHI 0070): 3.3 "Data structures and translation procedure", 5.1 "Level 1 Stream Table
Descriptor", 5.2 "Stream Table Entry", 5.3 "Level 1 Context Descriptor", 5.4 "Context
Descriptor"; 6.3.23/6.3.24 SMMU_STRTAB_BASE and SMMU_STRTAB_BASE_CFG. Field positions were
checked against Linux ``arm-smmu-v3.h`` and QEMU ``smmuv3-internal.h``.

Each structure is a :class:`Structure`: ``decode(qwords) -> dict``, ``encode(**fields) ->
tuple`` of doublewords, ``fields`` (name -> :class:`StructField`). Address fields (``ttb0``,
``s1contextptr``, ``l2ptr`` ...) hold the address in place (low bits zero), not shifted.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class StructField:
    """Bits ``hi..lo`` of doubleword ``dword``; ``address`` fields keep the bits in place."""

    name: str
    dword: int
    hi: int
    lo: int
    address: bool = False
    doc: str = ""

    @property
    def width(self):
        return self.hi - self.lo + 1

    def get(self, qwords):
        raw = (qwords[self.dword] >> self.lo) & ((1 << self.width) - 1)
        return raw << self.lo if self.address else raw

    def put(self, qwords, value):
        """``qwords`` (a list) with this field set to ``value``; ValueError if it does not
        fit."""
        value = int(value)
        raw = value >> self.lo if self.address else value
        if raw < 0 or raw >> self.width or (self.address and value & ((1 << self.lo) - 1)):
            what = f"a {self.hi + 1}-bit address aligned to {1 << self.lo}" if self.address \
                else f"0 to {(1 << self.width) - 1}"
            raise ValueError(f"{self.name}={value:#x} does not fit; allowed: {what}")
        m = ((1 << self.width) - 1) << self.lo
        qwords[self.dword] = (qwords[self.dword] & ~m) | (raw << self.lo)
        return qwords


class Structure:
    """A fixed-size structure of ``dwords`` 64-bit doublewords with named fields."""

    def __init__(self, name, dwords, fields, spec):
        self.name = name
        self.dwords = dwords
        self.size = dwords * 8
        self.fields = {f.name: f for f in fields}
        self.spec = spec

    def decode(self, qwords):
        """Named fields of the structure held in ``qwords``."""
        return {name: f.get(qwords) for name, f in self.fields.items()}

    def encode(self, **fields):
        """Doublewords holding ``fields`` (others zero); ValueError for an unknown field or
        a value that does not fit."""
        return self.update((0,) * self.dwords, **fields)

    def update(self, qwords, **fields):
        """``qwords`` with ``fields`` changed."""
        out = list(qwords)
        for name, value in fields.items():
            f = self.fields.get(name)
            if f is None:
                raise ValueError(f"{name!r} is not a field of the {self.name}; allowed: "
                                 + ", ".join(self.fields))
            f.put(out, value)
        return tuple(out)

    def read(self, mem, pa):
        """The doublewords at ``pa`` (no checks: the caller handles missing memory)."""
        return tuple(mem.read_u64(pa + 8 * i) for i in range(self.dwords))


F = StructField

#: IHI 0070 5.2, STE.Config values.
CONFIG_ABORT, CONFIG_BYPASS, CONFIG_S1, CONFIG_S2, CONFIG_NESTED = \
    0b000, 0b100, 0b101, 0b110, 0b111
CONFIGS = {"abort": CONFIG_ABORT, "bypass": CONFIG_BYPASS, "s1": CONFIG_S1, "s2": CONFIG_S2,
           "nested": CONFIG_NESTED}
#: STE.S1Fmt: a linear CD table, or two-level with 4 KiB (64 CDs) or 64 KiB (1024 CDs) leaves.
S1FMT_LINEAR, S1FMT_4K_L2, S1FMT_64K_L2 = 0, 1, 2
S1FMTS = {"linear": S1FMT_LINEAR, "2lvl-4k": S1FMT_4K_L2, "2lvl-64k": S1FMT_64K_L2}
#: STE.S1DSS: what a transaction without a SubstreamID gets when substreams are enabled.
S1DSS_TERMINATE, S1DSS_BYPASS, S1DSS_SSID0 = 0, 1, 2
S1DSSS = {"terminate": S1DSS_TERMINATE, "bypass": S1DSS_BYPASS, "ssid0": S1DSS_SSID0}
#: CD.TG0 and STE.S2TG encodings (TCR_EL1.TG0, VTCR_EL2.TG0) -> granule; CD.TG1 differs.
TG0_GRANULE = {0: 4096, 1: 65536, 2: 16384}
TG1_GRANULE = {1: 16384, 2: 4096, 3: 65536}

STE = Structure("ste", 8, (
    F("v", 0, 0, 0, doc="valid"),
    F("config", 0, 3, 1, doc="000 abort, 100 bypass, 101 stage 1, 110 stage 2, 111 nested"),
    F("s1fmt", 0, 5, 4, doc="CD table: 00 linear, 01 two-level 4 KiB, 10 two-level 64 KiB"),
    F("s1contextptr", 0, 51, 6, True, doc="CD table address (an IPA when stage 2 is on)"),
    F("s1cdmax", 0, 63, 59, doc="log2 of the number of CDs (0: one CD, no substreams)"),
    F("s1dss", 1, 1, 0, doc="no-SubstreamID traffic: 00 terminate, 01 bypass S1, 10 CD 0"),
    F("s1cir", 1, 3, 2), F("s1cor", 1, 5, 4), F("s1csh", 1, 7, 6),
    F("s1stalld", 1, 27, 27, doc="stall disable"),
    F("eats", 1, 29, 28, doc="ATS: 00 abort, 01 translate, 10 split-stage"),
    F("strw", 1, 31, 30, doc="StreamWorld: 00 NS-EL1, 10 EL2"),
    F("memattr", 1, 35, 32), F("mtcfg", 1, 36, 36), F("alloccfg", 1, 40, 37),
    F("shcfg", 1, 45, 44), F("nscfg", 1, 47, 46), F("privcfg", 1, 49, 48),
    F("instcfg", 1, 51, 50),
    F("s2vmid", 2, 15, 0, doc="VMID: tags stage 2 and nested TLB entries"),
    F("s2t0sz", 2, 37, 32, doc="IPA size is 64 - S2T0SZ"),
    F("s2sl0", 2, 39, 38, doc="stage 2 start level"),
    F("s2ir0", 2, 41, 40), F("s2or0", 2, 43, 42), F("s2sh0", 2, 45, 44),
    F("s2tg", 2, 47, 46, doc="stage 2 granule: 00 4 KiB, 01 64 KiB, 10 16 KiB"),
    F("s2ps", 2, 50, 48, doc="stage 2 output size (32, 36, 40, 42, 44, 48, 52 bits)"),
    F("s2aa64", 2, 51, 51, doc="1: VMSAv8-64 stage 2 tables"),
    F("s2endi", 2, 52, 52), F("s2affd", 2, 53, 53, doc="stage 2 AF fault disable"),
    F("s2ptw", 2, 54, 54), F("s2hd", 2, 55, 55), F("s2ha", 2, 56, 56),
    F("s2s", 2, 57, 57, doc="stage 2 stall"),
    F("s2r", 2, 58, 58, doc="stage 2 record faults"),
    F("s2ttb", 3, 51, 4, True, doc="stage 2 translation table base (a PA)"),
), "IHI 0070 5.2")

CD = Structure("cd", 8, (
    F("t0sz", 0, 5, 0, doc="TTB0 input size is 64 - T0SZ"),
    F("tg0", 0, 7, 6, doc="TTB0 granule: 00 4 KiB, 01 64 KiB, 10 16 KiB"),
    F("ir0", 0, 9, 8), F("or0", 0, 11, 10), F("sh0", 0, 13, 12),
    F("epd0", 0, 14, 14, doc="1: no walks through TTB0 (Translation fault)"),
    F("endi", 0, 15, 15),
    F("t1sz", 0, 21, 16), F("tg1", 0, 23, 22, doc="TTB1 granule: 01 16 KiB, 10 4 KiB, 11 64 KiB"),
    F("ir1", 0, 25, 24), F("or1", 0, 27, 26), F("sh1", 0, 29, 28),
    F("epd1", 0, 30, 30, doc="1: no walks through TTB1"),
    F("v", 0, 31, 31, doc="valid"),
    F("ips", 0, 34, 32, doc="intermediate physical size (stage 1 output)"),
    F("affd", 0, 35, 35, doc="access flag fault disable"),
    F("wxn", 0, 36, 36), F("uwxn", 0, 37, 37),
    F("tbi", 0, 39, 38, doc="top byte ignore, bit 0 for TTB0, bit 1 for TTB1"),
    F("pan", 0, 40, 40), F("aa64", 0, 41, 41, doc="1: VMSAv8-64 tables"),
    F("hd", 0, 42, 42), F("ha", 0, 43, 43),
    F("s", 0, 44, 44, doc="stall"), F("r", 0, 45, 45, doc="record faults"),
    F("a", 0, 46, 46, doc="abort (terminate) faulting transactions"),
    F("aset", 0, 47, 47, doc="ASID set: 1 not shared with PEs"),
    F("asid", 0, 63, 48, doc="address space ID: tags stage 1 TLB entries"),
    F("nscfg0", 1, 0, 0), F("had0", 1, 1, 1, doc="hierarchical attributes disable (TTB0)"),
    F("ttb0", 1, 51, 4, True, doc="TTB0 table base (an IPA under nesting)"),
    F("nscfg1", 2, 0, 0), F("had1", 2, 1, 1),
    F("ttb1", 2, 51, 4, True),
    F("mair", 3, 63, 0), F("amair", 4, 63, 0),
), "IHI 0070 5.4")

L1STD = Structure("l1-std", 1, (
    F("span", 0, 4, 0, doc="the level 2 table holds 2^(Span-1) STEs; 0: invalid"),
    F("l2ptr", 0, 51, 6, True, doc="level 2 stream table address"),
), "IHI 0070 5.1")

L1CD = Structure("l1-cd", 1, (
    F("v", 0, 0, 0, doc="valid"),
    F("l2ptr", 0, 51, 12, True, doc="level 2 CD table address (an IPA under nesting)"),
), "IHI 0070 5.3")
