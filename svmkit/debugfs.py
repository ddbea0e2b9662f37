"""Import a machine's Intel IOMMU tables from Linux debugfs dumps.

Linux (drivers/iommu/intel/debugfs.c) prints, under
/sys/kernel/debug/iommu/intel/:

``dmar_translation_struct``, per remapping unit::

    IOMMU dmar0: Root Table Address: 0x...
    B.D.F<TAB>Root_entry<TABS>Context_entry<TABS>PASID<TAB>PASID_table_entry
    00:02.0<TAB>0xHI:0xLO<TAB>0xHI:0xLO<TAB>PASID<TAB>0xQ2:0xQ1:0xQ0

one line per present context entry (legacy mode, PASID -1) or per present
PASID-table entry (scalable mode): the 128-bit root entry and the low 128
bits of the context entry as ``hi:lo``, the PASID, and qwords 2, 1, 0 of
the PASID-table entry (VT-d 9.1-9.6).

``domain_translation_struct`` (older kernels: one file for all devices;
newer ones: one per device, and per PASID, in subdirectories)::

    Device 0000:00:02.0 @0x<pgd>            (or "... with pasid N @0x...")
    IOVA_PFN<TABS>PML5E<TABS>PML4E<TABS>PDPE<TABS>PDE<TABS>PTE
    0x<iova pfn> |<TAB>0x<pml5e><TAB>0x<pml4e><TAB>0x<pdpe><TAB>0x<pde><TAB>0x<pte>

one line per mapped page (or large page) with every entry on its path.

Every entry value is put back at its address: the root entry at
``root + 16 * bus``, the context entry in the context table its root entry
points at, the PASID-table entry... except what the dump does not say: the
PASID-directory entries (only the directory's address is known) and the
upper 128 bits of a scalable-mode context entry. For those the importer
makes a PASID table page of its own and labels it "synthesized"; the upper
context qwords are reserved (zero) in VT-d 9.4 anyway. Page-table rows give
each table's address through the entry above it, so the tables are exact
(for the mapped pages the dump lists).
"""

from __future__ import annotations

import re
from pathlib import Path

from svmkit.scenario.model import Device, Scenario, bdf_str

ADDR = 0x000F_FFFF_FFFF_F000      # bits 51:12, the address field of every entry here
_HEAD = re.compile(r"IOMMU (\S+): Root Table Address: (0x[0-9a-fA-F]+)")
_ROW = re.compile(r"([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])\s+"
                  r"(0x[0-9a-fA-F]+):(0x[0-9a-fA-F]+)\s+(0x[0-9a-fA-F]+):(0x[0-9a-fA-F]+)\s+"
                  r"(-?\d+)\s+(0x[0-9a-fA-F]+):(0x[0-9a-fA-F]+):(0x[0-9a-fA-F]+)\s*$")
_DEV = re.compile(r"Device (\S+?)(?: with pasid (\S+))? @(0x[0-9a-fA-F]+)\s*$")
_PAGE = re.compile(r"(0x[0-9a-fA-F]+)\s*\|\s*((?:0x[0-9a-fA-F]+\s*){5})$")


def parse_dmar(text: str, *, file="dmar_translation_struct") -> list[dict]:
    """Units of a ``dmar_translation_struct`` dump: ``{"name", "root",
    "rows": [{"rid", "root": (hi, lo), "context": (hi, lo), "pasid",
    "pasid_entry": (q0, q1, q2)}]}``. ValueError names the line it cannot
    read."""
    units: list[dict] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.rstrip()
        if not line or line.startswith("B.D.F"):
            continue
        m = _HEAD.match(line)
        if m:
            units.append({"name": m.group(1), "root": int(m.group(2), 16), "rows": []})
            continue
        if line.startswith("DMA Remapping is not enabled"):
            continue
        m = _ROW.match(line)
        if not m or not units:
            raise ValueError(f"{file}:{n}: cannot read {line[:40]!r}; allowed: the lines "
                             "Linux's intel-iommu debugfs prints (see svmkit.debugfs)")
        g = m.groups()
        rid = int(g[0], 16) << 8 | int(g[1], 16) << 3 | int(g[2])
        units[-1]["rows"].append({
            "rid": rid, "root": (int(g[3], 16), int(g[4], 16)),
            "context": (int(g[5], 16), int(g[6], 16)), "pasid": int(g[7]),
            "pasid_entry": (int(g[10], 16), int(g[9], 16), int(g[8], 16))})
    return units


