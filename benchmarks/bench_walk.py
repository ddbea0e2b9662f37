"""Speed of svmkit.translate against a C loop and the reference walker (issue 2).

Workload: a 128 MiB guest whose second-level tables map it to shuffled host frames with
4 KiB pages; about 8,000 guest 4 KiB pages scattered over a 1 TiB GVA range (nearly every one
with its own page table); 1,000,000 random reads of mapped GVAs; nested 4+4 levels.

Prints ns per translation for svmkit.translate (numba; the generic walker and the one
compiled for this configuration, ``specialize=True``), the C loop over a flat array
(benchmarks/nested_walk.c, compiled with the system cc when there is one) and the reference
walker (timed on a sample), plus import + first-walk times with a cold and a warm numba
cache. Run: python benchmarks/bench_walk.py [--quick]
"""

import ctypes
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import svmkit  # noqa: E402
from svmkit import FrameAllocator, Memory  # noqa: E402
from svmkit.pagetable import PageTable  # noqa: E402

GUEST_BYTES = 128 << 20
HOST_BASE = 0x4000_0000          # guest RAM lies in [HOST_BASE, HOST_BASE + 256 MiB)
SL_BASE = 0x3000_0000            # the second-level tables below it


def build(pages=8000, seed=0):
    rng = np.random.default_rng(seed)
    mem = Memory()
    host = FrameAllocator(mem, base=SL_BASE, limit=HOST_BASE)
    sl = PageTable(mem, host.alloc, fmt="vtd_sl", levels=4)
    nframes = GUEST_BYTES // 4096
    hframes = rng.permutation(2 * nframes)[:nframes]
    gpa_to_hpa = HOST_BASE + hframes.astype(np.int64) * 4096
    for i in range(nframes):
        sl.map(i * 4096, int(gpa_to_hpa[i]))
    free = list(rng.permutation(nframes)[::-1])

    def galloc():
        return int(free.pop()) * 4096

    def to_host(gpa):
        return int(gpa_to_hpa[gpa >> 12]) + (gpa & 0xFFF)

    gpt = PageTable(mem, galloc, fmt="x86_64", levels=4, to_host=to_host)
    vas = set()
    while len(vas) < pages:
        vas.add(int(rng.integers(0, 1 << 28)) << 12)     # 2^28 pages of 4 KiB = 1 TiB
    vas = sorted(vas)
    for va in vas:
        gpt.map(va, galloc())
    return mem, gpt.root, sl.root, np.array(vas, dtype=np.uint64), rng


def c_loop():
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    out = HERE / "bin"
    out.mkdir(exist_ok=True)
    lib = out / "nested_walk.so"
    src = HERE / "nested_walk.c"
    if not lib.exists() or lib.stat().st_mtime < src.stat().st_mtime:
        subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    so = ctypes.CDLL(str(lib))
    so.translate.restype = ctypes.c_int64
    so.translate.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64,
                             ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64,
                             ctypes.c_uint64, ctypes.c_void_p]
    return so


def flat(mem, base, end):
    """Host memory [base, end) as one array, for the C loop."""
    arr = np.zeros((end - base) // 8, dtype=np.uint64)
    for pa in mem.frames():
        if base <= pa < end:
            arr[(pa - base) // 8:(pa - base) // 8 + 512] = np.frombuffer(mem.read(pa, 4096), "<u8")
    return arr


ROUNDS = 15


def seconds(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def first_walk_seconds(cache_dir):
    code = ("import time; t = time.perf_counter(); import svmkit; "
            "m = svmkit.Memory(); m.write_u64(0x1000, 0x2003); "
            "svmkit.walk(m, 0, root=0x1000); svmkit.translate(m, [0], root=0x1000); "
            "print(time.perf_counter() - t)")
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=HERE.parent,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main():
    quick = "--quick" in sys.argv
    n = 100_000 if quick else 1_000_000
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{platform.processor() or platform.platform()}, Python {platform.python_version()}")
    t = time.perf_counter()
    mem, root, sl_root, mapped, rng = build(800 if quick else 8000)
    print(f"built {len(mapped)} guest pages, {mem.frames_in_use} frames "
          f"in {time.perf_counter() - t:.1f} s")
    vas = mapped[rng.integers(0, len(mapped), n)] + rng.integers(0, 4096, n).astype(np.uint64)
    kw = dict(root=root, second_root=sl_root)
    pa, fault = svmkit.translate(mem, vas, **kw)        # compiles; sets A flags once
    assert not fault.any(), "every address of the workload is mapped"
    t = time.perf_counter()
    pa_s, fault_s = svmkit.translate(mem, vas, specialize=True, **kw)
    print(f"translate(specialize=True) first call: {time.perf_counter() - t:.1f} s "
          "(compiles for this configuration unless numba's cache has it)")
    assert np.array_equal(pa_s, pa) and not fault_s.any(), "both walkers agree"

    timed = {"generic": lambda: svmkit.translate(mem, vas, **kw),
             "specialized": lambda: svmkit.translate(mem, vas, specialize=True, **kw)}
    so = c_loop()
    if so is not None:
        base, end = SL_BASE, HOST_BASE + 2 * GUEST_BYTES
        arr = flat(mem, base, end)
        out = np.zeros(n, dtype=np.uint64)
        timed["C"] = lambda: so.translate(arr.ctypes.data, base, end - base, vas.ctypes.data,
                                          n, root, sl_root, out.ctypes.data)
        assert timed["C"]() == 0 and np.array_equal(out, pa), "C and svmkit agree"
    else:
        print("C loop: no cc on this machine, skipped")
    # Interleaved rounds: on a shared machine the speed of memory moves from second to
    # second, so each round times all of them back to back and the ratios are per round.
    times = {name: [] for name in timed}
    for _ in range(ROUNDS):
        for name, fn in timed.items():
            times[name].append(seconds(fn))
    per = {name: min(ts) / n * 1e9 for name, ts in times.items()}
    print(f"svmkit.translate (numba, generic):  {per['generic']:8.1f} ns per translation")
    print(f"svmkit.translate(specialize=True):  {per['specialized']:8.1f} ns per translation")
    if "C" in times:
        print(f"C loop, flat array:                 {per['C']:8.1f} ns per translation")
        for name in ("generic", "specialized"):
            ratios = np.array(times[name]) / np.array(times["C"])
            print(f"  {name} / C: {per[name] / per['C']:.2f}x best against best, "
                  f"{np.median(ratios):.2f}x median of {ROUNDS} rounds "
                  f"({ratios.min():.2f}-{ratios.max():.2f})")
    t_jit = min(times["specialized"])

    sample = vas[:2000]
    t = time.perf_counter()
    for va in sample:
        svmkit.walk(mem, int(va), engine="reference", **kw)
    t_ref = (time.perf_counter() - t) / len(sample)
    print(f"reference walker:                   {t_ref * 1e9:8.1f} ns per translation "
          f"(specialized is {t_ref / (t_jit / n):.0f}x faster, "
          f"generic {t_ref / (min(times['generic']) / n):.0f}x)")

    with tempfile.TemporaryDirectory() as cache:
        cold = first_walk_seconds(cache)
        warm = min(first_walk_seconds(cache) for _ in range(3))
    print(f"import svmkit + first walk: {warm:.2f} s with a warm numba cache, "
          f"{cold:.1f} s cold (compiling)")


if __name__ == "__main__":
    main()
