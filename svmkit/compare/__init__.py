"""Five ways to give a device a process's address space, side by side.

``compare()`` builds one scenario (a process bound to a device at PASID p) on VT-d scalable
mode, VT-d extended-context mode, SMMUv3 nested, AMD-Vi nested and native SVA, through each
IOMMU model's Driver, translates with every cache off and returns a :class:`Comparison`:
``.rows`` (a table object), ``.text()`` (72 columns), ``.figure()`` (matplotlib). See
``docs/compare.md``.
"""

from .facts import FACTS, QUOTES, ROWS
from .setups import (FIRST_FORMAT, LABELS, NATIVE_ARCHS, SETUP_ARCH, SETUPS, Measured,
                     Unavailable, Unsupported, build, split_refs)
from .table import NA, Cell, Comparison, Row, breakdown, compare

__all__ = ["compare", "Comparison", "Row", "Cell", "build", "Measured", "Unavailable",
           "Unsupported", "split_refs", "breakdown", "FIRST_FORMAT", "SETUPS", "LABELS",
           "FACTS", "ROWS", "QUOTES", "NA", "SETUP_ARCH", "NATIVE_ARCHS"]
