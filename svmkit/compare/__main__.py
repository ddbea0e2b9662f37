"""``python -m svmkit.compare``: print the comparison (72 columns) and optionally save the
figure."""

import argparse

from .setups import NATIVE_ARCHS
from .table import compare


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m svmkit.compare",
                                 description="Five SVM set-ups side by side, from real walks.")
    ap.add_argument("-n", type=int, default=4, help="first-stage levels (default 4)")
    ap.add_argument("-m", type=int, default=4, help="second-stage levels (default 4)")
    ap.add_argument("--pasid", type=int, default=5)
    ap.add_argument("--native", default="auto", choices=("auto",) + NATIVE_ARCHS,
                    help="IOMMU of the native set-up")
    ap.add_argument("--width", type=int, default=72)
    ap.add_argument("--figure", metavar="FILE", help="save the bar chart (png, svg, pdf)")
    args = ap.parse_args(argv)
    c = compare(p=args.pasid, n=args.n, m=args.m, native_arch=args.native)
    print(c.text(width=args.width))
    if args.figure:
        c.figure().savefig(args.figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
