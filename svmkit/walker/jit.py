"""The compiled walker: :mod:`svmkit.walker.reference`, in numba.

Same questions, same answers, same order of memory reads; the differences are for the
compiler only. Memory is the arrays of :meth:`svmkit.memory.Memory.arrays`, read in place.
References go into an int64 array ``refs`` (rows: stage, level, address, entry,
guest_level) from row ``nref`` on, so that an IOMMU model can put its own structure reads
first. numba's cache cannot hold recursive functions, so the nested walk is its own loop
that calls the one-stage walk for each table pointer, where the reference passes a callback.
The walks allocate nothing and are compiled without numba's reference counting
(``_nrt=False``), which would otherwise cost a call and an atomic update per array at every
step; their callers (:func:`stage_nb`, :func:`walk_nb`, :func:`translate_nb`) own the arrays.

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
    L_SHIFT, LEAF_ALWAYS, LEAF_IF, NCOL, P_ALLOW, P_DENY, READ, T_ALLOW, T_DENY, USER,
    WRITE, XPRIV, XUSER)
from .faults import FIRST, R, SECOND, W, reason_id

NOT_PRESENT = reason_id("not-present")
NON_EXISTENT = reason_id("non-existent-memory")
ADDRESS_WIDTH = reason_id("address-width")
PERMISSION = reason_id("permission")
ACCESS_FLAG = reason_id("access-flag")
AD_PERMISSION = reason_id("ad-permission")
ALL_RIGHTS = 31
C_T_ALLOW, C_T_DENY, C_P_ALLOW, C_P_DENY = NCOL, NCOL + 1, NCOL + 2, NCOL + 3
C_ACCESS = NCOL     # in row 0, where the C_ columns of the levels are unused
C_RECORD = NCOL + 1  # in row 0: 0 when the caller wants no refs from this stage
REF_COLUMNS = 5
MAX_REFS = 64          # rows a walk may need: 35 for 5+5 levels, plus a model's structures


@njit(inline="always")
def fits_nb(addr, d):
    bits = d[0, G_INPUT_BITS]
    if d[0, G_CANONICAL]:
        top = addr >> (bits - 1)
        return top == 0 or top == -1
    return (addr >> bits) == 0


@njit(inline="always")
def index_nb(addr, level, d):
    return (addr >> d[level, L_SHIFT]) & ((np.int64(1) << d[level, L_BITS]) - 1)


@njit(inline="always")
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


@njit(inline="always")
def record_nb(refs, nref, stage, level, address, entry, guest_level):
    if nref < refs.shape[0]:
        refs[nref, 0] = stage
        refs[nref, 1] = level
        refs[nref, 2] = address
        refs[nref, 3] = entry
        refs[nref, 4] = guest_level
    return nref + 1


@njit(inline="always")
def flags_wanted_nb(refs, start, end, stage, access, d):
    """The row of this stage's last ref (its leaf) in ``refs[start:end]``, and the flags a
    completed walk sets: ``(last, a, dirty)``; the leaf takes ``a | dirty``, the others
    ``a`` (reference :func:`~svmkit.walker.reference.flags_to_set`)."""
    last = -1
    for k in range(start, end):
        if refs[k, 0] == stage:
            last = k
    return last, d[0, G_A], d[0, G_D] if access == W else 0


@njit(inline="always")
def set_accessed_dirty_nb(keys, slots, frames, size, refs, start, nref, stage, access, d):
    """Set A in the entries this stage read (``refs`` from ``start``), D in its leaf for a
    write (reference :func:`~svmkit.walker.reference.set_accessed_dirty`)."""
    end = min(nref, refs.shape[0])
    last, a, dirty = flags_wanted_nb(refs, start, end, stage, access, d)
    if a == 0 and dirty == 0:
        return
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


@njit(inline="always")
def rights_nb(e, level, leaf, d):
    """The rights entry ``e`` grants, one bit per right (reference :func:`rights`). The
    paging-structure caches keep these, since a cached entry serves every kind of access."""
    allow = P_ALLOW if leaf else T_ALLOW
    deny = P_DENY if leaf else T_DENY
    granted = 0
    for r in range(5):
        a = d[level, allow + r]
        if (e & a) == a and (e & d[level, deny + r]) == 0:
            granted |= 1 << r
    return granted


@njit(inline="always")
def needed_nb(access, user, wp, d):
    """The rights an access needs, one bit per right (reference :func:`permitted`)."""
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
    return need


@njit(inline="always")
def permitted_nb(granted, access, user, wp, d):
    need = needed_nb(access, user, wp, d)
    return (granted & need) == need


@njit(inline="always")
def leaf_check_nb(e, granted, access, user, wp, d):
    """Fault reason (0 for none) for a leaf reached with ``granted`` rights."""
    af = d[0, G_AF]
    if af != 0 and (e & af) == 0:
        return ACCESS_FLAG
    if not permitted_nb(granted, access, user, wp, d):
        return PERMISSION
    return 0


@njit
def prepare_nb(d, access, user, wp):
    """The descriptor ``d`` for one kind of access: the rights the access needs (reference
    :func:`~svmkit.walker.reference.permitted`) folded into one ALLOW and one DENY mask per
    level and entry form (columns ``C_*``), and the access itself (``C_ACCESS``).
    A walk then checks two masks per entry instead of every right."""
    p = np.zeros((d.shape[0], NCOL + 4), dtype=np.int64)
    p[:, :NCOL] = d
    need = needed_nb(access, user, wp, d)
    p[0, C_ACCESS] = access
    p[0, C_RECORD] = 1
    for level in range(1, d.shape[0]):
        for r in range(5):
            if need & (1 << r):
                p[level, C_T_ALLOW] |= d[level, T_ALLOW + r]
                p[level, C_T_DENY] |= d[level, T_DENY + r]
                p[level, C_P_ALLOW] |= d[level, P_ALLOW + r]
                p[level, C_P_DENY] |= d[level, P_DENY + r]
    return p


@njit(inline="always")
def check_nb(e, level, p):
    """``(reason, leaf, next_level)`` for entry ``e`` at ``level``, with the access's rights
    checked too: reason PERMISSION is only a candidate, reported if the walk reaches a leaf."""
    reason, leaf, next_level = classify_nb(e, level, p)
    if reason != 0:
        return reason, leaf, next_level
    if leaf:
        allow, deny = p[level, C_P_ALLOW], p[level, C_P_DENY]
    else:
        allow, deny = p[level, C_T_ALLOW], p[level, C_T_DENY]
    if (e & allow) != allow or (e & deny) != 0:
        return PERMISSION, leaf, next_level
    return np.int64(0), leaf, next_level


@njit(_nrt=False, inline="always")
def stage_prepared_nb(keys, slots, frames, size, addr, root, p, refs, nref, stage,
                      guest_level):
    """:func:`stage_nb` with a descriptor from :func:`prepare_nb`. A stage whose
    ``C_RECORD`` is 0 adds no refs, which its accessed and dirty flags never then need
    (see :func:`unrecorded`). Inlined: a call would pass every array field on the stack."""
    zero = np.int64(0)
    if not fits_nb(addr, p):
        return ADDRESS_WIDTH, p[0, G_LEVELS], zero, zero, nref
    start = nref
    table = root
    denied = False
    unflagged = zero         # accessed flags still to set, dirty included (see below)
    e = zero
    want = p[0, G_LEVELS]
    # A counted loop, not "while True": with a constant descriptor (:func:`specialized`)
    # the compiler unrolls it and every ``p[level, ...]`` becomes a constant.
    for level in range(p[0, G_LEVELS], 0, -1):
        if level != want:    # skipped by an explicit next-level field (AMD v1)
            continue
        entry = table + index_nb(addr, level, p) * 8
        ok, e = load(keys, slots, frames, size, entry)
        if not ok:
            return NON_EXISTENT, level, zero, zero, nref
        if p[0, C_RECORD] != 0:
            nref = record_nb(refs, nref, stage, level, entry, e, guest_level)
        unflagged |= p[0, G_A] & ~e
        reason, leaf, next_level = check_nb(e, level, p)
        if reason == PERMISSION:
            denied = True
        elif reason != 0:
            return reason, level, zero, zero, nref
        if leaf:
            break
        table = e & p[0, G_TABLE_ADDR]
        want = next_level    # below level: check_nb makes anything else malformed
    if p[0, G_AF] != 0 and (e & p[0, G_AF]) == 0:
        return ACCESS_FLAG, level, zero, zero, nref
    if denied:
        return PERMISSION, level, zero, zero, nref
    if p[0, C_ACCESS] == W:
        unflagged |= p[0, G_D] & ~e
    if unflagged != 0:       # most walks find every flag set already
        set_accessed_dirty_nb(keys, slots, frames, size, refs, start, nref, stage,
                              p[0, C_ACCESS], p)
    page = np.int64(1) << p[level, L_SHIFT]
    return zero, level, (e & p[level, L_LEAF_ADDR]) | (addr & (page - 1)), page, nref


@njit
def stage_nb(keys, slots, frames, size, addr, root, d, access, user, wp, refs, nref, stage,
             guest_level):
    """One stage. Returns ``(reason, level, out, page_size, nref)``; a fault's address is
    ``addr``."""
    return stage_call_nb(keys, slots, frames, size, addr, root,
                         prepare_nb(d, access, user, wp), refs, nref, stage, guest_level)


@njit(_nrt=False)
def stage_call_nb(keys, slots, frames, size, addr, root, p, refs, nref, stage, guest_level):
    """:func:`stage_prepared_nb` as a call of its own, so that callers with reference
    counting do not inline it into their loops."""
    return stage_prepared_nb(keys, slots, frames, size, addr, root, p, refs, nref, stage,
                             guest_level)


@njit
def probe_nb(d2, wp):
    """The second-stage descriptor that asks whether a GPA may be written, for the
    accessed and dirty flags of first-stage entries: no refs, no flags of its own."""
    p = prepare_nb(d2, W, False, wp)
    p[0, G_A] = 0
    p[0, G_D] = 0
    p[0, C_RECORD] = 0
    return p


@njit(_nrt=False)
def ad_writable_nb(keys, slots, frames, size, va, root, d1, access, second_root, p2_probe,
                   refs, start, nref):
    """``(reason, level, gpa)``: whether the second stage lets the first stage set the
    flags its entries (refs from ``start``, the first one in the table at GPA ``root``) lack;
    a refusal names the entry's GPA (reference :func:`~svmkit.walker.reference.stage_walk`,
    VT-d 0x77)."""
    zero = np.int64(0)
    end = min(nref, refs.shape[0])
    last, a, dirty = flags_wanted_nb(refs, start, end, FIRST, access, d1)
    table = root
    for k in range(start, end):
        if refs[k, 0] != FIRST:
            continue
        level, e = refs[k, 1], refs[k, 3]
        gpa = table + index_nb(va, level, d1) * 8
        flags = a | (dirty if k == last else 0)
        if (e & flags) != flags:
            r = stage_call_nb(keys, slots, frames, size, gpa, second_root, p2_probe, refs,
                              nref, np.int64(SECOND), level)   # not a literal: see translate_nb
            if r[0] != 0:
                return AD_PERMISSION, r[1], gpa
        table = e & d1[0, G_TABLE_ADDR]
    return zero, zero, zero


@njit(_nrt=False, inline="always")
def walk_prepared_nb(keys, slots, frames, size, va, root, p1, second_root, p2_table, p2,
                     p2_probe, nested, refs, nref):
    """:func:`walk_nb` with prepared descriptors: ``p1`` for the first stage, ``p2_table``
    for the second-stage reads of guest tables, ``p2`` for the final GPA, ``p2_probe``
    (:func:`probe_nb`) for the flag updates of first-stage entries. Inlined into the loop of
    :func:`translate_loop_nb`; a call would pass a dozen arrays on the stack for every
    address.

    Two stage walks, each from one place: the second-stage walk of each guest table entry's
    GPA, and the last walk (the final GPA; without nesting, the whole one-stage walk). Each
    is compiled once, and each always walks with the same descriptor, so that a
    :func:`specialized` walker can fold it into constants."""
    zero = np.int64(0)
    page = np.int64(-1)                  # the guest's page size; none without nesting
    gpa = zero
    if nested:
        if not fits_nb(va, p1):
            return ADDRESS_WIDTH, FIRST, p1[0, G_LEVELS], va, zero, zero, nref, zero
        start = nref
        table = root
        denied = False
        unflagged = zero
        e = zero
        want = p1[0, G_LEVELS]
        for level in range(p1[0, G_LEVELS], 0, -1):     # counted, as in stage_prepared_nb
            if level != want:
                continue
            gpa = table + index_nb(va, level, p1) * 8
            reason, slevel, out, psize, nref = stage_prepared_nb(
                keys, slots, frames, size, gpa, second_root, p2_table, refs, nref, SECOND,
                level)
            if reason != 0:
                return reason, SECOND, slevel, gpa, zero, zero, nref, zero
            # the guest's entry, now that the second stage said where it lies
            ok, e = load(keys, slots, frames, size, out)
            if not ok:
                return NON_EXISTENT, FIRST, level, va, zero, zero, nref, zero
            nref = record_nb(refs, nref, FIRST, level, out, e, -1)
            unflagged |= p1[0, G_A] & ~e
            reason, leaf, next_level = check_nb(e, level, p1)
            if reason == PERMISSION:
                denied = True
            elif reason != 0:
                return reason, FIRST, level, va, zero, zero, nref, zero
            if leaf:
                break
            table = e & p1[0, G_TABLE_ADDR]
            want = next_level
        if p1[0, G_AF] != 0 and (e & p1[0, G_AF]) == 0:
            return ACCESS_FLAG, FIRST, level, va, zero, zero, nref, zero
        if denied:
            return PERMISSION, FIRST, level, va, zero, zero, nref, zero
        if p1[0, C_ACCESS] == W:
            unflagged |= p1[0, G_D] & ~e
        if unflagged != 0:
            reason, slevel, where = ad_writable_nb(keys, slots, frames, size, va, root, p1,
                                                   p1[0, C_ACCESS], second_root, p2_probe,
                                                   refs, start, nref)
            if reason != 0:
                return reason, SECOND, slevel, where, zero, zero, nref, zero
            set_accessed_dirty_nb(keys, slots, frames, size, refs, start, nref, FIRST,
                                  p1[0, C_ACCESS], p1)
        page = np.int64(1) << p1[level, L_SHIFT]
        gpa = (e & p1[level, L_LEAF_ADDR]) | (va & (page - 1))
        addr, sroot, p, stage, guest_level = gpa, second_root, p2, SECOND, zero
    else:
        addr, sroot, p, stage, guest_level = va, root, p1, FIRST, np.int64(-1)
    reason, slevel, out, psize, nref = stage_prepared_nb(keys, slots, frames, size, addr,
                                                         sroot, p, refs, nref, stage,
                                                         guest_level)
    if not nested:
        return reason, FIRST, slevel, va if reason != 0 else zero, out, psize, nref, zero
    if reason != 0:
        return reason, SECOND, slevel, gpa, zero, zero, nref, gpa
    return zero, SECOND, zero, zero, out, min(page, psize), nref, gpa


@njit
def walk_nb(keys, slots, frames, size, va, root, d1, second_root, d2, nested, access, user,
            wp, refs, nref):
    """One translation. Returns ``(reason, stage, level, fault_address, pa, page_size,
    nref, gpa)``."""
    detail = np.zeros((1, 8), dtype=np.int64)
    translate_prepared_nb(keys, slots, frames, size, np.full(1, va, dtype=np.int64), root,
                          prepare_nb(d1, access, user, wp), second_root,
                          prepare_nb(d2, R, False, wp), prepare_nb(d2, access, False, wp),
                          probe_nb(d2, wp), nested, refs, nref, np.zeros(1, dtype=np.int64),
                          np.zeros(1, dtype=np.int32), detail)
    r = detail[0]
    return r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]


@njit(_nrt=False, inline="always")
def translate_loop_nb(keys, slots, frames, size, vas, root, p1, second_root, p2_table, p2,
                      p2_probe, nested, refs, nref, pa_out, fault_out, detail):
    """Walk every address of ``vas``, refs from row ``nref``: ``pa_out`` and ``fault_out``
    as :func:`translate_nb` gives them and, for the addresses ``detail`` has a row for,
    the result of :func:`walk_nb`. The walk is inlined here, without reference counting."""
    for i in range(vas.shape[0]):
        r = walk_prepared_nb(keys, slots, frames, size, vas[i], root, p1, second_root,
                             p2_table, p2, p2_probe, nested, refs, nref)
        if r[0] == 0:
            pa_out[i] = r[4]
            fault_out[i] = 0
        else:
            pa_out[i] = 0
            fault_out[i] = r[0] | (r[1] << 4)
        if i < detail.shape[0]:
            detail[i, 0], detail[i, 1], detail[i, 2], detail[i, 3] = r[0], r[1], r[2], r[3]
            detail[i, 4], detail[i, 5], detail[i, 6], detail[i, 7] = r[4], r[5], r[6], r[7]


@njit(_nrt=False)
def translate_prepared_nb(keys, slots, frames, size, vas, root, p1, second_root, p2_table, p2,
                          p2_probe, nested, refs, nref, pa_out, fault_out, detail):
    """:func:`translate_loop_nb` as a call of its own: a batch and a single walk share
    this one compiled copy of the walk (two copies doubled the cold compile)."""
    translate_loop_nb(keys, slots, frames, size, vas, root, p1, second_root, p2_table, p2,
                      p2_probe, nested, refs, nref, pa_out, fault_out, detail)


@njit
def translate_nb(keys, slots, frames, size, vas, root, d1, second_root, d2, nested, access,
                 user, wp, pa_out, fault_out):
    """Batch translation: ``pa_out[i]`` and ``fault_out[i]`` (0, or reason | stage << 4)."""
    refs = np.empty((MAX_REFS, REF_COLUMNS), dtype=np.int64)
    p1, p2_table, p2, p2_probe = batch_descriptors(d1, d2, access, user, wp)
    # np.int64(0), not 0: a literal 0 would make numba compile the walk a second time
    translate_prepared_nb(keys, slots, frames, size, vas, root, p1, second_root, p2_table,
                          p2, p2_probe, nested, refs, np.int64(0), pa_out, fault_out,
                          np.zeros((0, 8), dtype=np.int64))


@njit
def batch_descriptors(d1, d2, access, user, wp):
    """``(p1, p2_table, p2, p2_probe)`` for a batch: prepared for the access, and asking
    for no refs that nobody reads (:func:`unrecorded`)."""
    p1, p2_table, p2 = (prepare_nb(d1, access, user, wp), prepare_nb(d2, R, False, wp),
                        prepare_nb(d2, access, False, wp))
    for p in (p1, p2_table, p2):
        unrecorded(p)
    return p1, p2_table, p2, probe_nb(d2, wp)


_specialized = {}


def specialized(p1, p2_table, p2, p2_probe, nested):
    """A batch walker compiled for these descriptors, as Linux ``generic_pt`` compiles its
    one walker once per format: the descriptors are constants of the compiled code, so the
    compiler unrolls the level loops and folds every descriptor read and every branch on
    one (the walk is that of :func:`translate_loop_nb`, unchanged). Called as
    ``fn(keys, slots, frames, size, vas, root, second_root, refs, pa_out, fault_out,
    detail)``, the arrays as for :func:`translate_prepared_nb`.

    Compiling one costs about as much as compiling the generic walker, once per
    configuration: numba's disk cache keys it on the descriptors' values. Memoized here
    too, so a configuration is looked up once per process."""
    key = (p1.tobytes(), p2_table.tobytes(), p2.tobytes(), p2_probe.tobytes(), bool(nested))
    fn = _specialized.get(key)
    if fn is None:
        fn = _specialize(p1.copy(), p2_table.copy(), p2.copy(), p2_probe.copy(),
                         bool(nested))
        _specialized[key] = fn
    return fn


def _specialize(p1, p2_table, p2, p2_probe, nested):
    # numba freezes the arrays of a closure into the compiled code as constants
    @njit(_nrt=False)
    def translate_specialized_nb(keys, slots, frames, size, vas, root, second_root, refs,
                                 pa_out, fault_out, detail):
        translate_loop_nb(keys, slots, frames, size, vas, root, p1, second_root, p2_table,
                          p2, p2_probe, nested, refs, 0, pa_out, fault_out, detail)
    return translate_specialized_nb


@njit
def unrecorded(p):
    """Ask a stage for no refs when nobody reads them: a batch returns none, and only a
    stage that sets accessed or dirty flags reads its own (24 stores fewer per nested
    4+4 translation)."""
    if p[0, G_A] == 0 and p[0, G_D] == 0:
        p[0, C_RECORD] = 0
