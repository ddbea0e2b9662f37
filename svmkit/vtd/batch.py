"""`Iommu.translate_many`: many DMA requests of one device and PASID,
compiled, with the IOTLB in the loop.

The root, context and PASID structures are decoded once (through the
context- and PASID-caches, as `translate` does: the first request of the
batch may miss, the others hit). Then each address is looked up in the
IOTLB (the same arrays `translate` uses) and, on a miss, walked with the
compiled walker (`svmkit.walker.jit`), and the translation is cached.
Fault numbers are computed as `Iommu.fault_code` computes them (VT-d
§7.1.3); `tests/test_vtd_batch.py` holds the two equal.

Fault recording: the hardware has a fixed number of fault recording
registers (CAP_REG.NFR, up to 256) and sets PFO when they overflow; a batch
records at most `MAX_RECORDS` faults and counts the rest in
`iommu.faults_dropped`.
"""
from __future__ import annotations

import numpy as np

from .._jit import njit
from ..formats.layout import L_LEAF, L_LEAF_MASK, L_LEAF_VAL, LEAF_ALWAYS, LEAF_IF
from ..walker import faults as F
from ..walker.jit import MAX_REFS, REF_COLUMNS, stage_nb, walk_nb
from .caches import (F_DIRTY, F_FL, F_GLOBAL, F_R, F_U, F_W, F_WSUP, F_X, iotlb_fill,
                     iotlb_lookup)

MAX_RECORDS = 256
PGTT_IDS = {"first": 1, "second": 2, "nested": 3, "pass-through": 4}

NOT_PRESENT, RESERVED, PERMISSION, NON_EXISTENT, ADDRESS_WIDTH = (
    F.reason_id(n) for n in ("not-present", "reserved-bit", "permission",
                             "non-existent-memory", "address-width"))


@njit
def _is_leaf(e, level, d):
    kind = d[level, L_LEAF]
    return kind == LEAF_ALWAYS or (kind == LEAF_IF and e & d[level, L_LEAF_MASK] ==
                                   d[level, L_LEAF_VAL])


@njit
def fault_code_nb(scalable, pgtt, reason, stage, level, access, user, refs, n, d1,
                  levels1, levels2):
    """Iommu.fault_code, compiled (VT-d §7.1.3)."""
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
    guest_level = 0
    if pgtt == 3:
        last = -1
        for i in range(n):
            if refs[i, 0] == F.FIRST:
                last = i
        if last < 0:
            guest_level = levels1
        elif not _is_leaf(refs[last, 3], refs[last, 1], d1):
            guest_level = refs[last, 1] - 1
    if reason == ADDRESS_WIDTH:
        return 0x74 if pgtt == 3 else 0x83
    if reason == RESERVED:
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
def rights_nb(refs, n, access, ssade):
    """Iommu._rights, compiled: IOTLB flags from a successful walk's refs."""
    fl = F_R | F_W | F_WSUP | F_U | F_X | F_DIRTY
    last_first = -1
    last_second = -1
    for i in range(n):
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


@njit
def batch_nb(keys, slots, frames, size, vas, scalable, pgtt, root1, d1, levels1, root2, d2,
             levels2, access, user, wp, ssade, haw, did, pasid, need, iotlb_on,
             tag_did, tag_pasid, tag_vpn, pa_base, flags, stamp, clock, rng, policy,
             pa_out, code_out, stats):
    """stats: [iotlb hits, iotlb misses]."""
    refs = np.empty((MAX_REFS, REF_COLUMNS), dtype=np.int64)
    dirty_needed = access == F.W
    zero = np.int64(0)
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
        if pgtt == 1:
            reason, level, pa, page, n = stage_nb(keys, slots, frames, size, va, root1, d1,
                                                  access, user, wp, refs, 0, F.FIRST, -1)
            stage = F.FIRST
        elif pgtt == 2:
            reason, level, pa, page, n = stage_nb(keys, slots, frames, size, va, root2, d2,
                                                  access, False, False, refs, 0, F.SECOND, -1)
            stage = F.SECOND
        else:
            reason, stage, level, where, pa, page, n, gpa = walk_nb(
                keys, slots, frames, size, va, root1, d1, root2, d2, True, access, user, wp,
                refs, 0)
        if reason != 0:
            pa_out[i] = 0
            code_out[i] = fault_code_nb(scalable, pgtt, reason, stage, level, access, user,
                                        refs, n, d1, levels1, levels2)
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
                       did, pasid, va, shift, pa, rights_nb(refs, n, access, ssade))


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
        d1 = empty if d1 is None else d1
        d2 = empty if d2 is None else d2
        keys, slots, frames, size = iommu.mem.arrays()
        t = iommu.iotlb
        stats = np.zeros(2, np.int64)
        acc = F.ACCESSES.index(access)
        batch_nb(keys, slots, frames, size, vas, cfg.mode == "scalable", PGTT_IDS[cfg.pgtt],
                 cfg.first_root, d1, cfg.first_levels, cfg.second_root, d2, cfg.second_levels,
                 acc, not cfg.privileged, cfg.wpe, cfg.ssade, iommu.haw, cfg.did, cfg.pasid,
                 iommu._need(cfg, access), t.enabled, t.tag_did, t.tag_pasid, t.tag_vpn,
                 t.pa_base, t.flags, t.stamp, t.clock, t.rng, t.policy_id, pa, code, stats)
        t.hits += int(stats[0])
        t.misses += int(stats[1])
        fpd = cfg.fpd
        stage = None
    bad = np.nonzero(code)[0]
    from ..walks import Fault
    for k, i in enumerate(bad):
        if k >= MAX_RECORDS:
            iommu.faults_dropped = getattr(iommu, "faults_dropped", 0) + len(bad) - k
            break
        c = int(code[i])
        f = Fault(stage or "walk", 0, "", int(vas[i]) & ((1 << 64) - 1), c, access)
        iommu._record(f, source_id, pasid, access, cfg.privileged if err is None else False,
                      fpd)
    return pa.view(np.uint64), code
