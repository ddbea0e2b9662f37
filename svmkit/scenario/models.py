"""What each IOMMU model allows a scenario to ask for: PASID width, the
page-table formats of each stage, their depths and page sizes. Used by the
validator (so a file is checked before anything is built) and the builder.

Sources: VT-d spec sec. 3.4.3 and 9.6 (20-bit PASID; first stage IA-32e
4/5-level, Intel SDM 4.5; second stage 3/4/5-level, sec. 3.7/9.8); VT-d 2.x
extended-context mode (same formats, PASID table in the context entry);
SMMUv3 IHI 0070 sec. 5.2 (SubstreamID up to 20 bits) with VMSAv8-64 4 KiB
granule tables (Arm ARM D8); AMD IOMMU 48882 sec. 2.2.6 (guest CR3 tables are
x86-64 tables; the host table is the AMD v1 format, sec. 2.2.3). AMD's PASID
width is the model's (PASmax in the Extended Feature Register): 16 bits here,
as Linux's AMD driver limits it.
"""

from __future__ import annotations

from dataclasses import dataclass

KiB4, MiB2, GiB1 = 1 << 12, 1 << 21, 1 << 30


@dataclass(frozen=True)
class ModelInfo:
    name: str
    title: str
    pasid_bits: int
    first_fmt: str
    first_levels: tuple
    second_fmt: str
    second_levels: tuple
    first_page_sizes: tuple = (KiB4, MiB2, GiB1)
    second_page_sizes: tuple = (KiB4, MiB2, GiB1)
    device_id: str = "requester id"


MODELS = {
    "vtd": ModelInfo("vtd", "Intel VT-d, scalable mode", 20, "x86_64", (4, 5), "vtd_sl",
                     (3, 4, 5)),
    "vtd-ecs": ModelInfo("vtd-ecs", "Intel VT-d 2.x, extended-context mode", 20, "x86_64",
                         (4, 5), "vtd_sl", (3, 4, 5)),
    "smmuv3": ModelInfo("smmuv3", "Arm SMMUv3", 20, "arm64_s1", (3, 4), "arm64_s2", (3, 4),
                        device_id="StreamID"),
    "amdvi": ModelInfo("amdvi", "AMD-Vi (AMD IOMMU)", 16, "x86_64", (4, 5), "amd_v1",
                       (3, 4, 5)),
}


def info(model: str, argument="model") -> ModelInfo:
    if model not in MODELS:
        raise ValueError(f"{argument}={model!r} is not an IOMMU model; allowed: "
                         f"{', '.join(MODELS)}")
    return MODELS[model]


def first_width(levels: int) -> int:
    """Input width of an x86-64/VMSA walk with 4 KiB tables of 512 entries."""
    return 12 + 9 * levels


def table_phys_bits(model: str, phys_bits: int) -> int:
    """The physical-address width the page-table formats of ``model`` take
    for a host of ``phys_bits``: VMSAv8-64 knows only the PARange sizes
    (Arm ARM D8, ID_AA64MMFR0_EL1.PARange: 32, 36, 40, 42, 44, 48, 52)."""
    if model == "smmuv3":
        return max(x for x in (32, 36, 40, 42, 44, 48, 52) if x <= max(32, phys_bits))
    return phys_bits
