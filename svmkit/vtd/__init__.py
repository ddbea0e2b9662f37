"""Intel VT-d: the remapping unit (`Iommu`), its structures, caches,
invalidation descriptors, fault reasons and the OS driver (`Driver`).

See docs/vtd.md. Section numbers refer to the Intel Virtualization
Technology for Directed I/O Architecture Specification (rev. 3.x/4.x;
rev. 2.x for the extended-context mode).
"""
from . import compare, faults, invalidation, structures
from .caches import CacheConfig
from .faults import FaultRecord
from .invalidation import (ContextCacheInv, DevTlbInv, InvWait, IotlbInv, PasidCacheInv,
                           PasidDevTlbInv, PasidIotlbInv)
from .driver import Driver, Ops
from .iommu import Config, Iommu

__all__ = ["Iommu", "Driver", "Ops", "Config", "CacheConfig", "FaultRecord", "ContextCacheInv",
           "PasidCacheInv", "IotlbInv", "PasidIotlbInv", "DevTlbInv", "PasidDevTlbInv",
           "InvWait", "structures", "invalidation", "faults", "compare"]
