"""What an OS or VMM driver does to AMD-Vi structures, and what each step costs.

Every method returns :class:`Ops`: the 64-bit memory writes ``(pa, old, new, what)`` and the
commands issued (48882 2.4), in order. The commands are executed on the :class:`Iommu`
unless the driver is built with ``invalidate=False`` (to show stale translations).

The sequences follow 48882 and Linux ``drivers/iommu/amd``:
* a DTE change is followed by INVALIDATE_DEVTAB_ENTRY (2.4.2), and a change of its host
  table by INVALIDATE_IOMMU_PAGES for the domain (2.4.3, GN=0);
* a GCR3 entry change (bind, unbind, a new guest CR3) by INVALIDATE_IOMMU_PAGES with GN=1
  for the PASID over all addresses (Linux ``update_gcr3`` then ``dev_flush_pasid_all``).

Where the GCR3 table lives: with the DTE's Mode 0 it is host memory (native SVA: the
host's own process tables). With Mode != 0 and GV=1 the IOMMU reads it through the host
table (48882 2.2, nested translation), so it lives in the guest's memory: pass ``guest``
(an object with ``alloc() -> gpa`` and ``to_hpa(gpa)``, e.g.
:class:`svmkit.amdvi.tables.GuestSpace`) and the GCR3 table and its writes are the
guest's; the VMM copies only the DTE fields.
"""

from dataclasses import dataclass, field

from .commands import invalidate_devtab_entry, invalidate_iommu_pages
from .dte import GCR3_ADDR, GCR3_V, GPM_LEVELS, decode_dte, encode_dte, gcr3_entry, \
    gcr3_index

__all__ = ["Driver", "Ops"]


@dataclass
class Ops:
    """What one driver step did: ``writes`` as ``(pa, old, new, what)`` and
    ``invalidations`` (commands with ``.name``), in order."""

    writes: list = field(default_factory=list)
    invalidations: list = field(default_factory=list)

    def __iadd__(self, other):
        self.writes += other.writes
        self.invalidations += other.invalidations
        return self

    def __str__(self):
        lines = [f"write {pa:#x}: {old:#018x} -> {new:#018x}  {what}"
                 for pa, old, new, what in self.writes]
        lines += [f"command {c}" for c in self.invalidations]
        return "\n".join(lines)


