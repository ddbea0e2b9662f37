"""VMSAv8-64 stage 1 translation tables: what an SMMUv3 context descriptor (CD) points at.

Implements the Arm Architecture Reference Manual for A-profile (Arm ARM), chapter D8 "The
AArch64 Virtual Memory System Architecture" (D5 in older issues): translation granules and
lookup levels (D8.2), the descriptor formats (D8.3 "Translation table descriptor formats":
invalid, table, block and page descriptors), stage 1 access permissions AP[2:1], UXN and PXN
and the hierarchical APTable, UXNTable and PXNTable controls (D8.4), the Access flag (D8.5)
and the fault kinds of D8.11/D8.12 as SMMUv3 reports them (IHI 0070, 7.3 "Event records").
SMMUv3 uses this format for the tables of a CD (IHI 0070, 5.4 "Context Descriptor":
TTB0/TTB1, T0SZ, TG0, IPS, AFFD, HAD0/1).

Levels. Arm numbers lookup levels 0 (top) to 3 (leaf-most); the walker numbers them 1
(leaf-most) upwards, so walker level w is Arm level 4 - w whatever the granule:
    4 : level 0   3 : level 1   2 : level 2   1 : level 3
A walk starts at the level that the input size (64 - T0SZ) requires; the top table may be
smaller than a granule (fewer index bits).

Granules (IHI 0070 CD.TG0; Arm ARM D8.2): 4 KiB (9 index bits a level, blocks at levels 1 and
2: 1 GiB and 2 MiB), 16 KiB (11 bits, block at level 2: 32 MiB) and 64 KiB (13 bits, block at
level 2: 512 MiB). Level 1 blocks with 16/64 KiB and level 0 blocks need 52-bit addressing
(FEAT_LPA, FEAT_LPA2): not modelled, output addresses stop at 48 bits.

Descriptor bits[1:0]: x0 invalid; 01 a block at levels that allow one, reserved (invalid)
elsewhere, including level 3; 11 a table, or at level 3 a page.

Leaf (block/page) bits: AttrIndx 4:2, NS 5, AP[2:1] 7:6, SH 9:8, AF 10, nG 11, output
address 47:granule, DBM 51, Contiguous 52, PXN 53, UXN 54. Table bits: next-level table
address 47:granule, PXNTable 59, UXNTable 60, APTable 62:61, NSTable 63.

Faults: an invalid descriptor or an input address beyond the input size is a Translation
fault (F_TRANSLATION); an output or table address beyond the output size (CD.IPS) an
Address size fault (F_ADDR_SIZE: those bits are the format's only "reserved" bits); AF clear
without hardware update an Access flag fault (F_ACCESS, unless CD.AFFD); rights a Permission
fault (F_PERMISSION); a table read that hits no memory an external abort (F_WALK_EABT).

Not modelled (shown, never used): memory attributes, shareability, NS, nG, DBM and hardware
Access/dirty flag updates (HTTU: the SMMU behaves as one without it), the Contiguous hint
(a hint: the translation is the same with or without it). Execute permission is simplified:
the implicit PXN of EL0-writable memory (AP=01), WXN/UWXN and EL0 execute-only memory are not
expressible as descriptor masks (see ``descriptor``).
"""

from . import layout as L
from .base import Field, Format
from ..walker.faults import reason_id

VALID = 1 << 0
TABLE = 1 << 1                      # bits[1:0] = 11: table (levels 0-2) or page (level 3)
AP1 = 1 << 6                        # AP[1]: EL0 (unprivileged) access allowed
AP2 = 1 << 7                        # AP[2]: read-only
AF = 1 << 10
NG = 1 << 11
DBM = 1 << 51
CONTIGUOUS = 1 << 52
PXN = 1 << 53
UXN = 1 << 54
PXNTABLE = 1 << 59
UXNTABLE = 1 << 60
APTABLE0 = 1 << 61                  # APTable[0]: no EL0 access below
APTABLE1 = 1 << 62                  # APTable[1]: no write access below
NSTABLE = 1 << 63

