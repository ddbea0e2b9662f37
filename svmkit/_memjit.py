"""Compiled access to :class:`svmkit.memory.Memory`'s arrays, for the numba walkers.

Inlined into their callers so that numba drops the reference counting of the arrays.
``frames`` comes flat (one int64 per entry, 512 per frame): a one-dimensional index is a
shift and an or, where a two-dimensional one costs a multiply by a stride on every read.
The indices are made unsigned where they cannot be negative: numba then leaves out the
wrap-around of negative indices, which sits on the walk's critical path.
"""

import numpy as np

from ._jit import njit


@njit(inline="always")
def find(top, nodes, frame):
    """Row of ``frame`` in the frames array, or -1 when it has none. A negative ``top``
    entry is a region of the window layout, where a frame's row is its offset in the
    region (never-written frames there read as zeros); a positive one a node of the radix
    layout (see :mod:`svmkit.memory`)."""
    n1 = np.int64(top[np.uint64((frame >> 18) & 0x3FFFFF)])
    if n1 < 0:
        return ((-n1 - 1) << 18) | (frame & 0x3FFFF)
    if n1 == 0:
        return -1
    n2 = nodes[n1, (frame >> 9) & 511]
    if n2 == 0:
        return -1
    return np.int64(nodes[n2, frame & 511]) - 1


@njit(inline="always")
def load(top, nodes, frames, size, pa):
    """``(ok, value)`` of the 8-byte entry at ``pa`` (8-byte aligned); ok is False for
    non-existent memory (at or beyond ``size``, or outside 0..2^52)."""
    if pa < 0 or pa + 8 > size:
        return False, np.int64(0)
    row = find(top, nodes, pa >> 12)
    if row < 0:
        return True, np.int64(0)
    return True, frames[np.uint64((row << 9) | ((pa & 0xFFF) >> 3))]


@njit(inline="always")
def store(top, nodes, frames, size, pa, value):
    """Write an 8-byte entry into a frame that exists; False if it does not. The walkers only
    update entries they have just read as present, which always live in written frames:
    a store never creates a frame that :class:`~svmkit.memory.Memory` does not know."""
    if pa < 0 or pa + 8 > size:
        return False
    row = find(top, nodes, pa >> 12)
    if row < 0:
        return False
    frames[np.uint64((row << 9) | ((pa & 0xFFF) >> 3))] = value
    return True
