"""A small VT-d system for the tests: memory, allocator, IOMMU, driver,
host tables and a nested guest. Imported by the other test_vtd_* files."""

from svmkit import FrameAllocator, Memory
from svmkit.pagetable import GuestMemory, PageTable
from svmkit.vtd import CacheConfig, Driver, Iommu

MEM_SIZE = 1 << 36          # 64 GiB installed: addresses above are non-existent
GUEST_BASE = 0x8_0000_0000  # where the guest's RAM sits in host memory
GUEST_FRAMES = 96


class Rig:
    def __init__(self, ttm="scalable", caches=None, haw=48, invalidate=True, **iommu_kw):
        self.mem = Memory(MEM_SIZE)
        self.alloc = FrameAllocator(self.mem, 0x10_0000, 0x4000_0000)
        self.iommu = Iommu(self.mem, root_table=self.alloc.alloc(), ttm=ttm, haw=haw,
                           caches=caches if caches is not None else CacheConfig(), **iommu_kw)
        self.drv = Driver(self.mem, self.alloc, self.iommu, invalidate=invalidate) \
            if ttm != "legacy" else None
        self._gfree = None

    def fl(self, levels=4):
        """A host first-level (x86-64) table."""
        return PageTable(self.mem, self.alloc.alloc, fmt="x86_64", levels=levels,
                         phys_bits=self.iommu.haw)

    def sl(self, levels=4):
        """A host second-level table."""
        return PageTable(self.mem, self.alloc.alloc, fmt="vtd_sl", levels=levels,
                         phys_bits=self.iommu.haw)

    def guest(self, first_levels=4, second_levels=4, frames=GUEST_FRAMES):
        """(second-level table mapping guest RAM GPA 0.. to GUEST_BASE..,
        guest first-level table whose tables are in guest RAM)."""
        sl = self.sl(second_levels)
        ram = GuestMemory(self.mem, self.alloc, sl.root, sl.fmt, sl.d, host_base=GUEST_BASE)
        for i in range(frames):
            ram.back(i * 4096)
        self._gfree = list(range((frames - 1) * 4096, 0, -4096))   # GPA 0 stays unused
        gpt = PageTable(self.mem, self._gfree.pop, fmt="x86_64", levels=first_levels,
                        to_host=ram.to_host)
        return sl, gpt

    def galloc(self):
        return self._gfree.pop()


def test_rig_guest_tables_live_in_guest_ram():
    rig = Rig()
    sl, gpt = rig.guest()
    assert gpt.root < GUEST_FRAMES * 4096
    gpt.map(0x1000, 0x2000)
    assert rig.mem.read_u64(GUEST_BASE + gpt.root) != 0
