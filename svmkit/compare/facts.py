"""The prose half of the comparison: who owns what, who pays for a PASID-table change, and
which kernel interface fits each set-up. Every cell is ``(text, source)``: the source is
a specification section or a Linux uAPI name where the fact can be checked.

The 2017 thread (LKML, "vfio: add VFIO_DEVICE_BIND_TASK", February 2017) is quoted briefly
with attribution; the rest is this project's wording.
"""

__all__ = ["ROWS", "FACTS", "QUOTES"]

#: row key -> label, in display order
ROWS = {
    "guest_owns": "Guest owns",
    "host_owns": "Host owns",
    "shadow": "Host shadows or traps",
    "change_by": "PASID change: who",
    "bind_task": "2017 VFIO_DEVICE_BIND_TASK",
    "bind_pasid_table": "Bind guest PASID table",
    "bind_gpasid": "Bind guest page table/PASID",
    "iommufd": "iommufd nested HWPT today",
}

QUOTES = {
    "williamson": ("I don't see how we could take advantage of it for a VM use case where "
                   "the guest manages the PASID space for a domain.",
                   "Alex Williamson, LKML, 28 Feb 2017"),
    "tian": ("we need an API which allows Qemu vIOMMU to bind guest PASID table pointer "
             "and enable nested mode", "Kevin Tian, LKML, 2017"),
}

_NO_VM = ("n/a: no guest", "-")

