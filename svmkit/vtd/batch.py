"""`Iommu.translate_many`: many DMA requests of one device and PASID,
compiled, with the IOTLB in the loop.

The root, context and PASID structures are decoded once (through the
context- and PASID-caches, as `translate` does: the first request of the
batch may miss, the others hit). Then each address is looked up in the
IOTLB (the same arrays `translate` uses) and, on a miss, walked with the
compiled walker (`svmkit.walker.jit`), and the translation is cached.
Fault numbers are computed as `Iommu.fault_code` computes them (VT-d
§7.1.3); `tests/test_vtd_batch.py` holds the two equal.

Paging-structure caches: the compiled loop keeps its own, direct-mapped
first-level (with nested combined entries) and second-level caches for the
duration of the batch (fresh at each call; `translate`'s live in Python).
They change which entries a miss reads, never the result.

Fault recording: the hardware has a fixed number of fault recording
registers (CAP_REG.NFR, up to 256) and sets PFO when they overflow; a batch
records at most `MAX_RECORDS` faults and counts the rest in
`iommu.faults_dropped`.
"""
from __future__ import annotations

import numpy as np

from .._jit import njit
from .._memjit import load
from ..formats.layout import (G_LEVELS, G_TABLE_ADDR, L_LEAF, L_LEAF_ADDR, L_LEAF_MASK,
                              L_LEAF_VAL, L_SHIFT, LEAF_ALWAYS, LEAF_IF, READ, USER, WRITE,
                              XUSER)
from ..walker import faults as F
from ..walker.jit import (ALL_RIGHTS, MAX_REFS, REF_COLUMNS, ad_writable_nb, classify_nb,
                          fits_nb, index_nb, probe_nb,
                          leaf_check_nb, permitted_nb, record_nb, rights_nb,
                          set_accessed_dirty_nb, stage_nb)
from .caches import (F_DIRTY, F_FL, F_GLOBAL, F_R, F_U, F_W, F_WSUP, F_X, iotlb_fill,
                     iotlb_lookup)

MAX_RECORDS = 256
PSC_SETS = 64          # slots per level of the batch's paging-structure caches
PGTT_IDS = {"first": 1, "second": 2, "nested": 3, "pass-through": 4}

NOT_PRESENT, RESERVED, PERMISSION, NON_EXISTENT, ADDRESS_WIDTH, AD_PERMISSION = (
    F.reason_id(n) for n in ("not-present", "reserved-bit", "permission",
                             "non-existent-memory", "address-width", "ad-permission"))


@njit
def _is_leaf(e, level, d):
    kind = d[level, L_LEAF]
    return kind == LEAF_ALWAYS or (kind == LEAF_IF and e & d[level, L_LEAF_MASK] ==
                                   d[level, L_LEAF_VAL])


@njit
def fault_code_nb(scalable, pgtt, reason, stage, level, access, user, refs, n, d1,
                  levels1, levels2, fl_start, d2w, haw):
    """Iommu.fault_code, compiled (VT-d §7.1.3). `d2w`: the second-level
    descriptor with every address bit allowed (Iommu._beyond_haw_only)."""
    if not scalable and (pgtt == 2 or pgtt == 4):        # legacy / extended second level
        if reason == NOT_PRESENT or reason == PERMISSION:
            return 5 if access == F.W else 6
        if reason == ADDRESS_WIDTH:
            return 4
        if reason == NON_EXISTENT:
            return 7
        return 0xC
    if stage == F.FIRST:
        if reason == ADDRESS_WIDTH:
            return 0x80
        if reason == NOT_PRESENT:
            return 0x71
        if reason == RESERVED:
            return 0x72
        if reason == NON_EXISTENT:
            return 0x73 if level == levels1 else 0x70
        if user:
            for i in range(n):
                if refs[i, 0] == F.FIRST and refs[i, 3] & 4 == 0:
                    return 0x81
        if access == F.W:
            return 0x85
        if access == F.X:
            return 0x82
        return 0x86
    if reason == AD_PERMISSION:
        return 0x77
    guest_level = 0
    if pgtt == 3:
        last = -1
        for i in range(n):
            if refs[i, 0] == F.FIRST:
                last = i
        if last < 0:
            guest_level = fl_start
        elif not _is_leaf(refs[last, 3], refs[last, 1], d1):
            guest_level = refs[last, 1] - 1
    if reason == ADDRESS_WIDTH:
        return 0x74 if pgtt == 3 else 0x83
    if reason == RESERVED:
        last = -1
        for i in range(min(n, refs.shape[0])):
            if refs[i, 0] == F.SECOND:
                last = i
        # an address at or above HAW is the only fault: SGN.5 (0x84)
        if scalable and haw < 52 and last >= 0 and \
                classify_nb(refs[last, 3], refs[last, 1], d2w)[0] == 0:
            return 0x84
        return 0x7A
    if reason == NON_EXISTENT:
        return 0x7B if level == levels2 else 0x78
    if guest_level != 0:
        return 0x75 if guest_level == levels1 else 0x76
    if reason == NOT_PRESENT:
        return 0x79
    if access == F.W:
        return 0x85
    if access == F.X:
        return 0x82
    return 0x86