GRANULES = (4096, 16384, 65536)
#: Output sizes of the IPS/PS/OAS encodings 0..6 (IHI 0070 SMMU_IDR5.OAS, CD.IPS, STE.S2PS).
PA_SIZES = (32, 36, 40, 42, 44, 48, 52)
MAX_OA = 48          # without FEAT_LPA/LPA2 a 52-bit PS behaves as 48 bits (Arm ARM D8.2)

# Fault reason -> SMMUv3 event number (IHI 0070, 7.3 "Event records").
EVENT_OF_REASON = {
    "not-present": 0x10,            # F_TRANSLATION
    "address-width": 0x10,          # F_TRANSLATION: input address beyond T0SZ
    "reserved-bit": 0x10,           # not produced by this format; invalid descriptor otherwise
    "address-size": 0x11,           # F_ADDR_SIZE
    "access-flag": 0x12,            # F_ACCESS
    "permission": 0x13,             # F_PERMISSION
    "non-existent-memory": 0x0B,    # F_WALK_EABT
}


def granule_bits(granule):
    """log2 of the granule; ValueError unless 4, 16 or 64 KiB."""
    if granule not in GRANULES:
        raise ValueError(f"granule={granule!r} is not allowed; allowed: "
                         + ", ".join(map(str, GRANULES)))
    return granule.bit_length() - 1


def level_shift(level, granule):
    """Lowest input-address bit that walker ``level`` (1 = Arm level 3) indexes."""
    g = granule_bits(granule)
    return g + (g - 3) * (level - 1)


