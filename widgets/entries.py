"""An entry just read, decoded field by field for display.

Page-table entries are decoded by their format (:meth:`svmkit.formats.base.Format.decode`,
which also reports the reserved bits that are set). Structure entries (root, context,
PASID, STE/CD, DTE) are decoded by the IOMMU model's structure tables when the model
provides them, else shown as raw qwords.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from svmkit import formats

from ._common import hx


@dataclass
class Decoded:
    """``rows``: (field, value, note) triples; ``reserved``: the reserved bits set
    (0 when the entry is well formed); ``title``: what was read, where."""

    title: str
    rows: list
    reserved: int = 0

    def html(self) -> str:
        out = [f"<div><b>{escape(self.title)}</b></div>",
               "<table class='svmkit-fields'><tr><th>field</th><th>value</th>"
               "<th>meaning</th></tr>"]
        for name, value, note in self.rows:
            out.append(f"<tr><td>{escape(name)}</td><td>{escape(value)}</td>"
                       f"<td>{escape(note)}</td></tr>")
        if self.reserved:
            bits = ", ".join(str(b) for b in range(64) if self.reserved >> b & 1)
            out.append(f"<tr class='svmkit-reserved'><td>RESERVED</td>"
                       f"<td>{self.reserved:#x}</td><td>reserved bit(s) {bits} set: "
                       "the walk faults here</td></tr>")
        out.append("</table>")
        return "".join(out)


def _format_of(walk, ref):
    """The format and descriptor a page-stage ref was read with."""
    if ref.stage == "second" and walk.second_fmt:
        return formats.get(walk.second_fmt), walk.second_levels
    return formats.get(walk.fmt), walk.levels


def decode_ref(walk, ref, *, phys_bits: int = 52, structures=None) -> Decoded:
    """Decode ``ref`` of ``walk``. ``structures`` optionally maps a structure name to a
    callable ``(ref) -> (rows, reserved)`` supplied by an IOMMU model set-up."""
    where = f"{ref.structure or ref.stage} at HPA {ref.address:#x}: {ref.value:#018x}"
    if ref.stage in ("first", "second"):
        fmt, levels = _format_of(walk, ref)
        try:
            d = fmt.descriptor(levels, phys_bits)
        except ValueError:      # a width this format does not offer: its default
            d = fmt.descriptor(levels)
        fields = fmt.decode(ref.value, ref.level, d)
        docs = {f.name: f.doc for f in fmt.fields}
        addresses = {f.name for f in fmt.fields if getattr(f, "address", False)}
        reserved = int(fields.pop("reserved", 0))
        form = fields.pop("form", "")
        rows = [("form", form, "maps a page" if form == "leaf" else "points to a table")]
        for name, value in fields.items():
            shown = hx(value) if name in addresses else str(value)
            note = docs.get(name, "")
            rows.append((name, shown, note))
        return Decoded(where, rows, reserved)
    if structures and ref.structure in structures:
        try:
            rows, reserved = structures[ref.structure](ref)
            return Decoded(where, rows, int(reserved))
        except Exception as exc:  # noqa: BLE001 - fall back to the raw qword below
            note = f"decoder failed: {type(exc).__name__}: {exc}"
            return Decoded(where, [("qword 0", f"{ref.value:#018x}", note)])
    return Decoded(where, [("qword 0", f"{ref.value:#018x}", "raw value (no decoder)")])


def _rows(fields: dict, addresses=(), meanings=None) -> list:
    out = []
    for name, value in fields.items():
        if name == "reserved":
            continue
        shown = hx(value) if (name in addresses or value > 0xFFFF) else str(value)
        out.append((name, shown, (meanings or {}).get(name, {}).get(value, "")))
    return out


def _read(mem, address, qwords):
    return tuple(mem.read_u64(address + 8 * i) for i in range(qwords))


def structure_decoders(setup) -> dict:
    """Decoders for the IOMMU structures of ``setup``'s model, by the structure names its
    refs carry: ``name -> (ref -> (rows, reserved))``. The whole entry is read from
    memory (a Ref holds one qword) or taken from ``ref.qwords`` where the model gives it.
    Empty for a model without structure decoders (its refs then show raw qwords)."""
    built = getattr(setup, "built", None)
    if built is None:
        return {}
    mem, model = setup.mem, setup.model
    out = {}
    if model.startswith("vtd"):
        from svmkit.vtd import structures as VS
        iommu = built.iommu
        ttm, haw = getattr(iommu, "ttm", "scalable"), getattr(iommu, "haw", 48)
        table = {
            "root-entry": VS.root_entry if ttm == "legacy" else VS.sm_root_entry,
            "context-entry": {"legacy": VS.context_entry, "scalable": VS.sm_context_entry,
                              "extended": VS.ext_context_entry}.get(ttm, VS.sm_context_entry),
            "pasid-directory-entry": VS.pasid_dir_entry,
            "pasid-entry": VS.ext_pasid_entry if ttm == "extended" else VS.pasid_entry,
        }
        for name, st in table.items():
            def dec(ref, st=st):
                base = ref.address - ref.address % st.size
                q = _read(mem, base, st.qwords)
                addrs = {n for n, f in st.fields.items() if getattr(f, "addr", False)}
                meanings = {"pgtt": VS.PGTT_NAMES}
                return _rows(st.decode(q), addrs, meanings), st.reserved(q, haw)
            out[name] = dec
    elif model.startswith("smmu"):
        from svmkit.smmuv3 import structures as SS
        for name, st in (("ste", SS.STE), ("cd", SS.CD)):
            def dec(ref, st=st):
                q = getattr(ref, "qwords", ()) or _read(mem, ref.address, 8)
                return _rows(st.decode(q)), 0
            out[name] = dec
    elif model.startswith("amd"):
        from svmkit.amdvi import dte as AD

        def dec_dte(ref):
            q = getattr(ref, "qwords", ()) or _read(mem, ref.address - ref.address % 32, 4)
            fields = AD.decode_dte(q)
            return _rows(fields, {"gcr3_root", "host_page_table_root"}), \
                int(fields.get("reserved", 0))
        out["dte"] = dec_dte
    return out