@njit
def iotlb_flags_nb(refs, n, access, ssade, fl_cached, sl_cached):
    """Iommu._rights, compiled: IOTLB flags from a successful walk's refs
    and the rights of the levels a paging-structure cache supplied."""
    fl = F_R | F_W | F_WSUP | F_U | F_X | F_DIRTY
    if fl_cached >> WRITE & 1 == 0:
        fl &= ~F_W
    if fl_cached >> USER & 1 == 0:
        fl &= ~F_U
    if fl_cached >> XUSER & 1 == 0:
        fl &= ~F_X
    if sl_cached >> READ & 1 == 0:
        fl &= ~(F_R | F_X)
    if sl_cached >> WRITE & 1 == 0:
        fl &= ~(F_W | F_WSUP)
    last_first = -1
    last_second = -1
    for i in range(min(n, refs.shape[0])):
        e = refs[i, 3]
        if refs[i, 0] == F.FIRST:
            fl |= F_FL
            last_first = i
            if e & 2 == 0:
                fl &= ~F_W
            if e & 4 == 0:
                fl &= ~F_U
            if e < 0:                                     # XD, bit 63
                fl &= ~F_X
        elif refs[i, 4] <= 0:
            last_second = i
            if e & 1 == 0:
                fl &= ~(F_R | F_X)
            if e & 2 == 0:
                fl &= ~(F_W | F_WSUP)
    if last_first >= 0:
        leaf = refs[last_first, 3]
        if leaf & 0x100:
            fl |= F_GLOBAL
        if leaf & 0x40 == 0 and access != F.W:
            fl &= ~F_DIRTY
    if last_second >= 0 and ssade and refs[last_second, 3] & 0x200 == 0 and access != F.W:
        fl &= ~F_DIRTY
    return fl


# -- paging-structure caches, one direct-mapped array per level -------------

@njit
def psc_lookup_nb(pvalid, ptag, ptable, prights, pcomb, addr, d, access, user, wp):
    """Deepest usable entry (its rights must allow the request): (level to
    start at, table, cached rights, combined HPA or -1); table -1 if none."""
    top = d[0, G_LEVELS]
    mask = ptag.shape[1] - 1
    for lv in range(2, top + 1):
        pre = addr >> d[lv, L_SHIFT]
        i = pre & mask
        if pvalid[lv, i] != 0 and ptag[lv, i] == pre and \
                permitted_nb(prights[lv, i], access, user, wp, d):
            return lv - 1, ptable[lv, i], prights[lv, i], pcomb[lv, i]
    return top, np.int64(-1), np.int64(ALL_RIGHTS), np.int64(-1)


@njit
def psc_fill_nb(pvalid, ptag, ptable, prights, pcomb, addr, d, refs, start, n, stage,
                rights, nested):
    """Cache the valid non-leaf entries of `stage` in refs[start:n]; under
    nesting also where each one's next table sits in host memory."""
    mask = ptag.shape[1] - 1
    plv = -1
    pi = 0
    for k in range(start, min(n, refs.shape[0])):
        if refs[k, 0] != stage:
            continue
        if nested and plv >= 0:
            pcomb[plv, pi] = refs[k, 2] & ~np.int64(0xFFF)
        e = refs[k, 3]
        lv = refs[k, 1]
        reason, leaf, _ = classify_nb(e, lv, d)
        if reason != 0 or leaf:
            break
        rights &= rights_nb(e, lv, False, d)
        pre = addr >> d[lv, L_SHIFT]
        i = pre & mask
        pvalid[lv, i] = 1
        ptag[lv, i] = pre
        ptable[lv, i] = e & d[0, G_TABLE_ADDR]
        prights[lv, i] = rights
        pcomb[lv, i] = -1
        plv = lv
        pi = i


