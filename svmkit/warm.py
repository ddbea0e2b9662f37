"""Compile svmkit's numba code ahead of use: ``python -m svmkit.warm``.

The first walk after an install compiles the walkers (tens of seconds on a small machine);
numba then caches them on disk. Binder runs this while building its image, so that a
learner's first Step answers at once; ``make lab`` needs nothing of the sort, since the
cache outlives a session. It walks plain tables (one-dimensional and nested, one address
and a batch) and one address of every example scenario on every IOMMU model, batch too.
"""

import sys
import time


def main():
    import numpy as np

    import svmkit
    from svmkit import scenario
    from svmkit.pagetable import PageTable

    start = time.perf_counter()
    mem = svmkit.Memory()
    frames = svmkit.FrameAllocator(mem)
    cr3 = PageTable(mem, frames.alloc)
    cr3.map(0x400000, 0x200000)
    for nested in (False, True):
        kw = dict(root=cr3.root)
        if nested:
            sl = PageTable(mem, frames.alloc, fmt="vtd_sl")
            for gpa in list(cr3.tables) + [0x200000]:
                sl.map(gpa, gpa)
            kw["second_root"] = sl.root
        svmkit.walk(mem, 0x400000, **kw)
        svmkit.translate(mem, np.array([0x400000], dtype=np.uint64), **kw)
    print(f"svmkit.warm: walkers compiled ({time.perf_counter() - start:.0f} s)", flush=True)
    for name in scenario.examples():
        try:
            described = scenario.load(name)
            built = described.build()
            for bind in described.binds[:1]:
                built.translate(bind.device, 0, pasid=bind.pasid)
                built.adapter.iommu.translate_many(built.rid(bind.device), [0],
                                                   pasid=bind.pasid)
        except Exception as e:          # a warm-up never fails a build: say so and go on
            print(f"svmkit.warm: {name}: {type(e).__name__}: {e}", flush=True)
            continue
        print(f"svmkit.warm: {name} ({time.perf_counter() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
