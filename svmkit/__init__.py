"""svmkit: IOMMU Shared Virtual Memory, walk by walk.

The model: host-physical :class:`Memory`, page-table formats (:mod:`svmkit.formats`), the
walkers (:func:`walk`, :func:`translate`), and the IOMMU models built on them
(:mod:`svmkit.vtd`, :mod:`svmkit.smmuv3`, :mod:`svmkit.amdvi`). It imports no Jupyter
package; the widgets are :mod:`svmkit.widgets`.
"""

from .memory import FrameAllocator, Memory, NonExistentMemory
from .walks import Fault, Ref, Walk, fault_name, translate, walk

__version__ = "0.1.0"
__all__ = ["Memory", "FrameAllocator", "NonExistentMemory", "walk", "translate", "Walk",
           "Fault", "Ref", "fault_name"]