@njit
def sl_walk_nb(keys, slots, frames, size, gpa, root2, d2s, levels2, access, refs, nref,
               guest_level, on, sv, st, stb, sr, sc):
    """A second-level walk through the second-level paging-structure cache.
    Returns (reason, level, out, page, nref, cached rights)."""
    d2 = d2s[levels2]
    start, table, rights = levels2, np.int64(-1), np.int64(ALL_RIGHTS)
    if on:
        start, table, rights, _ = psc_lookup_nb(sv, st, stb, sr, sc, gpa, d2, access, False,
                                                False)
    if table < 0:
        table = root2
    n0 = nref
    reason, level, out, page, nref = stage_nb(keys, slots, frames, size, gpa, table,
                                              d2s[start], access, False, False, refs, nref,
                                              np.int64(F.SECOND), guest_level)
    if on:
        psc_fill_nb(sv, st, stb, sr, sc, gpa, d2, refs, n0, nref, F.SECOND, rights, False)
    return reason, level, out, page, nref, rights


@njit
def nested_nb(keys, slots, frames, size, va, d1s, levels1, root2, d2s, levels2, probe2,
              access, user, wp, refs, start, table, granted, comb, on, sv, st, stb, sr, sc):
    """The nested walk of svmkit.walker.jit.walk_nb, starting at the
    first-level table a paging-structure cache gave (`table` at level
    `start`, its host address `comb` if a combined entry had it), with
    second-level walks through the second-level cache. Returns (reason,
    stage, level, fault address, pa, page, nref, gpa, final SL rights)."""
    zero = np.int64(0)
    all_rights = np.int64(ALL_RIGHTS)
    d1 = d1s[levels1]
    if not fits_nb(va, d1):
        return np.int64(ADDRESS_WIDTH), F.FIRST, levels1, va, zero, zero, 0, zero, all_rights
    nref = 0
    level = start
    first_table = table
    e = zero
    while True:
        gpa = table + index_nb(va, level, d1) * 8
        if comb >= 0 and level == start:
            entry = comb + (gpa & 0xFFF)
        else:
            r = sl_walk_nb(keys, slots, frames, size, gpa, root2, d2s, levels2, F.R, refs,
                           nref, level, on, sv, st, stb, sr, sc)
            nref = r[4]
            if r[0] != 0:
                return r[0], F.SECOND, r[1], gpa, zero, zero, nref, zero, all_rights
            entry = r[2]
        ok, e = load(keys, slots, frames, size, entry)
        if not ok:
            return np.int64(NON_EXISTENT), F.FIRST, level, va, zero, zero, nref, zero, \
                all_rights
        nref = record_nb(refs, nref, F.FIRST, level, entry, e, -1)
        reason, leaf, next_level = classify_nb(e, level, d1)
        if reason != 0:
            return reason, F.FIRST, level, va, zero, zero, nref, zero, all_rights
        granted &= rights_nb(e, level, leaf, d1)
        if leaf:
            break
        table = e & d1[0, G_TABLE_ADDR]
        level = next_level
    reason = leaf_check_nb(e, granted, access, user, wp, d1)
    if reason != 0:
        return reason, F.FIRST, level, va, zero, zero, nref, zero, all_rights
    reason, slevel, gpa = ad_writable_nb(keys, slots, frames, size, va, first_table, d1,
                                         access, root2, probe2, refs, 0, nref)
    if reason != 0:
        return reason, F.SECOND, slevel, gpa, zero, zero, nref, zero, all_rights
    set_accessed_dirty_nb(keys, slots, frames, size, refs, 0, nref, F.FIRST, access, d1)
    page = np.int64(1) << d1[level, L_SHIFT]
    gpa = (e & d1[level, L_LEAF_ADDR]) | (va & (page - 1))
    r = sl_walk_nb(keys, slots, frames, size, gpa, root2, d2s, levels2, access, refs, nref,
                   0, on, sv, st, stb, sr, sc)
    if r[0] != 0:
        return r[0], F.SECOND, r[1], gpa, zero, zero, r[4], gpa, all_rights
    return zero, F.SECOND, zero, zero, r[2], min(page, r[3]), r[4], gpa, r[5]