def parse_domains(text: str, *, file="domain_translation_struct") -> list[dict]:
    """Page tables of a ``domain_translation_struct`` dump: ``{"device",
    "pasid" (None if not given), "pgd", "pages": [(iova, [pml5e, pml4e,
    pdpe, pde, pte])]}``."""
    out: list[dict] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.rstrip()
        if not line or line.startswith("IOVA_PFN"):
            continue
        m = _DEV.match(line)
        if m:
            pasid = None if m.group(2) is None else int(m.group(2), 16)
            out.append({"device": m.group(1), "pasid": pasid, "pgd": int(m.group(3), 16),
                        "pages": []})
            continue
        m = _PAGE.match(line)
        if not m or not out:
            raise ValueError(f"{file}:{n}: cannot read {line[:40]!r}; allowed: the lines "
                             "Linux's intel-iommu debugfs prints (see svmkit.debugfs)")
        path = [int(x, 16) for x in m.group(2).split()]
        out[-1]["pages"].append((int(m.group(1), 16) << 12, path))
    return out


def _device_rid(name: str) -> int:
    """``0000:00:02.0`` -> requester id."""
    m = re.fullmatch(r"(?:[0-9a-fA-F]{4}:)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])", name)
    if not m:
        raise ValueError(f"device {name!r} is not a PCI address")
    return int(m.group(1), 16) << 8 | int(m.group(2), 16) << 3 | int(m.group(3))


def build_image(units: list[dict], domains: list[dict], *, unit: str | None = None):
    """``(image, devices, note)`` for a Scenario from parsed dumps of one
    remapping unit (``unit`` by name, default the first)."""
    if not units:
        raise ValueError("dmar_translation_struct: no remapping unit with DMA remapping on")
    u = next((x for x in units if unit in (None, x["name"])), None)
    if u is None:
        raise ValueError(f"unit={unit!r} is not in the dump; allowed: "
                         + ", ".join(x["name"] for x in units))
    scalable = any(r["pasid"] >= 0 for r in u["rows"])
    q: dict[int, int] = {}
    labels: list[tuple] = [(u["root"], 4096, "root table", u["name"])]
    top = max([u["root"]] + [r["context"][1] & ADDR for r in u["rows"]]
              + [d["pgd"] for d in domains]
              + [e & ADDR for d in domains for _, path in d["pages"] for e in path])
    # Pages the dump does not give (PASID tables) go above everything it does.
    synth = [((top >> 30) + 1) << 30]

    def new_page():
        pa = synth[0]
        synth[0] += 4096
        return pa

    ptables: dict[int, int] = {}
    devices = []
    for r in u["rows"]:
        rid, bus, devfn = r["rid"], r["rid"] >> 8, r["rid"] & 0xFF
        hi, lo = r["root"]
        q[u["root"] + 16 * bus], q[u["root"] + 16 * bus + 8] = lo, hi
        if scalable:
            ctp = (hi if devfn >= 128 else lo) & ADDR
            cpa = ctp + 32 * (devfn & 0x7F)
        else:
            ctp, cpa = lo & ADDR, (lo & ADDR) + 16 * devfn
        chi, clo = r["context"]
        q[cpa], q[cpa + 8] = clo, chi
        labels.append((ctp, 4096, "context table", f"bus {bus:02x}"))
        if rid not in [d.rid for d in devices]:
            devices.append(Device(bdf_str(rid)))
        if scalable and r["pasid"] >= 0:
            pdir, pasid = clo & ADDR, r["pasid"]
            labels.append((pdir, 4096, "PASID directory", bdf_str(rid)))
            dpa = pdir + 8 * (pasid >> 6)
            if dpa not in ptables:
                ptables[dpa] = new_page()
                q[dpa] = ptables[dpa] | 1
                labels.append((ptables[dpa], 4096, "PASID table",
                               f"{bdf_str(rid)}, synthesized: not in the dump"))
            epa = ptables[dpa] + 64 * (pasid & 0x3F)
            for i, v in enumerate(r["pasid_entry"]):
                q[epa + 8 * i] = v
    for d in domains:
        rid = _device_rid(d["device"])
        what = f"{bdf_str(rid)}" + (f" PASID {d['pasid']}" if d["pasid"] is not None else "")
        seen = {d["pgd"]}
        labels.append((d["pgd"], 4096, "page table", f"top of {what}"))
        for iova, path in d["pages"]:
            # path is PML5E..PTE; the walk starts at the highest non-zero
            # column and ends at the last non-zero one (a large page).
            levels = [(5 - i, e) for i, e in enumerate(path)]
            used = [(lv, e) for lv, e in levels if e]
            if not used:
                continue
            top_level = used[0][0]
            table = d["pgd"]
            for lv in range(top_level, 0, -1):
                e = dict(levels)[lv]
                if not e:
                    break
                q[table + 8 * ((iova >> (12 + 9 * (lv - 1))) & 511)] = e
                if lv == 1 or not any(x for l2, x in levels if l2 < lv):
                    break
                table = e & ADDR
                if table not in seen:
                    seen.add(table)
                    labels.append((table, 4096, "page table", f"level {lv - 1} of {what}"))
    # One label per page, first name wins.
    uniq, done = [], set()
    for lab in labels:
        if lab[0] not in done:
            done.add(lab[0])
            uniq.append(lab)
    image = {"root_table": u["root"], "ttm": "scalable" if scalable else "legacy",
             "qwords": sorted(q.items()), "labels": uniq}
    others = [x["name"] for x in units if x is not u]
    note = f"unit {u['name']}" + (f" (also in the dump: {', '.join(others)})" if others else "")
    return image, devices, note, synth[0]


