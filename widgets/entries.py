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
        d = fmt.descriptor(levels, phys_bits)
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
        rows, reserved = structures[ref.structure](ref)
        return Decoded(where, rows, reserved)
    return Decoded(where, [("qword 0", f"{ref.value:#018x}", "raw value (no decoder)")])