@njit
def batch_nb(keys, slots, frames, size, vas, scalable, pgtt, root1, d1s, levels1, root2,
             d2s, d2w, levels2, access, user, wp, ssade, haw, did, pasid, need, iotlb_on,
             tag_did, tag_pasid, tag_vpn, pa_base, flags, stamp, clock, rng, policy,
             pa_out, code_out, stats, psc_sets):
    """stats: [iotlb hits, iotlb misses]."""
    refs = np.empty((MAX_REFS, REF_COLUMNS), dtype=np.int64)
    probe2 = probe_nb(d2s[levels2], False)     # as sl_walk_nb: no WP at second level
    dirty_needed = access == F.W
    zero = np.int64(0)
    # paging-structure caches for this batch: [level, slot]
    fv = np.zeros((6, psc_sets), np.int64)
    ft = np.zeros((6, psc_sets), np.int64)
    ftb = np.zeros((6, psc_sets), np.int64)
    fr = np.zeros((6, psc_sets), np.int64)
    fc = np.zeros((6, psc_sets), np.int64)
    sv = np.zeros((6, psc_sets), np.int64)
    st = np.zeros((6, psc_sets), np.int64)
    stb = np.zeros((6, psc_sets), np.int64)
    sr = np.zeros((6, psc_sets), np.int64)
    sc = np.zeros((6, psc_sets), np.int64)
    for i in range(vas.shape[0]):
        va = vas[i]
        if pgtt == 4:
            if va < 0 or va >> haw != 0:
                pa_out[i] = 0
                code_out[i] = 0x83 if scalable else 4
            else:
                pa_out[i] = va
                code_out[i] = 0
            continue
        if iotlb_on:
            hit, pa, shift = iotlb_lookup(tag_did, tag_pasid, tag_vpn, pa_base, flags, stamp,
                                          clock, policy, did, pasid, va, need, dirty_needed)
            if hit:
                stats[0] += 1
                pa_out[i] = pa
                code_out[i] = 0
                continue
            stats[1] += 1
        fl_cached = np.int64(ALL_RIGHTS)
        sl_cached = np.int64(ALL_RIGHTS)
        fl_start = levels1
        if pgtt == 2:
            reason, level, pa, page, n, sl_cached = sl_walk_nb(
                keys, slots, frames, size, va, root2, d2s, levels2, access, refs, 0, -1,
                iotlb_on, sv, st, stb, sr, sc)
            stage = F.SECOND
        else:
            d1 = d1s[levels1]
            if iotlb_on:
                fl_start, table, fl_cached, comb = psc_lookup_nb(fv, ft, ftb, fr, fc, va, d1,
                                                                 access, user, wp)
            else:
                table, comb = np.int64(-1), np.int64(-1)
            if table < 0:
                table = root1
            if pgtt == 1:
                reason, level, pa, page, n = stage_nb(keys, slots, frames, size, va, table,
                                                      d1s[fl_start], access, user, wp, refs,
                                                      np.int64(0), np.int64(F.FIRST),
                                                      np.int64(-1))
                stage = F.FIRST
            else:
                reason, stage, level, where, pa, page, n, gpa, sl_cached = nested_nb(
                    keys, slots, frames, size, va, d1s, levels1, root2, d2s, levels2,
                    probe2, access, user, wp, refs, fl_start, table, fl_cached, comb, iotlb_on,
                    sv, st, stb, sr, sc)
            if iotlb_on:
                psc_fill_nb(fv, ft, ftb, fr, fc, va, d1, refs, 0, n, F.FIRST, fl_cached,
                            pgtt == 3)
        if reason != 0:
            pa_out[i] = 0
            code_out[i] = fault_code_nb(scalable, pgtt, reason, stage, level, access, user,
                                        refs, n, d1s[levels1], levels1, levels2, fl_start,
                                        d2w, haw)
            continue
        if scalable and pa >= 0xFEE00000 and pa <= 0xFEEFFFFF:
            pa_out[i] = 0
            code_out[i] = 0x87                         # interrupt address range
            continue
        pa_out[i] = pa
        code_out[i] = 0
        if iotlb_on:
            shift = zero
            while (np.int64(1) << shift) < page:
                shift += 1
            iotlb_fill(tag_did, tag_pasid, tag_vpn, pa_base, flags, stamp, clock, rng, policy,
                       did, pasid, va, shift, pa,
                       iotlb_flags_nb(refs, n, access, ssade, fl_cached, sl_cached))


