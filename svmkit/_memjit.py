"""Compiled access to :class:`svmkit.memory.Memory`'s arrays, for the numba walkers."""

import numpy as np

from ._jit import njit

_GOLDEN = np.int64(0x9E3779B97F4A7C15 - (1 << 64))


@njit
def find(keys, frame):
    """Row of ``frame`` in the frames array, or -1 when the frame was never written."""
    mask = keys.shape[0] - 1
    # same bucket as memory._bucket (the mask keeps only bits where an arithmetic and a
    # logical shift agree)
    p = frame * _GOLDEN
    h = (p ^ (p >> 32)) & mask
    while keys[h] != -1:
        if keys[h] == frame:
            return h
        h = (h + 1) & mask
    return -1


@njit
def load(keys, slots, frames, size, pa):
    """``(ok, value)`` of the 8-byte entry at ``pa`` (8-byte aligned); ok is False for
    non-existent memory (at or beyond ``size``, or outside 0..2^52)."""
    if pa < 0 or pa + 8 > size:
        return False, np.int64(0)
    h = find(keys, pa >> 12)
    if h < 0:
        return True, np.int64(0)
    return True, frames[slots[h], (pa & 0xFFF) >> 3]


@njit
def store(keys, slots, frames, size, pa, value):
    """Write an 8-byte entry into a frame that exists; False if it does not (the walkers only
    update entries they have just read as present, which always live in written frames)."""
    if pa < 0 or pa + 8 > size:
        return False
    h = find(keys, pa >> 12)
    if h < 0:
        return False
    frames[slots[h], (pa & 0xFFF) >> 3] = value
    return True
