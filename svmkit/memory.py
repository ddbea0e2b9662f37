"""Host-physical memory: sparse 4 KiB frames that the compiled walkers read in place.

A 52-bit physical address space cannot be an array, but a page table at 0x1_2345_6000 must
cost one frame. :class:`Memory` keeps the frames that were ever written as rows of one
(n, 512) int64 array and finds them through a three-level directory, like a page table of
its own: ``top`` is indexed by address bits 51:30, each of its entries names a row of
``nodes`` indexed by bits 29:21, whose entry names another row of ``nodes`` indexed by bits
20:12, whose entry is the frame's row (all numbers +1, so that 0 means "never written").
The upper levels of a walk's lookups stay in the CPU's cache, which a hash table's probes do
not. Frames never written read as zeros. All arrays are handed to numba code as they are
(``Memory.arrays``), never copied. Values are little-endian, as on x86 and Arm.
"""

import numpy as np

PAGE = 4096
MAX_PHYS = 1 << 52
_M64 = (1 << 64) - 1


class NonExistentMemory(ValueError):
    """An access at or beyond the installed memory (``Memory.size``)."""


class Memory:
    """Host-physical memory of ``size`` bytes (None: the whole 52-bit space).

    ``write(pa, data)``, ``read(pa, n)``, ``read_u64(pa)`` and ``write_u64(pa, value)`` raise
    :class:`NonExistentMemory` for an access that reaches ``size``, and ValueError for an
    address outside 0..2^52.
    """

    def __init__(self, size=None):
        if size is None:
            size = MAX_PHYS
        if not isinstance(size, (int, np.integer)) or isinstance(size, bool) \
                or not 0 < size <= MAX_PHYS:
            raise ValueError(f"size={size!r} is not allowed; allowed: None or 1 to 2**52 bytes")
        self.size = int(size)
        self._slot_of = {}                       # frame number -> row of _frames
        self._frames = np.zeros((16, PAGE // 8), dtype=np.int64)
        # 16 MiB of address space, of which the OS backs only the pages touched
        self._top = np.zeros(1 << 22, dtype=np.int32)
        self._nodes = np.zeros((16, 512), dtype=np.int32)   # row 0 stays empty
        self._nodes_used = 1

    # -- compiled access ---------------------------------------------------------------------

    def arrays(self):
        """``(top, nodes, frames, size)`` for :mod:`svmkit._memjit`; valid until the next
        write that adds a frame."""
        return self._top, self._nodes, self._frames, self.size

    @property
    def frames_in_use(self):
        return len(self._slot_of)

    def frames(self):
        """Physical addresses of the frames that were written, in ascending order."""
        return [fn * PAGE for fn in sorted(self._slot_of)]

    def _node(self):
        if self._nodes_used == len(self._nodes):
            self._nodes = np.concatenate([self._nodes, np.zeros_like(self._nodes)])
        self._nodes_used += 1
        return self._nodes_used - 1

    def _row(self, frame, create):
        row = self._slot_of.get(frame)
        if row is None and create:
            row = len(self._slot_of)
            if row == len(self._frames):
                self._frames = np.concatenate([self._frames, np.zeros_like(self._frames)])
            self._slot_of[frame] = row
            hi, mid, lo = frame >> 18, (frame >> 9) & 511, frame & 511
            if self._top[hi] == 0:
                self._top[hi] = self._node()
            n1 = self._top[hi]
            if self._nodes[n1, mid] == 0:
                self._nodes[n1, mid] = self._node()
            self._nodes[self._nodes[n1, mid], lo] = row + 1
        return row

    # -- byte access -------------------------------------------------------------------------

    def _check(self, pa, n):
        if not isinstance(pa, (int, np.integer)) or isinstance(pa, bool) or not 0 <= pa < MAX_PHYS:
            raise ValueError(f"pa={pa!r} is not a physical address; allowed: 0 to 2**52-1")
        if pa + n > self.size:
            raise NonExistentMemory(
                f"access at {int(pa):#x}+{n} reaches beyond installed memory ({self.size:#x} bytes)")
        return int(pa)

    def write(self, pa, data):
        """Store ``data`` (bytes-like) at ``pa``."""
        data = bytes(data)
        pa = self._check(pa, len(data))
        raw = self._frames.view(np.uint8)
        done = 0
        while done < len(data):
            addr = pa + done
            off = addr % PAGE
            n = min(PAGE - off, len(data) - done)
            row = self._row(addr // PAGE, create=True)
            raw = self._frames.view(np.uint8)          # _row may have grown the array
            raw[row, off:off + n] = np.frombuffer(data, np.uint8, n, done)
            done += n

    def read(self, pa, n):
        """``n`` bytes at ``pa``; frames never written read as zeros."""
        pa = self._check(pa, n)
        out = bytearray(n)
        raw = self._frames.view(np.uint8)
        done = 0
        while done < n:
            addr = pa + done
            off = addr % PAGE
            k = min(PAGE - off, n - done)
            row = self._row(addr // PAGE, create=False)
            if row is not None:
                out[done:done + k] = raw[row, off:off + k].tobytes()
            done += k
        return bytes(out)

    def read_u64(self, pa):
        """The little-endian 64-bit value at ``pa``, as an unsigned int."""
        pa = self._check(pa, 8)
        if pa % 8:
            return int.from_bytes(self.read(pa, 8), "little")
        row = self._slot_of.get(pa // PAGE)
        if row is None:
            return 0
        return int(self._frames[row, (pa % PAGE) // 8]) & _M64

    def write_u64(self, pa, value):
        """Store the 64-bit ``value`` (0..2^64-1, or a negative int64 bit pattern) at ``pa``."""
        if not isinstance(value, (int, np.integer)) or not -(1 << 63) <= value <= _M64:
            raise ValueError(f"value={value!r} does not fit in 64 bits")
        self.write(pa, (int(value) & _M64).to_bytes(8, "little"))


class FrameAllocator:
    """Hands out zeroed 4 KiB frames from ``base`` up to ``limit`` (exclusive), in order."""

    def __init__(self, mem, base=0x100000, limit=None):
        if base % PAGE:
            raise ValueError(f"base={base:#x} is not 4 KiB aligned")
        self.mem = mem
        self.next = base
        self.limit = mem.size if limit is None else limit

    def alloc(self, frames=1):
        """The physical address of ``frames`` fresh contiguous frames, zero-filled."""
        pa = self.next
        if pa + frames * PAGE > self.limit:
            raise MemoryError(f"no room for {frames} frame(s) below {self.limit:#x}")
        self.next += frames * PAGE
        self.mem.write(pa, bytes(frames * PAGE))
        return pa