def _starts(d):
    """d copied for each start level: out[L] walks from level L down."""
    out = np.zeros((6,) + d.shape, np.int64)
    for lv in range(1, 6):
        out[lv] = d
        out[lv, 0, G_LEVELS] = lv
    return out


def translate_many(iommu, source_id, addresses, *, pasid=None, access="r"):
    """See `Iommu.translate_many`."""
    from .iommu import _check_int
    source_id = _check_int("source_id", source_id, 16)
    if pasid is not None:
        pasid = _check_int("pasid", pasid, iommu.pasid_width)
    if access not in F.ACCESSES:
        raise ValueError(f"access={access!r}; allowed: 'r', 'w', 'x'")
    arr = np.asarray(addresses)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ValueError("addresses: a one-dimensional array of integer addresses")
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        raise ValueError("addresses: holds a negative address; allowed: 0 to 2**64-1")
    vas = np.ascontiguousarray(arr.astype(np.uint64)).view(np.int64)
    n = len(vas)
    pa = np.zeros(n, np.int64)
    code = np.zeros(n, np.int32)
    if n == 0:
        return pa.view(np.uint64), code
    cfg, err = iommu.configure(source_id, pasid=pasid)
    if err is None and access == "x" and cfg.pgtt in ("first", "nested") and not cfg.ere:
        err = ("pasid-entry", 0x5C, cfg.fpd)
    if err is not None:
        stage, c, fpd = err
        code[:] = c
    else:
        # the other requests of the batch find the structures in the caches
        for cache, key in ((iommu.context_cache, None), (iommu.pasid_cache, None)):
            if cache.enabled:
                cache.hits += n - 1
        d1, d2 = iommu.descriptors(cfg)
        empty = np.zeros((6, 30), np.int64)
        d1s = _starts(empty if d1 is None else d1)
        d2s = _starts(empty if d2 is None else d2)
        d2w = empty if d2 is None else iommu.wide_second_descriptor(cfg)
        keys, slots, frames, size = iommu.mem.arrays()
        t = iommu.iotlb
        stats = np.zeros(2, np.int64)
        acc = F.ACCESSES.index(access)
        batch_nb(keys, slots, frames, size, vas, cfg.mode == "scalable", PGTT_IDS[cfg.pgtt],
                 cfg.first_root, d1s, cfg.first_levels, cfg.second_root, d2s, d2w,
                 cfg.second_levels, acc, not cfg.privileged, cfg.wpe, cfg.ssade, iommu.haw,
                 cfg.did, cfg.pasid, iommu._need(cfg, access), t.enabled, t.tag_did,
                 t.tag_pasid, t.tag_vpn, t.pa_base, t.flags, t.stamp, t.clock, t.rng,
                 t.policy_id, pa, code, stats, PSC_SETS)
        t.hits += int(stats[0])
        t.misses += int(stats[1])
        fpd = cfg.fpd
        stage = None
    bad = np.nonzero(code)[0]
    from ..walks import Fault
    for k, i in enumerate(bad):
        if k >= MAX_RECORDS:
            iommu.faults_dropped += len(bad) - k
            break
        c = int(code[i])
        f = Fault(stage or "walk", 0, "", int(vas[i]) & ((1 << 64) - 1), c, access)
        iommu._record(f, source_id, pasid, access, cfg.privileged if err is None else False,
                      fpd)
    return pa.view(np.uint64), code
