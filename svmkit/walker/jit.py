"""The compiled walker: :mod:`svmkit.walker.reference`, in numba.

Same questions, same answers, same order of memory reads; the differences are for the
compiler only. Memory is the arrays of :meth:`svmkit.memory.Memory.arrays`, read in place.
References go into an int64 array ``refs`` (rows: stage, level, address, entry,
guest_level) from row ``nref`` on, so that an IOMMU model can put its own structure reads
first. numba's cache cannot hold recursive functions, so the nested walk is its own loop
that calls the one-stage walk for each table pointer, where the reference passes a callback.

Nothing here raises for any memory content or address: every array index is checked
(numba does not), and every walk ends after at most one read per level.
"""

import numpy as np

from .._jit import njit
from .._memjit import load, store
from ..formats.layout import (
    G_A, G_AF, G_CANONICAL, G_D, G_EXEC_READ, G_INPUT_BITS, G_LEVELS, G_NL_MASK,
    G_NL_SHIFT, G_RSVD_REASON, G_TABLE_ADDR, G_WP_APPLIES, L_BITS, L_LEAF, L_LEAF_ADDR,
    L_LEAF_MASK, L_LEAF_VAL, L_PRESENT_ALL, L_PRESENT_ANY, L_RSVD_LEAF, L_RSVD_TABLE,
    L_SHIFT, LEAF_ALWAYS, LEAF_IF, P_ALLOW, P_DENY, READ, T_ALLOW, T_DENY, USER, WRITE,
    XPRIV, XUSER)
from .faults import FIRST, R, SECOND, W, reason_id

NOT_PRESENT = reason_id("not-present")
NON_EXISTENT = reason_id("non-existent-memory")
ADDRESS_WIDTH = reason_id("address-width")
PERMISSION = reason_id("permission")
ACCESS_FLAG = reason_id("access-flag")
ALL_RIGHTS = 31
REF_COLUMNS = 5
MAX_REFS = 64          # rows a walk may need: 35 for 5+5 levels, plus a model's structures


@njit
def fits_nb(addr, d):
    bits = d[0, G_INPUT_BITS]
    if d[0, G_CANONICAL]:
        top = addr >> (bits - 1)
        return top == 0 or top == -1
    return (addr >> bits) == 0


@njit
def index_nb(addr, level, d):
    return (addr >> d[level, L_SHIFT]) & ((np.int64(1) << d[level, L_BITS]) - 1)


@njit
def classify_nb(e, level, d):
    if (e & d[level, L_PRESENT_ANY]) == 0 or \
            (e & d[level, L_PRESENT_ALL]) != d[level, L_PRESENT_ALL]:
        return NOT_PRESENT, False, np.int64(0)
    malformed = d[0, G_RSVD_REASON]
    if d[0, G_NL_MASK] != 0:
        nl = (e >> d[0, G_NL_SHIFT]) & d[0, G_NL_MASK]
        leaf = nl == 0
        next_level = nl
        if not leaf and nl >= level:
            return malformed, False, np.int64(0)
    else:
        kind = d[level, L_LEAF]
        leaf = kind == LEAF_ALWAYS or (
            kind == LEAF_IF and (e & d[level, L_LEAF_MASK]) == d[level, L_LEAF_VAL])
        next_level = level - 1
        if not leaf and level == 1:
            return malformed, False, np.int64(0)
    rsvd = d[level, L_RSVD_LEAF] if leaf else d[level, L_RSVD_TABLE]
    if (e & rsvd) != 0:
        return malformed, leaf, next_level
    return np.int64(0), leaf, next_level


@njit
def rights_nb(e, level, leaf, d):
    allow = P_ALLOW if leaf else T_ALLOW
    deny = P_DENY if leaf else T_DENY
    granted = 0
    for r in range(5):
        a = d[level, allow + r]
        if (e & a) == a and (e & d[level, deny + r]) == 0:
            granted |= 1 << r
    return granted


@njit
def permitted_nb(granted, access, user, wp, d):
    if access == R:
        need = 1 << READ
    elif access == W:
        need = 1 << WRITE if (user or wp or d[0, G_WP_APPLIES] == 0) else 0
    else:
        need = 1 << (XUSER if user else XPRIV)
        if d[0, G_EXEC_READ] != 0:
            need |= 1 << READ
    if user:
        need |= 1 << USER
    return (granted & need) == need


@njit
def record_nb(refs, nref, stage, level, address, entry, guest_level):
    if nref < refs.shape[0]:
        refs[nref, 0] = stage
        refs[nref, 1] = level
        refs[nref, 2] = address
        refs[nref, 3] = entry
        refs[nref, 4] = guest_level
    return nref + 1


@njit
def set_accessed_dirty_nb(keys, slots, frames, size, refs, start, nref, stage, access, d):
    a = d[0, G_A]
    dirty = d[0, G_D] if access == W else 0
    if a == 0 and dirty == 0:
        return
    end = min(nref, refs.shape[0])
    last = -1
    for k in range(start, end):
        if refs[k, 0] == stage:
            last = k
    for k in range(start, end):
        if refs[k, 0] != stage:
            continue
        flags = a | (dirty if k == last else 0)
        # the value just read already has them: only our own stores changed memory since,
        # and those only add flags
        if flags != 0 and (refs[k, 3] & flags) != flags:
            ok, e = load(keys, slots, frames, size, refs[k, 2])
            if ok and (e & flags) != flags:
                store(keys, slots, frames, size, refs[k, 2], e | flags)


