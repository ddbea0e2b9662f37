"""Small systems for the walker tests: a guest with its page tables over second-level tables."""

import numpy as np

from svmkit import FrameAllocator, Memory
from svmkit.pagetable import GuestMemory, PageTable


class Nested:
    """A guest of ``guest_frames`` 4 KiB frames mapped to shuffled host frames by VT-d
    second-level tables, with an x86-64 guest page table whose tables live in guest RAM."""

    def __init__(self, guest_frames=64, first_levels=4, second_levels=4, seed=0,
                 host_base=0x2_0000_0000, sl_page_size=4096):
        rng = np.random.default_rng(seed)
        self.mem = Memory()
        host = FrameAllocator(self.mem, base=0x4000_0000)
        self.sl = PageTable(self.mem, host.alloc, fmt="vtd_sl", levels=second_levels)
        self.guest = GuestMemory(self.mem, host, self.sl.root, self.sl.fmt, self.sl.d,
                                 page_size=sl_page_size)
        frames = rng.permutation(guest_frames * 4)[:guest_frames]
        step = sl_page_size // 4096
        for i in range(0, guest_frames, step):
            self.guest.map(i * 4096, host_base + int(frames[i // step]) * sl_page_size)
        self.gpa_to_hpa = {g + k: hpa + k for g, hpa in self.guest.pages.items()
                           for k in range(0, sl_page_size, 4096)}
        self.free = sorted(self.gpa_to_hpa)
        self.gpt = PageTable(self.mem, self.galloc, fmt="x86_64", levels=first_levels,
                             to_host=self.host)

    def galloc(self):
        # highest GPA first, from RAM the second level maps already (as a VMM maps it all)
        return self.free.pop()

    def host(self, gpa):
        return self.guest.to_host(gpa)

    def keywords(self, **kw):
        return dict(root=self.gpt.root, levels=self.gpt.levels, second_root=self.sl.root,
                    second_levels=self.sl.levels, **kw)
