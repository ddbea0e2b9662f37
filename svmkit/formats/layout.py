"""The questions a walker asks about a page-table format, answered as masks.

Linux ``drivers/iommu/generic_pt`` lets each format answer a handful of questions (where is
the next table, is this entry a leaf, what output address does it give ...). svmkit keeps the
answers as numbers in one small int64 array, the *descriptor*, so that one walker, plain
Python or numba-compiled, serves every format and a new format is a new module that fills
the array.

A descriptor has shape ``(6, NCOL)``. Row 0 holds the answers that do not depend on the
level; rows 1..5 hold one level each (1 is the leaf-most level: PTE, SL-PTE, level-3
descriptor; 5 the top of a 5-level walk). All values are int64; a mask with bit 63 set is
negative, which the walkers handle (they only AND, compare and shift right by < 52).

Row 0 (global):
    G_LEVELS        number of levels walked (the top level is this number)
    G_INPUT_BITS    width of the input address; higher bits must be ...
    G_CANONICAL     ... copies of bit INPUT_BITS-1 (1: x86 canonical form) or zero (0)
    G_TABLE_ADDR    mask of the next-table address in a table entry
    G_A             accessed flag set on every entry of a completed walk (0: none)
    G_D             dirty flag set on the leaf of a completed write (0: none)
    G_AF            access flag that a leaf must already have, else fault access-flag (0: none)
    G_EXEC_READ     1 if an execute access also needs read permission
    G_RSVD_REASON   fault reason id for a set reserved bit (reserved-bit or address-size)
    G_NL_SHIFT, G_NL_MASK
                    an explicit next-level field (AMD v1 "Next Level"): when the mask is
                    non-zero, field 0 marks a leaf and 1 <= field < level names the level of
                    the next table (level skipping); other values are reserved
    G_WP_APPLIES    1 if a supervisor write honours the write right only with ``wp`` (x86
                    CR0.WP, VT-d WPE); 0 if writes always need it (second-level, Arm)

Rows 1..5 (per level):
    L_SHIFT         lowest input-address bit indexed at this level
    L_BITS          number of index bits (9 for 4 KiB tables of 8-byte entries)
    L_PRESENT_ANY   entry present only if some of these bits are set
    L_PRESENT_ALL   ... and all of these bits are set (Arm: a level-3 page needs bits[1:0]=11)
    L_LEAF          0: never a leaf here, 1: a leaf if (e & L_LEAF_MASK) == L_LEAF_VAL,
                    2: always a leaf
    L_LEAF_MASK, L_LEAF_VAL
    L_RSVD_TABLE    bits that must be zero in a table entry
    L_RSVD_LEAF     bits that must be zero in a leaf entry
    L_LEAF_ADDR     mask of the output address in a leaf (the page base)
    rights: for table entries (T_) and leaves (P_), for each right (READ, WRITE, USER,
    XUSER = execute at user privilege, XPRIV = execute at supervisor privilege) an
    ALLOW mask (granted only if all these bits are set) and a DENY mask (refused if any is
    set). A right must be granted by every entry of the walk.
"""

import numpy as np

# global row
G_LEVELS = 0
G_INPUT_BITS = 1
G_CANONICAL = 2
G_TABLE_ADDR = 3
G_A = 4
G_D = 5
G_AF = 6
G_EXEC_READ = 7
G_RSVD_REASON = 8
G_NL_SHIFT = 9
G_NL_MASK = 10
G_WP_APPLIES = 11

# per-level rows
L_SHIFT = 0
L_BITS = 1
L_PRESENT_ANY = 2
L_PRESENT_ALL = 3
L_LEAF = 4
L_LEAF_MASK = 5
L_LEAF_VAL = 6
L_RSVD_TABLE = 7
L_RSVD_LEAF = 8
L_LEAF_ADDR = 9

READ, WRITE, USER, XUSER, XPRIV = range(5)
RIGHTS = ("read", "write", "user", "xuser", "xpriv")
# column of the ALLOW mask of right r in a table entry is T_ALLOW + r, etc.
T_ALLOW = 10
T_DENY = 15
P_ALLOW = 20
P_DENY = 25
NCOL = 30

LEAF_NEVER, LEAF_IF, LEAF_ALWAYS = 0, 1, 2


def mask(hi, lo):
    """Bits hi..lo inclusive as an int64 (bit 63 gives a negative number)."""
    value = ((1 << (hi + 1)) - 1) ^ ((1 << lo) - 1)
    return to_i64(value)


def to_i64(value):
    """A 64-bit pattern as a signed int64 value."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >> 63 else value


def to_u64(value):
    """An int64 bit pattern as the unsigned number it stands for."""
    return int(value) & ((1 << 64) - 1)


def empty(levels):
    """A zeroed descriptor for a walk of ``levels`` levels."""
    d = np.zeros((6, NCOL), dtype=np.int64)
    d[0, G_LEVELS] = levels
    return d


def radix(levels, phys_bits, canonical=False):
    """A descriptor for tables of 512 eight-byte entries, 9 input bits a level above a 4 KiB
    page (x86-64 paging, VT-d second level, AMD v1), with the width answers filled in:
    levels, input width, where a table address sits, each level's index bits.

    Returns the descriptor and the mask of the address bits 51:``phys_bits``, which every
    such format reserves. ValueError names ``phys_bits`` when it is not 32 to 52.
    """
    if not 32 <= phys_bits <= 52:
        raise ValueError(f"phys_bits={phys_bits!r} is not allowed; allowed: 32 to 52")
    d = empty(levels)
    d[0, G_INPUT_BITS] = 12 + 9 * levels
    d[0, G_CANONICAL] = int(canonical)
    d[0, G_TABLE_ADDR] = mask(phys_bits - 1, 12)
    for lv in range(1, levels + 1):
        d[lv, L_SHIFT] = 12 + 9 * (lv - 1)
        d[lv, L_BITS] = 9
    return d, (mask(51, phys_bits) if phys_bits < 52 else 0)


def ps_leaves(d, phys_bits, high, ps, low_bit):
    """The leaf answers of a radix format whose PDE and PDPTE map 2 MiB and 1 GiB pages when
    ``ps`` is set (x86-64 paging, VT-d second level): level 1 is always a leaf, levels 2 and
    3 are leaves with PS, higher levels never are. A large leaf reserves its frame bits from
    ``low_bit`` up (bit 12 is x86's PAT bit, so it passes 13); ``high`` is the reserved
    address bits above ``phys_bits``."""
    for lv in range(1, int(d[0, G_LEVELS]) + 1):
        row = d[lv]
        shift = 12 + 9 * (lv - 1)
        if lv == 1:
            row[L_LEAF] = LEAF_ALWAYS
        elif lv in (2, 3):
            row[L_LEAF] = LEAF_IF
            row[L_LEAF_MASK] = row[L_LEAF_VAL] = ps
        else:
            row[L_LEAF] = LEAF_NEVER
            continue
        row[L_RSVD_LEAF] = high | (mask(shift - 1, low_bit) if lv > 1 else 0)
        row[L_LEAF_ADDR] = mask(phys_bits - 1, shift)
