"""Small systems for the walker tests: a guest with its page tables over second-level tables."""

import numpy as np

from svmkit import FrameAllocator, Memory
from svmkit.pagetable import PageTable


class Nested:
    """A guest of ``guest_frames`` 4 KiB frames mapped to shuffled host frames by VT-d
    second-level tables, with an x86-64 guest page table whose tables live in guest RAM."""

    def __init__(self, guest_frames=64, first_levels=4, second_levels=4, seed=0,
                 host_base=0x2_0000_0000, sl_page_size=4096):
        rng = np.random.default_rng(seed)
        self.mem = Memory()
        host = FrameAllocator(self.mem, base=0x4000_0000)
        self.sl = PageTable(self.mem, host.alloc, fmt="vtd_sl", levels=second_levels)
        frames = rng.permutation(guest_frames * 4)[:guest_frames]
        self.gpa_to_hpa = {}
        step = sl_page_size // 4096
        for i in range(0, guest_frames, step):
            hpa = host_base + int(frames[i // step]) * sl_page_size
            self.sl.map(i * 4096, hpa, sl_page_size)
            for k in range(step):
                self.gpa_to_hpa[(i + k) * 4096] = hpa + k * 4096
        self.free = sorted(self.gpa_to_hpa)
        self.gpt = PageTable(self.mem, self.galloc, fmt="x86_64", levels=first_levels,
                             to_host=self.host)

    def galloc(self):
        return self.free.pop()

    def host(self, gpa):
        return self.gpa_to_hpa[gpa & ~0xFFF] + (gpa & 0xFFF)

    def keywords(self, **kw):
        return dict(root=self.gpt.root, levels=self.gpt.levels, second_root=self.sl.root,
                    second_levels=self.sl.levels, **kw)
