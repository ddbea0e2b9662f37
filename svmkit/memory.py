"""Host-physical memory: sparse 4 KiB frames that the compiled walkers read in place.

A 52-bit physical address space cannot be an array, but a page table at 0x1_2345_6000 must
cost one frame. :class:`Memory` keeps the frames that were written as rows of one compact
(n, 512) int64 array, ``frames`` (which numpy backs with huge pages once it is large), and
finds a frame's row through a directory whose first level, ``top``, is indexed by address
bits 51:30. Two layouts, both read by :func:`svmkit._memjit.find`:

- *window* (Linux): a negative ``top`` entry numbers a 1 GiB region of a row map,
  ``nodes``, with one int32 per frame (bits 29:12), kept in an anonymous mapping reserved
  without swap accounting (MAP_NORESERVE) that the kernel backs only where written: two
  cached reads find a frame's row.
- *radix* (other systems, and when address space runs out): a positive ``top`` entry names
  a row of ``nodes`` indexed by bits 29:21, whose entry names another row indexed by bits
  20:12, whose entry is the frame's row: three reads.

Row numbers are stored +1, so that 0 means "never written"; frames never written read as
zeros. The arrays are handed to numba code as they are (``Memory.arrays``), never copied.
Values are little-endian, as on x86 and Arm.
"""

import mmap
import sys

import numpy as np

PAGE = 4096
MAX_PHYS = 1 << 52
REGION_FRAMES = 1 << 18                # frames in a 1 GiB region of the window layout
HUGE_REGIONS = 4                       # regions whose row map asks for huge pages
_NORESERVE = 0x4000                    # MAP_NORESERVE on Linux (the mmap module lacks it)
_M64 = (1 << 64) - 1


class NonExistentMemory(ValueError):
    """An access at or beyond the installed memory (``Memory.size``)."""


def _reserve(regions):
    """A row map for ``regions`` 1 GiB regions (an int32 per frame) in an anonymous mapping
    that the kernel backs only where written, or None where it cannot be had."""
    try:
        m = mmap.mmap(-1, regions * REGION_FRAMES * 4,
                      flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _NORESERVE)
    except (OSError, ValueError, OverflowError):
        return None
    # The first regions hold most systems' memory, and a walk reads their row map at every
    # step: huge pages there spare it a TLB miss per read, for at most 4 MiB of RAM.
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if advice is not None:
        try:
            m.madvise(advice, 0, min(len(m), HUGE_REGIONS * REGION_FRAMES * 4))
        except OSError:
            pass
    return m


class Memory:
    """Host-physical memory of ``size`` bytes (None: the whole 52-bit space).

    ``write(pa, data)``, ``read(pa, n)``, ``read_u64(pa)`` and ``write_u64(pa, value)`` raise
    :class:`NonExistentMemory` for an access that reaches ``size``, and ValueError for an
    address outside 0..2^52. ``layout`` picks the directory ("window", "radix"; "auto":
    window where it can be had); it changes speed, never contents.
    """

    def __init__(self, size=None, *, layout="auto"):
        if size is None:
            size = MAX_PHYS
        if not isinstance(size, (int, np.integer)) or isinstance(size, bool) \
                or not 0 < size <= MAX_PHYS:
            raise ValueError(f"size={size!r} is not allowed; allowed: None or 1 to 2**52 bytes")
        self.size = int(size)
        self._slot_of = {}                       # frame number -> row of _frames
        # 16 MiB of address space, of which the OS backs only the pages touched
        self._top = np.zeros(1 << 22, dtype=np.int32)
        self._regions = 0
        self._map = None
        if layout not in ("auto", "window", "radix"):
            raise ValueError(f"layout={layout!r} is not allowed; allowed: auto, window, radix")
        if layout != "radix" and sys.platform.startswith("linux"):
            self._map = _reserve(self.WINDOW_REGIONS)
        if layout == "window" and self._map is None:
            raise ValueError("layout='window' needs Linux and free address space")
        self._frames = np.zeros((16, PAGE // 8), dtype=np.int64)
        if self._map is not None:
            self._rows = self._nodes = np.frombuffer(self._map, dtype=np.int32).reshape(-1, 512)
        else:
            self._to_radix()

    WINDOW_REGIONS = 256     # 1 GiB regions the row map reserves at first (256 MiB of address
                             # space, not RAM)

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

    def _node(self):
        if self._nodes_used == len(self._nodes):
            self._nodes = np.concatenate([self._nodes, np.zeros_like(self._nodes)])
        self._nodes_used += 1
        return self._nodes_used - 1

    def _to_radix(self):
        """Switch to (or start in) the radix layout: the frames stay where they are, only
        the directory is built anew."""
        self._map = self._rows = None
        self._top = np.zeros(1 << 22, dtype=np.int32)
        self._nodes = np.zeros((16, 512), dtype=np.int32)   # row 0 stays empty
        self._nodes_used = 1
        for frame, row in self._slot_of.items():
            self._link(frame, row)

    def _link(self, frame, row):
        """Enter ``frame`` -> ``row`` in the directory."""
        hi, mid, lo = frame >> 18, (frame >> 9) & 511, frame & 511
        if self._map is not None:
            if self._top[hi] == 0:
                if self._regions == len(self._rows) // 512:
                    self._grow_window()
                    if self._map is None:            # radix now, with every frame in it
                        self._link(frame, row)
                        return
                self._regions += 1
                self._top[hi] = -self._regions       # negative: a region of the row map
            self._rows[((-int(self._top[hi]) - 1) << 9) | mid, lo] = row + 1
            return
        if self._top[hi] == 0:
            self._top[hi] = self._node()
        n1 = self._top[hi]
        if self._nodes[n1, mid] == 0:
            self._nodes[n1, mid] = self._node()
        self._nodes[self._nodes[n1, mid], lo] = row + 1

    def _grow_window(self):
        """Twice the row map's regions, copying the entries of the frames written (the one
        just added is linked by the caller); the radix layout when the address space for
        that is not to be had."""
        regions = 2 * len(self._rows) // 512
        new = _reserve(regions) if regions <= len(self._top) else None
        if new is None:
            self._to_radix()
            return
        old = self._rows
        self._map = new
        self._rows = self._nodes = np.frombuffer(new, dtype=np.int32).reshape(-1, 512)
        for frame in self._slot_of:              # only what was written: the map stays sparse
            n = ((-int(self._top[frame >> 18]) - 1) << 9) | ((frame >> 9) & 511)
            if self._top[frame >> 18] < 0:
                self._rows[n, frame & 511] = old[n, frame & 511]

    def _row(self, frame, create):
        row = self._slot_of.get(frame)
        if row is None and create:
            row = len(self._slot_of)
            if row == len(self._frames):
                self._frames = np.concatenate([self._frames, np.zeros_like(self._frames)])
            self._slot_of[frame] = row
            self._link(frame, row)
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