FACTS = {
    "guest_owns": {
        "vtd-sm": ("its first-stage (CR3) tables, one per PASID",
                   "VT-d 3.x 3.8, 9.6 (PGTT=011b: FLPTPTR is a GPA)"),
        "vtd-ecs": ("the PASID table and the first-level tables",
                    "VT-d 2.x 9.4 ext-context PASIDPTR with NESTE"),
        "smmuv3": ("the CD table (in IPA space) and the stage-1 tables",
                   "IHI 0070 5.2 STE.S1ContextPtr is an IPA under stage 2"),
        "amdvi": ("the GCR3 table (in GPA space) and the x86-64 tables",
                  "48882 2.2 (GCR3 table); iommufd.h IOMMU_HWPT_DATA_AMD_GUEST"),
        "native": _NO_VM,
    },
    "host_owns": {
        "vtd-sm": ("root, context, PASID directory and PASID table, second stage",
                   "VT-d 3.x 9.1-9.6"),
        "vtd-ecs": ("root and extended-context tables, second level",
                    "VT-d 2.x 9.2-9.4"),
        "smmuv3": ("the stream table (STEs) and the stage-2 tables",
                   "IHI 0070 5.2 (STE)"),
        "amdvi": ("the device table (DTEs) and the host v1 tables",
                  "48882 2.2.2, 2.2.3"),
        "native": ("every structure and the process's own page table",
                   "iommu_sva_bind_device()"),
    },
    "shadow": {
        "vtd-sm": ("each guest PASID entry: the VMM traps the guest's PASID-cache "
                   "invalidation and installs the guest CR3 in the host PASID entry",
                   "VT-d 3.x 6.5.2.2; IOMMU_HWPT_DATA_VTD_S1"),
        "vtd-ecs": ("the context entry only (PASIDPTR, NESTE)",
                    "VT-d 2.x 9.4"),
        "smmuv3": ("the guest STE: the VMM traps CMD_CFGI_STE and copies S1ContextPtr "
                   "and the stage-1 fields into the host STE",
                   "IHI 0070 4.3 (CMD_CFGI_STE); IOMMU_HWPT_DATA_ARM_SMMUV3"),
        "amdvi": ("the guest DTE: the VMM traps INVALIDATE_DEVTAB_ENTRY and copies GV, "
                  "GLX, the GCR3 root and GuestPagingMode into the host DTE",
                  "48882 2.4.2; IOMMU_HWPT_DATA_AMD_GUEST"),
        "native": ("nothing", "-"),
    },
    "change_by": {
        "vtd-sm": ("guest writes its virtual PASID entry and invalidates; the VMM traps; "
                   "the host writes the real PASID entry and invalidates",
                   "VT-d 3.x 6.5.2.2, 6.5.2.4; IOMMU_HWPT_INVALIDATE"),
        "vtd-ecs": ("guest writes the PASID entry in its own memory; its invalidations "
                    "reach the IOMMU through the VMM",
                    "VT-d 2.x 6.5 (extended invalidation)"),
        "smmuv3": ("guest writes the CD in its own memory and issues CMD_CFGI_CD; the VMM "
                   "forwards it (or a hardware vCMDQ executes it)",
                   "IHI 0070 4.3 (CMD_CFGI_CD); IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3"),
        "amdvi": ("guest writes the GCR3 entry in its own memory and issues "
                  "INVALIDATE_IOMMU_PAGES (GN=1); the VMM re-issues it with the host "
                  "DomainID (or the AMD vIOMMU does)",
                  "48882 2.4.3; Linux amd/nested.c"),
        "native": ("host kernel writes and invalidates", "iommu_sva_bind_device()"),
    },
    "bind_task": {
        "vtd-sm": ("no: binds a host task's mm, not a guest address space",
                   QUOTES["williamson"][1]),
        "vtd-ecs": ("no: binds a host task's mm, not a guest address space",
                    QUOTES["williamson"][1]),
        "smmuv3": ("no: binds a host task's mm, not a guest address space",
                   QUOTES["williamson"][1]),
        "amdvi": ("no: binds a host task's mm, not a guest address space",
                  QUOTES["williamson"][1]),
        "native": ("yes: current task, or @pid with VFIO_SVM_PID after a "
                   "PTRACE_MODE_ATTACH_REALCREDS check; release flags "
                   "VFIO_SVM_PASID_RELEASE_FLUSHED/_CLEAN",
                   "2017 RFC, include/uapi/linux/vfio.h (J-P. Brucker)"),
    },
    "bind_pasid_table": {
        "vtd-sm": ("no: the scalable-mode PASID table is host-owned",
                   "VT-d 3.x 9.4 (PASIDDIRPTR is an HPA)"),
        "vtd-ecs": ("yes: the 2017 request (guest PASID table pointer, nested mode)",
                    QUOTES["tian"][1]),
        "smmuv3": ("yes: guest CD table pointer in the STE (proposed, not merged)",
                   "IHI 0070 5.2"),
        "amdvi": ("yes: guest GCR3 table root in the DTE (now via the guest DTE)",
                  "48882 2.2.2; IOMMU_HWPT_DATA_AMD_GUEST"),
        "native": _NO_VM,
    },
    "bind_gpasid": {
        "vtd-sm": ("yes: one guest CR3 per host PASID entry", "VT-d 3.x 9.6"),
        "vtd-ecs": ("not needed: the guest owns the whole table", "VT-d 2.x 9.4"),
        "smmuv3": ("no: the CD table is the guest's; per-PASID binding would need a "
                   "shadow CD table", "IHI 0070 5.4 (CD)"),
        "amdvi": ("no: the GCR3 table is the guest's; per-PASID binding would need a "
                  "shadow GCR3 table", "48882 2.2 (GCR3 table)"),
        "native": _NO_VM,
    },
    "iommufd": {
        "vtd-sm": ("IOMMU_HWPT_ALLOC (NEST_PARENT) for stage 2, then one "
                   "IOMMU_HWPT_DATA_VTD_S1 HWPT per guest table, attached with "
                   "VFIO_DEVICE_ATTACH_PASID; invalidate with IOMMU_HWPT_INVALIDATE "
                   "(IOMMU_HWPT_INVALIDATE_DATA_VTD_S1)",
                   "include/uapi/linux/iommufd.h, vfio.h"),
        "vtd-ecs": ("none: VT-d 3.0 replaced extended-context mode with scalable mode",
                    "VT-d 3.x (no extended context)"),
        "smmuv3": ("IOMMU_VIOMMU_ALLOC (IOMMU_VIOMMU_TYPE_ARM_SMMUV3) on the stage-2 "
                   "HWPT, an IOMMU_HWPT_DATA_ARM_SMMUV3 HWPT (guest STE); invalidate "
                   "with IOMMU_HWPT_INVALIDATE on the vIOMMU "
                   "(IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3, raw CMDQ commands)",
                   "include/uapi/linux/iommufd.h"),
        "amdvi": ("IOMMU_VIOMMU_ALLOC (IOMMU_VIOMMU_TYPE_AMD) on the stage-2 HWPT, an "
                  "IOMMU_HWPT_DATA_AMD_GUEST HWPT (guest DTE); no AMD invalidation data "
                  "type in the uAPI read: guest commands go through the vIOMMU",
                  "include/uapi/linux/iommufd.h"),
        "native": ("no nesting: the kernel driver calls iommu_sva_bind_device()",
                   "include/linux/iommu.h"),
    },
}
