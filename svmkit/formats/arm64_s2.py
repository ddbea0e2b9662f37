"""VMSAv8-64 stage 2 translation tables: IPA to PA, what an SMMUv3 STE's S2TTB points at.

Implements the Arm ARM D8 stage 2 parts: the same granules, levels and descriptor types as
stage 1 (:mod:`svmkit.formats.arm64_s1`), with the stage 2 leaf attributes of D8.3 (MemAttr
5:2, S2AP 7:6, SH 9:8, AF 10, XN 54), stage 2 access permissions (D8.4.3: S2AP[0] allows
reads, S2AP[1] writes; XN refuses instruction fetches, which need no read permission), no
hierarchical controls in table descriptors, and concatenated start tables (D8.2,
"Concatenated translation tables": up to 16 tables at the start level, so up to 4 more index
bits there). SMMUv3 uses this format for the tables of an STE with stage 2 enabled (IHI 0070,
5.2 "Stream Table Entry": S2TTB, S2T0SZ, S2SL0, S2TG, S2PS, S2AFFD).

Levels, walker numbering : Arm: 4 : level 0, 3 : level 1, 2 : level 2, 1 : level 3. The start
level comes from S2SL0 (:func:`start_levels`), the input size from S2T0SZ; the top level
indexes ``input_bits - shift`` bits, between 1 and the granule's stride plus 4.

Not modelled (shown, never used): MemAttr and SH (memory types), DBM and hardware updates,
the Contiguous hint, FEAT_XNX's XN[0] (bit 53: XN is bit 54 alone).
"""

from . import layout as L
from .arm64_s1 import (AF, CONTIGUOUS, DBM, GRANULES, Arm64Stage1, granule_bits,
                       level_shift)
from .base import Field

S2AP_R = 1 << 6
S2AP_W = 1 << 7
XN = 1 << 54


def start_levels(sl0, granule):
    """Walker levels of a stage 2 walk that starts where STE.S2SL0 says (Arm ARM VTCR_EL2.SL0;
    IHI 0070 STE.S2SL0): with 4 KiB, SL0 0/1/2 start at level 2/1/0; with 16 and 64 KiB at
    level 3/2/1 (and 16 KiB SL0 3 at level 0). None for a reserved value."""
    if granule == 4096:
        table = {0: 2, 1: 3, 2: 4}
    elif granule == 16384:
        table = {0: 1, 1: 2, 2: 3, 3: 4}
    elif granule == 65536:
        table = {0: 1, 1: 2, 2: 3}
    else:
        granule_bits(granule)           # raises ValueError naming the argument
    return table.get(sl0)


def sl0_for(levels, granule):
    """The S2SL0 value that starts a walk of ``levels`` walker levels."""
    for sl0 in range(4):
        if start_levels(sl0, granule) == levels:
            return sl0
    raise ValueError(f"levels={levels!r} cannot start a stage 2 walk with granule={granule}")


class Arm64Stage2(Arm64Stage1):
    name = "arm64_s2"
    stage_name = "second"
    stage = 2
    spec = "Arm ARM D8.2-D8.5 (VMSAv8-64 stage 2); SMMUv3 IHI 0070 5.2, 7.3"
    prefix = "s2"
    level_names = {4: "s2-l0", 3: "s2-l1", 2: "s2-l2", 1: "s2-l3"}
    leaf_names = {3: "s2-l1-block", 2: "s2-l2-block", 1: "s2-l3-page"}
    min_input_bits = 25             # S2T0SZ <= 39
    max_concatenated = 4            # up to 16 concatenated start tables
    fields = (
        Field("valid", 0, 0, doc="bit 0: 0 is an invalid descriptor"),
        Field("type", 1, 1, doc="bit 1: 1 table (or level 3 page), 0 block"),
        Field("memattr", 5, 2, "leaf", doc="stage 2 memory attributes"),
        Field("s2ap", 7, 6, "leaf", doc="bit 0: read allowed, bit 1: write allowed"),
        Field("sh", 9, 8, "leaf", doc="shareability"),
        Field("af", 10, 10, "leaf", doc="access flag: 0 faults (F_ACCESS) unless S2AFFD"),
        Field("addr", 47, 12, doc="output address: next table or block/page base",
              address=True),
        Field("dbm", 51, 51, "leaf", doc="dirty bit modifier (HTTU; not modelled)"),
        Field("contiguous", 52, 52, "leaf", doc="contiguous hint"),
        Field("xn", 54, 54, "leaf", doc="execute never"),
    )

    def input_bits_for(self, levels, granule):
        # without concatenation: the top table is at most one granule
        return min(48, level_shift(levels + 1, granule))

    def descriptor(self, levels=4, phys_bits=48, *, granule=4096, input_bits=None,
                   affd=False, had=False):
        """Answers for a stage 2 walk of ``levels`` walker levels (from S2SL0, see
        :func:`start_levels`) over an ``input_bits`` IPA (64 - S2T0SZ; more than a granule's
        stride at the top means concatenated start tables) with output size ``phys_bits``
        (S2PS capped by SMMU_IDR5.OAS), ``granule`` (S2TG) and ``affd`` (S2AFFD).
        ``had`` is accepted for symmetry and ignored: stage 2 has no hierarchical controls."""
        return super().descriptor(levels, phys_bits, granule=granule, input_bits=input_bits,
                                  affd=affd, had=True)

    def _rights(self, row, had):
        """Stage 2 permissions (Arm ARM D8.4.3): S2AP[0] read, S2AP[1] write, XN refuses
        execution at both privileges; table descriptors carry none."""
        row[L.P_ALLOW + L.READ] = S2AP_R
        row[L.P_ALLOW + L.WRITE] = S2AP_W
        row[L.P_DENY + L.XUSER] = XN
        row[L.P_DENY + L.XPRIV] = XN

    def table(self, pa):
        """A table descriptor pointing at the table at ``pa``."""
        return pa | 0b11

    def leaf(self, pa, level=1, *, read=True, write=True, xn=False, af=True, memattr=0xF,
             sh=3, contiguous=False):
        """A page (level 1 = Arm level 3) or block descriptor mapping ``pa``; MemAttr 0b1111
        (Normal, write-back) by default."""
        e = pa | 1 | (2 if level == 1 else 0) | (memattr << 2) | (sh << 8)
        e |= (S2AP_R if read else 0) | (S2AP_W if write else 0) | (AF if af else 0)
        return e | (CONTIGUOUS if contiguous else 0) | (XN if xn else 0)


FORMAT = Arm64Stage2()

__all__ = ["FORMAT", "Arm64Stage2", "start_levels", "sl0_for", "S2AP_R", "S2AP_W", "XN",
           "AF", "DBM", "GRANULES"]
