"""The reference walker: plain Python, meant to be read from top to bottom.

It answers one question: which physical address does an input address reach through a set
of page tables, and which memory does the hardware read on the way? The page-table format
is not named anywhere here. Each format answers the walker's questions as masks in a
*descriptor* (see :mod:`svmkit.formats.layout`): how to index a level, what makes an entry
present, a leaf or malformed, what rights it grants, where its output address is.

One stage (Intel SDM 4.5; VT-d 3.6 first stage, 3.7 second stage):
  1. check that the input address fits the stage's width;
  2. at each level, index the table with the address bits of that level and read the entry;
  3. a missing present bit, a set reserved bit or a read of non-existent memory is a fault;
  4. a table entry gives the next table; a leaf gives the page, and the rights collected on
     the way decide whether the access is allowed;
  5. a completed walk sets the accessed flags of the entries it used, and the dirty flag of
     the leaf for a write (only where the format has them: VT-d second level with SSADE).
     Nested, those flags live in guest memory, so the second stage must allow the write.

Two stages, nested (VT-d 3.8 "Nested Translation", SMMUv3 nested, AMD-Vi guest tables): the
first-stage tables live in guest memory, so the address of every first-stage entry is a
guest-physical address that a second-stage walk turns into a host-physical one before the
entry can be read; so is the first stage's output. With n first-stage levels over an
m-level second stage that is n*(m+1) + m reads: 24 for 4 + 4.

:mod:`svmkit.walker.jit` does the same, compiled; tests hold the two equal.
"""

from ..formats import layout as L
from . import faults as F

ALL_RIGHTS = (1 << len(L.RIGHTS)) - 1


def load(mem, pa):
    """``(ok, entry)``: the 8-byte entry at ``pa`` as a signed 64-bit number (the bit pattern
    the compiled walker sees); ok is False for memory that is not installed."""
    if pa < 0 or pa + 8 > mem.size:
        return False, 0
    return True, L.to_i64(mem.read_u64(pa))


def fits(addr, d):
    """Whether ``addr`` lies within the stage's input width (canonical for x86 first stage:
    the bits above the width copy the top bit; elsewhere they must be zero)."""
    bits = int(d[0, L.G_INPUT_BITS])
    if d[0, L.G_CANONICAL]:
        top = addr >> (bits - 1)
        return top == 0 or top == (1 << (65 - bits)) - 1
    return addr >> bits == 0


def index(addr, level, d):
    """The entry number that ``addr`` selects in a table at ``level``."""
    return (addr >> int(d[level, L.L_SHIFT])) & ((1 << int(d[level, L.L_BITS])) - 1)


def classify(e, level, d):
    """``(reason, leaf, next_level)`` for entry ``e`` read at ``level``."""
    if e & d[level, L.L_PRESENT_ANY] == 0 or \
            e & d[level, L.L_PRESENT_ALL] != d[level, L.L_PRESENT_ALL]:
        return F.reason_id("not-present"), False, 0
    malformed = int(d[0, L.G_RSVD_REASON])
    if d[0, L.G_NL_MASK]:                       # the entry names its next level (AMD v1)
        nl = (e >> int(d[0, L.G_NL_SHIFT])) & int(d[0, L.G_NL_MASK])
        leaf, next_level = nl == 0, nl
        if not leaf and nl >= level:
            return malformed, False, 0
    else:
        kind = d[level, L.L_LEAF]
        leaf = kind == L.LEAF_ALWAYS or (
            kind == L.LEAF_IF and e & d[level, L.L_LEAF_MASK] == d[level, L.L_LEAF_VAL])
        next_level = level - 1
        if not leaf and level == 1:             # a table below the last level
            return malformed, False, 0
    if e & d[level, L.L_RSVD_LEAF if leaf else L.L_RSVD_TABLE]:
        return malformed, leaf, next_level
    return F.OK, leaf, next_level


def rights(e, level, leaf, d):
    """The rights entry ``e`` grants, one bit per right of :data:`layout.RIGHTS`."""
    allow, deny = (L.P_ALLOW, L.P_DENY) if leaf else (L.T_ALLOW, L.T_DENY)
    granted = 0
    for r in range(len(L.RIGHTS)):
        a, n = d[level, allow + r], d[level, deny + r]
        if e & a == a and e & n == 0:
            granted |= 1 << r
    return granted


def permitted(granted, access, user, wp, d):
    """Whether the rights granted by every entry of the walk allow the access (SDM 4.6)."""
    if access == F.R:
        need = 1 << L.READ
    elif access == F.W:
        # a supervisor write ignores R/W when write protection is off (CR0.WP=0, WPE=0)
        need = 1 << L.WRITE if user or wp or not d[0, L.G_WP_APPLIES] else 0
    else:
        need = 1 << (L.XUSER if user else L.XPRIV)
        if d[0, L.G_EXEC_READ]:
            need |= 1 << L.READ
    if user:
        need |= 1 << L.USER
    return granted & need == need