def import_text(dmar: str, domains: str = "", *, name: str = "imported",
                unit: str | None = None) -> Scenario:
    """A Scenario holding the tables of these dumps (see the module doc)."""
    units = parse_dmar(dmar)
    doms = parse_domains(domains) if domains else []
    image, devices, note, end = build_image(units, doms, unit=unit)
    phys_bits = max(39, min(52, (end - 1).bit_length()))
    memory = -(-end // (2 << 20)) * (2 << 20)
    memory = max(memory, 4 << 20)
    s = Scenario(name, model="vtd", description=f"imported from Linux intel-iommu debugfs, {note}",
                 memory=memory, phys_bits=phys_bits)
    s.devices = devices
    s.image = image
    return s.validate()


def import_dir(path, *, name: str | None = None, unit: str | None = None) -> Scenario:
    """Read a copy of ``/sys/kernel/debug/iommu/intel``: its
    ``dmar_translation_struct`` and every ``domain_translation_struct``
    below it (one per device and PASID on newer kernels)."""
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"{path}: not a directory; allowed: a copy of "
                         "/sys/kernel/debug/iommu/intel")
    dmar = root / "dmar_translation_struct"
    if not dmar.is_file():
        raise ValueError(f"{path}: has no dmar_translation_struct")
    doms = "\n".join(p.read_text(errors="replace")
                     for p in sorted(root.rglob("domain_translation_struct")))
    return import_text(dmar.read_text(errors="replace"), doms, name=name or root.name,
                       unit=unit)


def dump(built) -> tuple[str, str]:
    """The two files as Linux would print them for a built scenario (VT-d
    scalable mode): ``(dmar_translation_struct, domain_translation_struct)``.
    The domain file lists, in the newer kernels' form, the page table of
    every present PASID entry with a first- or second-stage-only table."""
    from svmkit.graphs import leaves
    a = built.adapter
    mem = built.mem
    lines = [f"IOMMU dmar0: Root Table Address: {a.root:#x}",
             "B.D.F\tRoot_entry\t\t\t\tContext_entry\t\t\t\tPASID\tPASID_table_entry"]
    doms = []
    for rid, cpa, _ctp, ce in a._contexts():
        bus = rid >> 8
        rlo, rhi = mem.read_u64(a.root + 16 * bus), mem.read_u64(a.root + 16 * bus + 8)
        clo, chi = mem.read_u64(cpa), mem.read_u64(cpa + 8)
        for pasid, epa, _t, _d in a._pasid_entries(ce):
            qs = [mem.read_u64(epa + 8 * i) for i in range(3)]
            lines.append(f"{bdf_str(rid)}\t0x{rhi:016x}:0x{rlo:016x}\t0x{chi:016x}:0x{clo:016x}"
                         f"\t{pasid:<6d}\t0x{qs[2]:016x}:0x{qs[1]:016x}:0x{qs[0]:016x}")
    for cfg in a.contexts():
        if cfg.kind not in ("first", "second"):
            continue
        root, fmt, lv = ((cfg.first_root, cfg.first_fmt, cfg.first_levels) if cfg.kind == "first"
                         else (cfg.second_root, cfg.second_fmt, cfg.second_levels))
        doms.append(f"Device 0000:{bdf_str(cfg.rid)} with pasid {cfg.pasid:x} @{root:#x}")
        doms.append("IOVA_PFN\t\tPML5E\t\t\tPML4E\t\t\tPDPE\t\t\tPDE\t\t\tPTE")
        for x in leaves(mem, root, fmt, lv):
            # Re-walk to collect the entries on the path, as the kernel's
            # pgtable_walk_level keeps them in path[level].
            path, table = [0] * 6, root
            for level in range(lv, 0, -1):
                e = mem.read_u64(table + 8 * ((x.va >> (12 + 9 * (level - 1))) & 511))
                path[level] = e
                if x.entry == table + 8 * ((x.va >> (12 + 9 * (level - 1))) & 511):
                    break
                table = e & ADDR
            doms.append(f"0x{x.va >> 12:013x} |\t0x{path[5]:016x}\t0x{path[4]:016x}\t"
                        f"0x{path[3]:016x}\t0x{path[2]:016x}\t0x{path[1]:016x}")
        doms.append("")
    return "\n".join(lines) + "\n\n", "\n".join(doms)