class Driver:
    """The AMD-Vi driver of one IOMMU: ``mem`` and ``alloc`` (a FrameAllocator for host
    frames), ``iommu`` (:class:`svmkit.amdvi.Iommu`), ``guest`` for nested set-ups (see the
    module text), ``invalidate`` False to record commands without executing them."""

    def __init__(self, mem, alloc, iommu, *, guest=None, invalidate=True):
        self.mem, self.alloc, self.iommu = mem, alloc, iommu
        self.guest, self.invalidate = guest, invalidate
        self._bound = {}                    # device_id -> set of bound PASIDs

    # -- helpers -------------------------------------------------------------------------

    def _dte_qwords(self, device_id):
        a = self.iommu.dte_address(device_id)
        return [self.mem.read_u64(a + 8 * i) for i in range(4)]

    def _write(self, ops, pa, new, what):
        old = self.mem.read_u64(pa)
        if old != new:
            self.mem.write_u64(pa, new)
            ops.writes.append((pa, old, new, what))

    def _command(self, ops, cmd):
        ops.invalidations.append(cmd)
        if self.invalidate:
            self.iommu.invalidate(cmd)

    def _write_dte(self, ops, device_id, qwords):
        a = self.iommu.dte_address(device_id)
        # the upper qwords first and qword 0 (V, TV, Mode) last, so the IOMMU never sees
        # a valid entry with stale upper fields (Linux writes the 256 bits in two 128-bit
        # halves for the same reason)
        for i in (3, 2, 1, 0):
            self._write(ops, a + 8 * i, qwords[i], f"dte[{i}] device {device_id:#06x}")
        self._command(ops, invalidate_devtab_entry(device_id))

    def _gcr3_space(self, dte):
        """(alloc, to_hpa) for the GCR3 table of a DTE: host memory with Mode 0, the
        guest's memory otherwise."""
        if dte["mode"] == 0:
            return self.alloc.alloc, (lambda a: a)
        if self.guest is None:
            raise ValueError("guest: with a host table (Mode != 0) the GCR3 table is read "
                             "through it and lives in guest memory; build the Driver with "
                             "guest=GuestSpace(...)")
        return self.guest.alloc, self.guest.to_hpa

    def dte(self, device_id):
        return decode_dte(self._dte_qwords(device_id))

    # -- the contract ----------------------------------------------------------------------

    def attach(self, device_id, *, domain_id=None, second_root=None, second_levels=4,
               pasid=True, glx=0, gcr3_root=None, first_levels=4, had=0, sa=False,
               ir=True, iw=True):
        """Write the DTE of ``device_id`` (48882 2.2.2): V, TV, the host table
        (``second_root``, Mode = ``second_levels``; None for Mode 0), DomainID, IR/IW, and
        with ``pasid`` GV, GLX, GuestPagingMode and a GCR3 table root (``gcr3_root``, or a
        fresh zeroed table: a host frame with Mode 0, a guest frame otherwise)."""
        if domain_id is None:
            # one counter per IOMMU, so that two drivers (host, VMM) never share an id
            domain_id = getattr(self.iommu, "_next_domain_id", 1)
            self.iommu._next_domain_id = domain_id + 1
        if not 0 <= domain_id <= 0xFFFF:
            raise ValueError(f"domain_id={domain_id!r}; allowed: 0 to 0xffff")
        if glx not in (0, 1, 2):
            raise ValueError(f"glx={glx!r}; allowed: 0, 1, 2 (1, 2 or 3 GCR3 table levels)")
        if first_levels not in (4, 5):
            raise ValueError(f"first_levels={first_levels!r}; allowed: 4, 5")
        mode = 0 if second_root is None else second_levels
        if second_root is not None and second_levels not in (1, 2, 3, 4, 5):
            raise ValueError(f"second_levels={second_levels!r}; allowed: 1 to 5")
        ops = Ops()
        fields = dict(v=1, tv=1, mode=mode, host_pt_root=second_root or 0, domain_id=domain_id,
                      ir=int(ir), iw=int(iw), had=had, sa=int(sa))
        if pasid:
            if gcr3_root is None:
                alloc, _ = self._gcr3_space({"mode": mode})
                gcr3_root = alloc()
            fields.update(gv=1, glx=glx, gpm=first_levels - 4, gcr3_root=gcr3_root)
        self._write_dte(ops, device_id, encode_dte(**fields))
        if second_root is not None:
            self._command(ops, invalidate_iommu_pages(domain_id))
        self._bound.setdefault(device_id, set())
        return ops

    def _gcr3_slot(self, ops, device_id, pasid, dte, create):
        """HPA of the GCR3 entry of ``pasid`` (creating lower GCR3 levels when ``create``),
        or None."""
        alloc, to_hpa = self._gcr3_space(dte)
        table = dte["gcr3_root"]
        for level in range(dte["glx"], 0, -1):
            slot = to_hpa(table + 8 * gcr3_index(pasid, level))
            e = self.mem.read_u64(slot)
            if not e & GCR3_V:
                if not create:
                    return None
                nxt = alloc()
                self._write(ops, slot, gcr3_entry(nxt), f"gcr3-table-entry level {level}")
                e = self.mem.read_u64(slot)
            table = e & GCR3_ADDR
        return to_hpa(table + 8 * gcr3_index(pasid, 0))

    def _checked(self, device_id, pasid):
        if not isinstance(pasid, int) or not 0 <= pasid < 1 << 20:
            raise ValueError(f"pasid={pasid!r}; allowed: 0 to 2**20-1")
        dte = self.dte(device_id)
        if not (dte["v"] and dte["gv"]):
            raise ValueError(f"device_id={device_id:#x} has no GCR3 table: attach it first "
                             "(attach(..., pasid=True))")
        if pasid >> (9 * (dte["glx"] + 1)):
            raise ValueError(f"pasid={pasid:#x} does not fit a GCR3 table of GLX="
                             f"{dte['glx']}; attach with a larger glx")
        return dte

    def bind(self, device_id, pasid, *, first_root, first_levels=4, nested=False,
             second_root=None, second_levels=4, domain_id=None):
        """Point ``pasid`` of ``device_id`` at the guest (or process) page table
        ``first_root`` (a guest CR3: a GPA when nested) by writing its GCR3 entry
        (48882 2.2, GCR3 table), attaching first when the device has no DTE with GV=1. ``nested``
        needs the DTE's host table (``second_root`` at attach, or here)."""
        ops = Ops()
        dte = self.dte(device_id)
        if not (dte["v"] and dte["gv"]):
            if dte["v"] and dte["mode"]:           # keep the device's host table
                second_root, second_levels = dte["host_pt_root"], dte["mode"]
            elif not nested:
                second_root = None
            if domain_id is None and dte["v"]:
                domain_id = dte["domain_id"]
            ops += self.attach(device_id, domain_id=domain_id, second_root=second_root,
                               second_levels=second_levels, first_levels=first_levels)
        elif nested and second_root is not None and dte["host_pt_root"] != second_root:
            raise ValueError(f"second_root={second_root:#x} is not the DTE's host table "
                             f"({dte['host_pt_root']:#x}); change it with "
                             "modify(device_id, host_pt_root=...)")
        dte = self._checked(device_id, pasid)
        if nested and dte["mode"] == 0:
            raise ValueError("nested=True needs a host table: pass second_root")
        if not nested and dte["mode"] != 0:
            raise ValueError("nested=False with a host table in the DTE: the IOMMU would "
                             "read the GCR3 table and guest tables through it; attach with "
                             "second_root=None for native SVA")
        if GPM_LEVELS[dte["gpm"]] != first_levels:
            if self._bound.get(device_id):
                raise ValueError(f"first_levels={first_levels}: the DTE's GuestPagingMode "
                                 f"is per device ({GPM_LEVELS[dte['gpm']]} levels) and "
                                 "other PASIDs are bound")
            q = list(self._dte_qwords(device_id))
            q[2] = (q[2] & ~(3 << 54)) | ((first_levels - 4) << 54)
            self._write_dte(ops, device_id, q)
        slot = self._gcr3_slot(ops, device_id, pasid, dte, create=True)
        self._write(ops, slot, gcr3_entry(first_root), f"gcr3-entry pasid {pasid:#x}")
        self._command(ops, invalidate_iommu_pages(dte["domain_id"], pasid=pasid))
        self._bound.setdefault(device_id, set()).add(pasid)
        return ops

    def modify(self, device_id, pasid=None, *, first_root=None, **dte_fields):
        """With ``pasid``: a new guest CR3 ``first_root`` in its GCR3 entry. Without: change
        DTE fields (``ir``, ``iw``, ``mode``, ``host_pt_root``, ``domain_id`` ...)."""
        ops = Ops()
        if pasid is not None:
            if first_root is None or dte_fields:
                raise ValueError("modify with pasid takes first_root only")
            dte = self._checked(device_id, pasid)
            slot = self._gcr3_slot(ops, device_id, pasid, dte, create=True)
            self._write(ops, slot, gcr3_entry(first_root), f"gcr3-entry pasid {pasid:#x}")
            self._command(ops, invalidate_iommu_pages(dte["domain_id"], pasid=pasid))
            return ops
        old = self.dte(device_id)
        fields = {k: old[k] for k in ("v", "tv", "had", "mode", "host_pt_root", "ppr",
                                      "gprp", "giov", "gv", "glx", "ir", "iw", "domain_id",
                                      "i", "se", "sa", "ioctl", "cache", "sd", "ex", "sysmgt",
                                      "gpm")}
        fields["gcr3_root"] = old["gcr3_root"]
        fields.update(dte_fields)
        self._write_dte(ops, device_id, encode_dte(**fields))
        if old["mode"] and (fields["host_pt_root"] != old["host_pt_root"] or
                            fields["mode"] != old["mode"]):
            self._command(ops, invalidate_iommu_pages(old["domain_id"]))
        return ops

    def unbind(self, device_id, pasid):
        """Clear the GCR3 entry of ``pasid`` and flush its translations."""
        ops = Ops()
        dte = self._checked(device_id, pasid)
        slot = self._gcr3_slot(ops, device_id, pasid, dte, create=False)
        if slot is not None:
            self._write(ops, slot, 0, f"gcr3-entry pasid {pasid:#x}")
        self._command(ops, invalidate_iommu_pages(dte["domain_id"], pasid=pasid))
        self._bound.get(device_id, set()).discard(pasid)
        return ops

    def detach(self, device_id):
        """Leave the DTE valid with translation on, Mode 0 and no IR/IW: every request of
        the device is refused (Linux's blocked DTE), then flush the domain."""
        ops = Ops()
        old = self.dte(device_id)
        self._write_dte(ops, device_id, encode_dte(v=1, tv=1))
        if old["v"]:
            self._command(ops, invalidate_iommu_pages(old["domain_id"]))
        self._bound.pop(device_id, None)
        return ops
