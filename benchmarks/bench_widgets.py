"""How long each widget action takes in the kernel (goal: every step within 100 ms).

Times, per set-up, the actions a user makes: a Step (and Back), loading a new address
(one walk plus drawing), and changing the set-up. The browser's drawing comes on top
(a few ms for these SVGs). Prints median and worst milliseconds.
Run: python benchmarks/bench_widgets.py
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from svmkit.widgets import WalkStepper  # noqa: E402
from svmkit.widgets import setups as S  # noqa: E402


def timed(fn, repeat):
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def row(name, ms):
    print(f"{name:44} median {statistics.median(ms):7.2f} ms   worst {max(ms):7.2f} ms"
          f"   ({len(ms)} runs)")
    return max(ms)


def main():
    worst = 0.0
    t = time.perf_counter()
    s = WalkStepper("first4")
    print(f"first WalkStepper (imports, numba cache): {(time.perf_counter() - t) * 1e3:.0f} ms")
    keys = list(S.catalogue())
    for key in keys:
        t = time.perf_counter()
        s.setup_pick.value = key
        build = (time.perf_counter() - t) * 1e3
        print(f"\n{key}: set-up change {build:.1f} ms (first build included)")
        addresses = [a for _, a in s.setup.addresses]

        def steps():
            s.reset()
            for _ in s.walk.refs:
                s.step()

        n = len(s.walk.refs)
        ms = timed(steps, 5)
        worst = max(worst, row(f"  Step ({n} refs), per step", [m / max(n, 1) for m in ms]))
        per = timed(lambda: (s.step(), s.back()), 50)
        worst = max(worst, row("  Step + Back", per))
        i = iter(range(10 ** 9))
        worst = max(worst, row("  new address (walk + draw)",
                               timed(lambda: s.load(addresses[next(i) % len(addresses)]), 20)))
        other = keys[0] if key != keys[0] else keys[1]

        def switch():       # away and back: two changes of an already built set-up
            s.setup_pick.value = other
            s.setup_pick.value = key

        worst = max(worst, row("  set-up change x2 (built)", timed(switch, 5)))
    print(f"\nworst of all actions: {worst:.1f} ms (goal: 100 ms)")


if __name__ == "__main__":
    main()