@njit
def leaf_check_nb(e, granted, access, user, wp, d):
    """Fault reason (0 for none) for a leaf reached with ``granted`` rights."""
    af = d[0, G_AF]
    if af != 0 and (e & af) == 0:
        return ACCESS_FLAG
    if not permitted_nb(granted, access, user, wp, d):
        return PERMISSION
    return 0


@njit
def stage_nb(keys, slots, frames, size, addr, root, d, access, user, wp, refs, nref, stage,
             guest_level):
    """One stage. Returns ``(reason, level, out, page_size, nref)``; a fault's address is
    ``addr``."""
    level = d[0, G_LEVELS]
    if not fits_nb(addr, d):
        return ADDRESS_WIDTH, level, np.int64(0), np.int64(0), nref
    start = nref
    table = root
    granted = ALL_RIGHTS
    e = np.int64(0)
    while True:
        entry = table + index_nb(addr, level, d) * 8
        ok, e = load(keys, slots, frames, size, entry)
        if not ok:
            return NON_EXISTENT, level, np.int64(0), np.int64(0), nref
        nref = record_nb(refs, nref, stage, level, entry, e, guest_level)
        reason, leaf, next_level = classify_nb(e, level, d)
        if reason != 0:
            return reason, level, np.int64(0), np.int64(0), nref
        granted &= rights_nb(e, level, leaf, d)
        if leaf:
            break
        table = e & d[0, G_TABLE_ADDR]
        level = next_level
    reason = leaf_check_nb(e, granted, access, user, wp, d)
    if reason != 0:
        return reason, level, np.int64(0), np.int64(0), nref
    set_accessed_dirty_nb(keys, slots, frames, size, refs, start, nref, stage, access, d)
    page = np.int64(1) << d[level, L_SHIFT]
    return np.int64(0), level, (e & d[level, L_LEAF_ADDR]) | (addr & (page - 1)), page, nref


@njit
def walk_nb(keys, slots, frames, size, va, root, d1, second_root, d2, nested, access, user,
            wp, refs, nref):
    """One translation. Returns ``(reason, stage, level, fault_address, pa, page_size,
    nref, gpa)``."""
    zero = np.int64(0)
    if not nested:
        reason, level, pa, page, nref = stage_nb(keys, slots, frames, size, va, root, d1,
                                                 access, user, wp, refs, nref, FIRST, -1)
        return reason, FIRST, level, va if reason != 0 else zero, pa, page, nref, zero
    level = d1[0, G_LEVELS]
    if not fits_nb(va, d1):
        return ADDRESS_WIDTH, FIRST, level, va, zero, zero, nref, zero
    start = nref
    table = root
    granted = ALL_RIGHTS
    e = zero
    while True:
        gpa = table + index_nb(va, level, d1) * 8
        # the guest's table pointer is a GPA: a second-stage walk finds the entry first
        reason, slevel, entry, _, nref = stage_nb(keys, slots, frames, size, gpa,
                                                  second_root, d2, R, False, wp, refs, nref,
                                                  SECOND, level)
        if reason != 0:
            return reason, SECOND, slevel, gpa, zero, zero, nref, zero
        ok, e = load(keys, slots, frames, size, entry)
        if not ok:
            return NON_EXISTENT, FIRST, level, va, zero, zero, nref, zero
        nref = record_nb(refs, nref, FIRST, level, entry, e, -1)
        reason, leaf, next_level = classify_nb(e, level, d1)
        if reason != 0:
            return reason, FIRST, level, va, zero, zero, nref, zero
        granted &= rights_nb(e, level, leaf, d1)
        if leaf:
            break
        table = e & d1[0, G_TABLE_ADDR]
        level = next_level
    reason = leaf_check_nb(e, granted, access, user, wp, d1)
    if reason != 0:
        return reason, FIRST, level, va, zero, zero, nref, zero
    set_accessed_dirty_nb(keys, slots, frames, size, refs, start, nref, FIRST, access, d1)
    page = np.int64(1) << d1[level, L_SHIFT]
    gpa = (e & d1[level, L_LEAF_ADDR]) | (va & (page - 1))
    reason, slevel, pa, page2, nref = stage_nb(keys, slots, frames, size, gpa, second_root, d2,
                                               access, False, wp, refs, nref, SECOND, 0)
    if reason != 0:
        return reason, SECOND, slevel, gpa, zero, zero, nref, gpa
    return zero, SECOND, zero, zero, pa, min(page, page2), nref, gpa


@njit
def translate_nb(keys, slots, frames, size, vas, root, d1, second_root, d2, nested, access,
                 user, wp, pa_out, fault_out):
    """Batch translation: ``pa_out[i]`` and ``fault_out[i]`` (0, or reason | stage << 4)."""
    refs = np.empty((MAX_REFS, REF_COLUMNS), dtype=np.int64)
    for i in range(vas.shape[0]):
        r = walk_nb(keys, slots, frames, size, vas[i], root, d1, second_root, d2, nested,
                    access, user, wp, refs, 0)
        if r[0] == 0:
            pa_out[i] = r[4]
            fault_out[i] = 0
        else:
            pa_out[i] = 0
            fault_out[i] = r[0] | (r[1] << 4)