def levels_for(input_bits, granule):
    """Number of lookup levels a stage 1 walk of ``input_bits`` needs (Arm ARM D8.2: the
    start level is the one whose index still covers the top input bit)."""
    g = granule_bits(granule)
    stride = g - 3
    return -(-(input_bits - g) // stride)


def oa_bits(phys_bits):
    """The effective output size for ``phys_bits`` (one of PA_SIZES)."""
    if phys_bits not in PA_SIZES:
        raise ValueError(f"phys_bits={phys_bits!r} is not allowed; allowed: "
                         + ", ".join(map(str, PA_SIZES)))
    return min(phys_bits, MAX_OA)


class Arm64Stage1(Format):
    name = "arm64_s1"
    stage = 1
    spec = "Arm ARM D8.2-D8.5 (VMSAv8-64 stage 1); SMMUv3 IHI 0070 5.4, 7.3"
    levels_allowed = (1, 2, 3, 4)
    prefix = "s1"
    level_names = {4: "s1-l0", 3: "s1-l1", 2: "s1-l2", 1: "s1-l3"}
    leaf_names = {3: "s1-l1-block", 2: "s1-l2-block", 1: "s1-l3-page"}
    page_sizes = {1: 1 << 12, 2: 1 << 21, 3: 1 << 30}       # 4 KiB granule
    #: walker levels that may hold a block, by granule (without 52-bit addressing)
    block_levels = {4096: (2, 3), 16384: (2,), 65536: (2,)}
    min_input_bits = 25             # T0SZ <= 39 (IHI 0070 CD.T0SZ)
    max_concatenated = 0            # extra top-level index bits (stage 2 concatenation)
    fields = (
        Field("valid", 0, 0, doc="bit 0: 0 is an invalid descriptor"),
        Field("type", 1, 1, doc="bit 1: 1 table (or level 3 page), 0 block"),
        Field("attrindx", 4, 2, "leaf", doc="index into MAIR (memory attributes)"),
        Field("ns", 5, 5, "leaf", doc="non-secure"),
        Field("ap", 7, 6, "leaf", doc="AP[2:1]: 00 EL1 RW, 01 RW, 10 EL1 RO, 11 RO"),
        Field("sh", 9, 8, "leaf", doc="shareability"),
        Field("af", 10, 10, "leaf", doc="access flag: 0 faults (F_ACCESS) unless AFFD"),
        Field("ng", 11, 11, "leaf", doc="not global: the TLB entry is tagged by ASID"),
        Field("addr", 47, 12, doc="output address: next table or block/page base",
              address=True),
        Field("dbm", 51, 51, "leaf", doc="dirty bit modifier (HTTU; not modelled)"),
        Field("contiguous", 52, 52, "leaf", doc="contiguous hint (16 entries at 4 KiB)"),
        Field("pxn", 53, 53, "leaf", doc="privileged execute never"),
        Field("uxn", 54, 54, "leaf", doc="unprivileged execute never"),
        Field("pxntable", 59, 59, "table", doc="PXN for everything below"),
        Field("uxntable", 60, 60, "table", doc="UXN for everything below"),
        Field("aptable", 62, 61, "table", doc="bit 0: no EL0 access below, bit 1: no write"),
        Field("nstable", 63, 63, "table", doc="non-secure table"),
    )

    # -- the walker's answers ---------------------------------------------------------------

    def input_bits_for(self, levels, granule):
        """The largest input size a ``levels``-deep walk covers (capped at 48 bits)."""
        return min(MAX_OA, level_shift(levels + 1, granule))

    def check_input(self, levels, input_bits, granule):
        """ValueError unless ``input_bits`` fits a ``levels``-deep walk."""
        g = granule_bits(granule)
        top = input_bits - level_shift(levels, granule)
        if not self.min_input_bits <= input_bits <= MAX_OA \
                or not 1 <= top <= g - 3 + self.max_concatenated:
            raise ValueError(
                f"input_bits={input_bits!r} does not fit levels={levels!r} with granule="
                f"{granule}; allowed: {self.min_input_bits} to {MAX_OA} bits, 1 to "
                f"{g - 3 + self.max_concatenated} of them indexed at the top level")

    def descriptor(self, levels=4, phys_bits=48, *, granule=4096, input_bits=None,
                   affd=False, had=False):
        """Answers for a ``levels``-deep walk of an ``input_bits`` input (64 - T0SZ; the
        most the levels cover when None) with output size ``phys_bits`` (CD.IPS capped by
        SMMU_IDR5.OAS), ``granule`` (CD.TG0), ``affd`` (CD.AFFD: AF=0 does not fault) and
        ``had`` (CD.HAD0/1: APTable/UXNTable/PXNTable ignored).

        What the masks cannot say (the walker would need a rule "deny if all of these bits
        are set and none of those"): privileged execution of EL0-writable memory (AP=01) is
        not refused; and an EL0 instruction fetch also needs AP[1] here, so EL0
        execute-only memory (AP=00, UXN=0) refuses execution.
        """
        self.check_levels(levels)
        g = granule_bits(granule)
        if input_bits is None:
            input_bits = self.input_bits_for(levels, granule)
            if input_bits < self.min_input_bits:
                raise ValueError(f"levels={levels!r} is not allowed with granule={granule}; "
                                 f"allowed: {levels_for(self.min_input_bits, granule)} to "
                                 f"{levels_for(MAX_OA, granule)}")
        self.check_input(levels, input_bits, granule)
        oa = oa_bits(phys_bits)
        # an output or table address at or beyond the output size: Address size fault
        high = L.mask(MAX_OA - 1, oa) if oa < MAX_OA else 0
        d = L.empty(levels)
        d[0, L.G_INPUT_BITS] = input_bits
        d[0, L.G_CANONICAL] = 0         # TTB0/TTB1 selection and TBI are the SMMU's (CD)
        d[0, L.G_TABLE_ADDR] = L.mask(MAX_OA - 1, g)
        d[0, L.G_A] = 0                 # no hardware Access flag update (no HTTU)
        d[0, L.G_D] = 0
        d[0, L.G_AF] = 0 if affd else AF
        d[0, L.G_EXEC_READ] = 0
        d[0, L.G_RSVD_REASON] = reason_id("address-size")
        d[0, L.G_WP_APPLIES] = 0
        blocks = self.block_levels[granule]
        for lv in range(1, levels + 1):
            row = d[lv]
            shift = level_shift(lv, granule)
            row[L.L_SHIFT] = shift
            row[L.L_BITS] = (input_bits - shift) if lv == levels else g - 3
            row[L.L_PRESENT_ANY] = VALID
            row[L.L_RSVD_TABLE] = high
            row[L.L_RSVD_LEAF] = high
            row[L.L_LEAF_ADDR] = L.mask(oa - 1, shift)
            if lv == 1:                 # level 3: 11 is a page, 01 reserved (invalid)
                row[L.L_PRESENT_ALL] = VALID | TABLE
                row[L.L_LEAF] = L.LEAF_ALWAYS
            elif lv in blocks:          # 01 block, 11 table
                row[L.L_LEAF] = L.LEAF_IF
                row[L.L_LEAF_MASK] = TABLE
                row[L.L_LEAF_VAL] = 0
            else:                       # no block here: 01 is reserved (invalid)
                row[L.L_PRESENT_ALL] = VALID | TABLE
                row[L.L_LEAF] = L.LEAF_NEVER
            self._rights(row, had)
        return d

    def _rights(self, row, had):
        """Stage 1 permissions (Arm ARM D8.4.1, D8.4.2): reads are always allowed; AP[2]
        refuses writes, AP[1] allows EL0; UXN/PXN refuse execution; APTable[1] refuses
        writes, APTable[0] EL0 and UXNTable/PXNTable execution below a table."""
        row[L.P_DENY + L.WRITE] = AP2
        row[L.P_ALLOW + L.USER] = AP1
        row[L.P_DENY + L.XUSER] = UXN
        row[L.P_DENY + L.XPRIV] = PXN
        if not had:
            row[L.T_DENY + L.WRITE] = APTABLE1
            row[L.T_DENY + L.USER] = APTABLE0
            row[L.T_DENY + L.XUSER] = UXNTABLE
            row[L.T_DENY + L.XPRIV] = PXNTABLE

    def fault_code(self, reason, access=None, user=None):
        """The SMMUv3 event number for a fault of this stage (IHI 0070, 7.3)."""
        return EVENT_OF_REASON.get(reason)

    def page_size(self, level, granule=4096):
        """Size of a block or page at walker ``level`` (Arm ARM D8.2)."""
        return 1 << level_shift(level, granule)

    # -- entry builders, for tests and scenarios --------------------------------------------

    def encode(self, level, leaf, **fields):
        """An entry from named fields (see ``fields``; ``addr`` in place, as ``decode``
        gives it); ``valid`` and ``type`` follow from ``level`` and ``leaf`` unless given."""
        known = {f.name: f for f in self.fields
                 if f.where in ("all", "leaf" if leaf else "table")}
        e = VALID | (TABLE if (not leaf or level == 1) else 0)
        for name, value in fields.items():
            f = known.get(name)
            if f is None:
                raise ValueError(f"field {name!r} is not allowed here; allowed: "
                                 + ", ".join(known))
            width = f.hi - f.lo + 1
            raw = int(value) >> f.lo if f.address else int(value)
            e &= ~(((1 << width) - 1) << f.lo)
            e |= (raw & ((1 << width) - 1)) << f.lo
        return e

    def table(self, pa, *, aptable=0, uxntable=False, pxntable=False):
        """A table descriptor pointing at the table at ``pa``."""
        return pa | VALID | TABLE | (aptable << 61) | (UXNTABLE if uxntable else 0) \
            | (PXNTABLE if pxntable else 0)

    def leaf(self, pa, level=1, *, write=True, user=True, uxn=False, pxn=False, af=True,
             attrindx=0, sh=3, ng=True, contiguous=False):
        """A page (level 1 = Arm level 3) or block descriptor mapping ``pa``; AF set by
        default because this SMMU does not set it (no HTTU)."""
        e = pa | VALID | (TABLE if level == 1 else 0) | (attrindx << 2) | (sh << 8)
        e |= (0 if write else AP2) | (AP1 if user else 0) | (AF if af else 0)
        e |= (NG if ng else 0) | (CONTIGUOUS if contiguous else 0)
        return e | (UXN if uxn else 0) | (PXN if pxn else 0)


FORMAT = Arm64Stage1()