def flags_to_set(refs, start, stage, access, d):
    """``[(i, flags)]``: the entries this stage read (the i-th of its refs from ``start``)
    whose value lacks a flag a completed walk sets: A in every entry, D in the leaf on a
    write."""
    a, dirty = int(d[0, L.G_A]), int(d[0, L.G_D])
    used = [r for r in refs[start:] if r[0] == stage]
    out = []
    for i, (_, _, _, e, _) in enumerate(used):
        flags = a | (dirty if access == F.W and i == len(used) - 1 else 0)
        if e & flags != flags:
            out.append((i, flags))
    return out


def set_accessed_dirty(mem, refs, start, stage, access, d):
    """Set A in every entry this stage read (refs from ``start``), D in its leaf on a write."""
    used = [r for r in refs[start:] if r[0] == stage]
    for i, flags in flags_to_set(refs, start, stage, access, d):
        _, e = load(mem, used[i][2])
        if e & flags != flags:
            mem.write_u64(used[i][2], e | flags)


def stage_walk(mem, addr, root, d, access, user, wp, refs, stage, guest_level,
               second=None):
    """Walk one stage from the table at ``root``.

    ``second``, for a nested walk, turns the guest-physical address of each entry into a
    host-physical one: ``second(gpa, level) -> (reason, level, hpa, size)``, and
    ``second(gpa, level, F.W, probe=True)`` says whether it may be written.
    Returns ``(reason, stage, level, fault_address, out, page_size)``.
    """
    levels = int(d[0, L.G_LEVELS])
    if not fits(addr, d):
        return F.reason_id("address-width"), stage, levels, addr, 0, 0
    start = len(refs)
    level, table, granted = levels, root, ALL_RIGHTS
    gpas = []                                   # nested: the GPA of each entry read
    while True:
        entry = table + index(addr, level, d) * 8
        if second is not None:                  # nested: the entry's address is a GPA
            gpa = entry
            gpas.append((gpa, level))
            reason, slevel, entry, _ = second(gpa, level)
            if reason:
                return reason, F.SECOND, slevel, gpa, 0, 0
        ok, e = load(mem, entry)
        if not ok:
            return F.reason_id("non-existent-memory"), stage, level, addr, 0, 0
        refs.append((stage, level, entry, e, guest_level))
        reason, leaf, next_level = classify(e, level, d)
        if reason:
            return reason, stage, level, addr, 0, 0
        granted &= rights(e, level, leaf, d)
        if leaf:
            break
        table, level = e & int(d[0, L.G_TABLE_ADDR]), next_level
    af = int(d[0, L.G_AF])
    if af and e & af == 0:
        return F.reason_id("access-flag"), stage, level, addr, 0, 0
    if not permitted(granted, access, user, wp, d):
        return F.reason_id("permission"), stage, level, addr, 0, 0
    if second is not None:
        # setting a flag writes guest memory: the second stage must allow that write
        # (VT-d 3.8 and fault 0x77; the translation is the one just made, no new reads)
        for i, _ in flags_to_set(refs, start, stage, access, d):
            gpa, glevel = gpas[i]
            reason, slevel, _, _ = second(gpa, glevel, F.W, probe=True)
            if reason:
                return F.reason_id("ad-permission"), F.SECOND, slevel, gpa, 0, 0
    set_accessed_dirty(mem, refs, start, stage, access, d)
    size = 1 << int(d[level, L.L_SHIFT])
    return F.OK, stage, level, 0, (e & int(d[level, L.L_LEAF_ADDR])) | (addr & (size - 1)), size


def second_writable(mem, gpa, second_root, d2, wp, guest_level):
    """``(reason, level)`` of a write to ``gpa`` through the second stage: the A/D update
    of a first-stage entry (VT-d 0x77). A question about the translation a walk just made,
    so it records no refs and sets no flags."""
    d2 = d2.copy()
    d2[0, L.G_A] = d2[0, L.G_D] = 0
    r = stage_walk(mem, gpa, second_root, d2, F.W, False, wp, [], F.SECOND, guest_level)
    return r[0], r[2]


def walk(mem, va, root, d1, second_root, d2, nested, access, user, wp, refs):
    """Translate ``va``: one stage, or two nested ones.

    Returns ``(reason, stage, level, fault_address, pa, page_size, gpa)``; ``refs`` receives
    ``(stage, level, address, entry, guest_level)`` for every read, in order.
    """
    if not nested:
        reason, stage, level, where, pa, size = stage_walk(
            mem, va, root, d1, access, user, wp, refs, F.FIRST, -1)
        return reason, stage, level, where, pa, size, 0

    def second(gpa, guest_level, acc=F.R, probe=False):
        if probe:
            return second_writable(mem, gpa, second_root, d2, wp, guest_level) + (0, 0)
        r = stage_walk(mem, gpa, second_root, d2, acc, False, wp, refs, F.SECOND, guest_level)
        return r[0], r[2], r[4], r[5]

    reason, stage, level, where, gpa, size = stage_walk(
        mem, va, root, d1, access, user, wp, refs, F.FIRST, -1, second)
    if reason:
        return reason, stage, level, where, 0, 0, 0
    # the first stage's output is a GPA too: the last second-stage walk, guest level 0
    reason, level, pa, size2 = second(gpa, 0, access)
    if reason:
        return reason, F.SECOND, level, gpa, 0, 0, gpa
    return F.OK, F.SECOND, 0, 0, pa, min(size, size2), gpa
