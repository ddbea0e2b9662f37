"""Host-physical memory: sparse 4 KiB frames that the compiled walkers read in place.

A 52-bit physical address space cannot be an array, but a page table at 0x1_2345_6000 must
cost one frame. :class:`Memory` keeps the frames that were written as rows of an (n, 512)
int64 array, ``frames``, and finds a frame's row from a directory whose first level,
``top``, is indexed by address bits 51:30. Two layouts, both read by
:func:`svmkit._memjit.find`:

- *window* (Linux): a negative ``top`` entry numbers a 1 GiB region of ``frames`` itself,
  which is an anonymous mapping reserved without swap accounting (MAP_NORESERVE) that the
  kernel backs only where written. A frame sits at its own offset in its region, so one
  cached read of ``top`` finds it, as a flat array would. A 2 MiB block in which 32 frames
  were written is made one huge page (MADV_COLLAPSE), so that walks over dense tables do
  not miss the TLB at every read; sparse frames stay 4 KiB each.
- *radix* (other systems, and when address space runs out): ``frames`` is compact; a
  positive ``top`` entry names a row of ``nodes`` indexed by bits 29:21, whose entry names
  another row indexed by bits 20:12, whose entry is the frame's row + 1 (0: never written).

Frames never written read as zeros. The arrays are handed to numba code as they are
(``Memory.arrays``), never copied. Values are little-endian, as on x86 and Arm.
"""

import mmap
import sys

import numpy as np

PAGE = 4096
MAX_PHYS = 1 << 52
REGION_FRAMES = 1 << 18                # frames in a 1 GiB region of the window layout
BLOCK_FRAMES = 512                     # frames in a 2 MiB block, one huge page
DENSE = 32                             # frames written in a 2 MiB block that earn it a huge page
_NORESERVE = 0x4000                    # MAP_NORESERVE on Linux (the mmap module lacks it)
_COLLAPSE = 25                         # MADV_COLLAPSE, Linux 6.1 (the mmap module lacks it)
_M64 = (1 << 64) - 1


class NonExistentMemory(ValueError):
    """An access at or beyond the installed memory (``Memory.size``)."""


def _reserve(regions):
    """Address space for ``regions`` 1 GiB regions of frames, in an anonymous mapping that
    the kernel backs only where written, or None where it cannot be had."""
    try:
        return mmap.mmap(-1, regions * REGION_FRAMES * PAGE,
                         flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _NORESERVE)
    except (OSError, ValueError, OverflowError):
        return None


