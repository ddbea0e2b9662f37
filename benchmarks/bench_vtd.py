"""Replay 1,000,000 DMA requests through the VT-d model: nested 4+4, one
device and PASID, the IOTLB in the loop (svmkit.vtd.Iommu.translate_many).

The guest maps WORKING_SET 4 KiB pages; requests pick pages with a skewed
(Zipf-like) distribution, so that the 512-entry IOTLB hits often and
misses often (a miss walks through the paging-structure caches). Prints
the time of the replay (after a warm-up run that compiles) and the IOTLB
hit rate.

Run: python benchmarks/bench_vtd.py [requests]
"""
import sys
import time

import numpy as np

from svmkit import FrameAllocator, Memory
from svmkit.pagetable import PageTable
from svmkit.vtd import CacheConfig, Driver, Iommu

WORKING_SET = 4096
GUEST_BASE = 0x2_0000_0000
SID, PASID = 0x0310, 5


def build(caches=None):
    mem = Memory()
    host = FrameAllocator(mem, 0x10_0000, 0x1_0000_0000)
    iommu = Iommu(mem, root_table=host.alloc(), caches=caches or CacheConfig())
    drv = Driver(mem, host, iommu)
    guest_frames = WORKING_SET + 256
    sl = PageTable(mem, host.alloc, fmt="vtd_sl", levels=4, phys_bits=iommu.haw)
    for i in range(guest_frames):
        sl.map(i * 4096, GUEST_BASE + i * 4096)
    free = list(range((guest_frames - 1) * 4096, 0, -4096))
    gpt = PageTable(mem, free.pop, fmt="x86_64", levels=4, to_host=lambda g: GUEST_BASE + g)
    for i in range(WORKING_SET):
        gpt.map(0x7F00_0000_0000 + i * 4096, free.pop())
    drv.attach(SID)
    drv.bind(SID, PASID, first_root=gpt.root, nested=True, second_root=sl.root)
    return iommu


def requests(n, seed=1):
    rng = np.random.default_rng(seed)
    page = np.minimum(rng.zipf(1.3, n) - 1, WORKING_SET - 1)
    page = rng.permutation(WORKING_SET)[page]            # hot pages spread over the tables
    return (0x7F00_0000_0000 + page * 4096 + rng.integers(0, 4096, n)).astype(np.uint64)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    iommu = build()
    vas = requests(n)
    iommu.translate_many(SID, vas[:1000], pasid=PASID)    # compile
    iommu = build()
    t0 = time.perf_counter()
    pa, fault = iommu.translate_many(SID, vas, pasid=PASID)
    dt = time.perf_counter() - t0
    t = iommu.iotlb
    cold = build(CacheConfig(enabled=False)).translate(SID, int(vas[0]), pasid=PASID)
    print(f"requests           {n:,}")
    print(f"faults             {int(np.count_nonzero(fault)):,}")
    print(f"IOTLB hits/misses  {t.hits:,} / {t.misses:,} "
          f"({100 * t.hits / max(t.hits + t.misses, 1):.1f}% hits)")
    print(f"refs, no caches    {len(cold.refs)} (4 structure entries + 24 for nested 4+4)")
    print(f"time               {dt:.3f} s ({dt / n * 1e9:.0f} ns per request)")


if __name__ == "__main__":
    main()