class Memory:
    """Host-physical memory of ``size`` bytes (None: the whole 52-bit space).

    ``write(pa, data)``, ``read(pa, n)``, ``read_u64(pa)`` and ``write_u64(pa, value)`` raise
    :class:`NonExistentMemory` for an access that reaches ``size``, and ValueError for an
    address outside 0..2^52. ``layout`` picks the directory ("window", "radix"; "auto":
    window where it can be had); it changes speed, never contents.
    """

    WINDOW_REGIONS = 4       # 1 GiB regions reserved at first (address space, not RAM)

    def __init__(self, size=None, *, layout="auto"):
        if size is None:
            size = MAX_PHYS
        if not isinstance(size, (int, np.integer)) or isinstance(size, bool) \
                or not 0 < size <= MAX_PHYS:
            raise ValueError(f"size={size!r} is not allowed; allowed: None or 1 to 2**52 bytes")
        if layout not in ("auto", "window", "radix"):
            raise ValueError(f"layout={layout!r} is not allowed; allowed: auto, window, radix")
        self.size = int(size)
        self._slot_of = {}                       # frame number -> row of _frames
        # 16 MiB of address space, of which the OS backs only the pages touched
        self._top = np.zeros(1 << 22, dtype=np.int32)
        self._map = None
        if layout != "radix" and sys.platform.startswith("linux"):
            self._map = _reserve(self.WINDOW_REGIONS)
        if layout == "window" and self._map is None:
            raise ValueError("layout='window' needs Linux and free address space")
        if self._map is not None:
            self._frames = np.frombuffer(self._map, dtype=np.int64).reshape(-1, PAGE // 8)
            self._nodes = np.zeros((1, 512), dtype=np.int32)     # the radix layout's
            self._regions = 0
            self._written = {}                   # 2 MiB block -> frames written in it
        else:
            self._frames = np.zeros((16, PAGE // 8), dtype=np.int64)
            self._to_radix()

    @property
    def layout(self):
        """"window" or "radix" (see the module's docstring)."""
        return "radix" if self._map is None else "window"

    # -- compiled access ---------------------------------------------------------------------

    def arrays(self):
        """``(top, nodes, frames, size)`` for :mod:`svmkit._memjit`, ``frames`` flat (row r
        is entries ``512 r`` to ``512 r + 511``); valid until the next write that adds a
        frame."""
        return self._top, self._nodes, self._frames.reshape(-1), self.size

    @property
    def frames_in_use(self):
        return len(self._slot_of)

    def frames(self):
        """Physical addresses of the frames that were written, in ascending order."""
        return [fn * PAGE for fn in sorted(self._slot_of)]

    def _row(self, frame, create):
        row = self._slot_of.get(frame)
        if row is None and create:
            if self._map is not None:
                row = self._window_row(frame)
            if self._map is None:                # radix, possibly since just now
                row = len(self._slot_of)
                if row == len(self._frames):
                    self._frames = np.concatenate([self._frames, np.zeros_like(self._frames)])
                self._link(frame, row)
            self._slot_of[frame] = row
        return row

    # -- window layout -----------------------------------------------------------------------

    def _window_row(self, frame):
        """The row of a frame about to be written, in its region (numbered on first use);
        None when the regions ran out and the layout became radix."""
        hi = frame >> 18
        if self._top[hi] == 0:
            if self._regions == len(self._frames) // REGION_FRAMES:
                self._grow_window()
                if self._map is None:
                    return None
            self._regions += 1
            self._top[hi] = -self._regions       # negative: a region of the window
        row = ((-int(self._top[hi]) - 1) << 18) | (frame & (REGION_FRAMES - 1))
        block = row // BLOCK_FRAMES
        self._written[block] = self._written.get(block, 0) + 1
        if self._written[block] == DENSE:
            self._huge(block)
        return row

    def _huge(self, block):
        """Back a 2 MiB block with one huge page, where the kernel can (speed only)."""
        try:
            self._map.madvise(_COLLAPSE, block * BLOCK_FRAMES * PAGE, BLOCK_FRAMES * PAGE)
        except (OSError, ValueError, AttributeError):
            pass

    def _grow_window(self):
        """Twice the regions, copying the frames written (they keep their rows); the radix
        layout when the address space for that is not to be had."""
        regions = 2 * len(self._frames) // REGION_FRAMES
        new = _reserve(regions) if regions <= len(self._top) else None
        if new is None:
            self._to_radix()
            return
        frames = np.frombuffer(new, dtype=np.int64).reshape(-1, PAGE // 8)
        for row in self._slot_of.values():       # only what was written: the map stays sparse
            frames[row] = self._frames[row]
        self._map, self._frames = new, frames
        for block, n in self._written.items():
            if n >= DENSE:
                self._huge(block)

    # -- radix layout ------------------------------------------------------------------------

    def _to_radix(self):
        """Switch to (or start in) the radix layout: the frames move to compact rows and the
        directory is built anew."""
        old, self._map = self._frames, None
        self._frames = np.zeros((max(16, len(self._slot_of)), PAGE // 8), dtype=np.int64)
        for i, frame in enumerate(sorted(self._slot_of)):
            self._frames[i] = old[self._slot_of[frame]]
            self._slot_of[frame] = i
        self._top = np.zeros(1 << 22, dtype=np.int32)
        self._nodes = np.zeros((16, 512), dtype=np.int32)   # row 0 stays empty
        self._nodes_used = 1
        for frame, row in self._slot_of.items():
            self._link(frame, row)

    def _node(self):
        if self._nodes_used == len(self._nodes):
            self._nodes = np.concatenate([self._nodes, np.zeros_like(self._nodes)])
        self._nodes_used += 1
        return self._nodes_used - 1

    def _link(self, frame, row):
        """Enter ``frame`` -> ``row`` in the radix directory."""
        hi, mid, lo = frame >> 18, (frame >> 9) & 511, frame & 511
        if self._top[hi] == 0:
            self._top[hi] = self._node()
        n1 = self._top[hi]
        if self._nodes[n1, mid] == 0:
            self._nodes[n1, mid] = self._node()
        self._nodes[self._nodes[n1, mid], lo] = row + 1

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
