"""VT-d translation structures: root, context, PASID-directory and PASID entries.

Each structure is a `Structure`: a list of named fields at absolute bit
positions (bit 64 is bit 0 of the second qword), as the spec's figures draw
them. `encode(**fields)` builds the qwords, `decode(qwords)` names them,
`reserved(qwords, haw)` returns the reserved bits that are set (0 if none).
Address fields (table pointers) also have their bits at and above the host
address width (HAW) reserved (VT-d §9, "bits above HAW are reserved").

Sections: VT-d rev. 3.x/4.x chapter 9 for legacy and scalable mode; VT-d
rev. 2.x chapter 9 for the extended-context mode (extended root entries
share the scalable-mode root-entry layout, VT-d 2.x §9.2).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Field", "Structure", "root_entry", "sm_root_entry", "context_entry",
    "sm_context_entry", "ext_context_entry", "pasid_dir_entry", "pasid_entry",
    "ext_pasid_entry", "PGTT", "PGTT_NAMES", "LEGACY_TT", "EXT_TT",
    "AW_LEVELS", "pasid_dir_size", "ext_pasid_table_size",
]


@dataclass(frozen=True)
class Field:
    """One field: `name` (the spec's, lower case), `lo`..`hi` (inclusive,
    absolute bit numbers), `addr` True for a 4 KiB-aligned physical address
    field whose value is the address itself (bits below `lo` are zero)."""
    name: str
    lo: int
    hi: int
    addr: bool = False

    @property
    def width(self) -> int:
        return self.hi - self.lo + 1

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lo


class Structure:
    """A fixed-size structure of `qwords` 64-bit words (spec section `spec`).

    `fields` are the defined fields; every bit not in a field, and not in
    `ignored`, is reserved (must be zero)."""

    def __init__(self, name, spec, qwords, fields, ignored=()):
        self.name = name
        self.spec = spec
        self.qwords = qwords
        self.fields = {f.name: f for f in fields}
        self.size = qwords * 8
        used = 0
        for f in fields:
            used |= f.mask
        for lo, hi in ignored:
            used |= ((1 << (hi - lo + 1)) - 1) << lo
        self.reserved_mask = ((1 << (64 * qwords)) - 1) & ~used

    # -- packing -----------------------------------------------------------
    def _join(self, qwords) -> int:
        if len(qwords) != self.qwords:
            raise ValueError(f"qwords: {self.name} has {self.qwords} qwords, got {len(qwords)}")
        v = 0
        for i, q in enumerate(qwords):
            v |= (int(q) & 0xFFFF_FFFF_FFFF_FFFF) << (64 * i)
        return v

    def _split(self, v: int) -> tuple:
        return tuple((v >> (64 * i)) & 0xFFFF_FFFF_FFFF_FFFF for i in range(self.qwords))

    def encode(self, **fields) -> tuple:
        """The qwords of an entry with these fields (others zero).

        Address fields take the address (4 KiB aligned); the others take the
        field value. Unknown names or values that do not fit raise ValueError."""
        v = 0
        for name, value in fields.items():
            f = self.fields.get(name)
            if f is None:
                raise ValueError(f"{name}: not a field of {self.name}; "
                                 f"allowed: {sorted(self.fields)}")
            value = int(value)
            if f.addr:
                if value & 0xFFF or value < 0 or value >> (12 + f.width):
                    raise ValueError(f"{name}: must be a 4 KiB-aligned address below "
                                     f"2^{12 + f.width}")
                raw = value >> 12
                fl = Field(f.name, f.lo, f.hi)
            else:
                raw, fl = value, f
            if raw < 0 or raw >> fl.width:
                raise ValueError(f"{name}: {value:#x} does not fit {fl.width} bits")
            v |= raw << fl.lo
        return self._split(v)

    def decode(self, qwords) -> dict:
        """Every field of the entry by name (addresses as addresses)."""
        v = self._join(qwords)
        out = {}
        for f in self.fields.values():
            raw = (v >> f.lo) & ((1 << f.width) - 1)
            out[f.name] = raw << 12 if f.addr else raw
        return out

    def get(self, qwords, name) -> int:
        return self.decode(qwords)[name]

    def reserved(self, qwords, haw: int, addr_fields=None) -> int:
        """The reserved bits set in this entry (absolute positions), 0 if none.

        Address fields named in `addr_fields` (default: all) also count their
        bits at or above `haw` as reserved."""
        v = self._join(qwords)
        bad = v & self.reserved_mask
        names = self.fields if addr_fields is None else addr_fields
        for name in names:
            f = self.fields[name]
            if not f.addr:
                continue
            # address bit k sits at structure bit f.lo + (k - 12)
            first = f.lo + max(haw - 12, 0)
            if first <= f.hi:
                m = ((1 << (f.hi - first + 1)) - 1) << first
                bad |= v & m
        return bad

    def __repr__(self):
        return f"<Structure {self.name} ({self.spec}), {self.qwords * 64} bits>"


# --- root entries ---------------------------------------------------------

#: Legacy root entry (VT-d §9.1): P, context-table pointer; 128 bits, the
#: upper 64 reserved.
root_entry = Structure("root-entry", "VT-d §9.1", 2, [
    Field("p", 0, 0),
    Field("ctp", 12, 63, addr=True),
])

#: Scalable-mode root entry (VT-d §9.2); also the VT-d 2.x extended root
#: entry. LP/LCTP for devfn 0-127, UP/UCTP for devfn 128-255.
sm_root_entry = Structure("sm-root-entry", "VT-d §9.2", 2, [
    Field("lp", 0, 0),
    Field("lctp", 12, 63, addr=True),
    Field("up", 64, 64),
    Field("uctp", 76, 127, addr=True),
])

# --- context entries ------------------------------------------------------

#: Legacy context entry (VT-d §9.3). TT: 00b untranslated requests through
#: the second level, 01b also translation requests (device-TLB), 10b
#: pass-through, 11b reserved. AW 000b..100b = 30..64-bit, 2..6 levels.
#: AVAIL (bits 70:67) is ignored by hardware.
context_entry = Structure("context-entry", "VT-d §9.3", 2, [
    Field("p", 0, 0),
    Field("fpd", 1, 1),
    Field("tt", 2, 3),
    Field("slptptr", 12, 63, addr=True),
    Field("aw", 64, 66),
    Field("did", 72, 87),
], ignored=[(67, 70)])

LEGACY_TT = {0: "untranslated", 1: "device-tlb", 2: "pass-through"}

#: Scalable-mode context entry (VT-d §9.4), 256 bits: DTE (device-TLB
#: enable), PASIDE (PASID enable), PRE (page request enable), PDTS (the
#: PASID directory has 2^(PDTS+7) entries), the PASID-directory pointer,
#: RID_PASID (the PASID for requests without one) and RID_PRIV.
sm_context_entry = Structure("sm-context-entry", "VT-d §9.4", 4, [
    Field("p", 0, 0),
    Field("fpd", 1, 1),
    Field("dte", 2, 2),
    Field("paside", 3, 3),
    Field("pre", 4, 4),
    Field("pdts", 9, 11),
    Field("pasiddirptr", 12, 63, addr=True),
    Field("rid_pasid", 64, 83),
    Field("rid_priv", 84, 84),
])


def pasid_dir_size(pdts: int) -> int:
    """Entries in a PASID directory of size field PDTS (VT-d §9.4)."""
    return 1 << (pdts + 7)


#: VT-d 2.x extended-context entry (2.x §9.4), 256 bits. T (3 bits): 000b
#: host mode (requests without PASID through the second level), 001b the
#: same with device-TLB, 010b pass-through, 100b/101b "guest mode":
#: requests without PASID through the second level, requests with PASID
#: through the PASID table (with/without device-TLB). NESTE makes the
#: first level nested over the second, and then PASIDPTR is a guest
#: physical address. PTS: the PASID table has 2^(PTS+5) entries.
ext_context_entry = Structure("ext-context-entry", "VT-d 2.x §9.4", 4, [
    Field("p", 0, 0),
    Field("fpd", 1, 1),
    Field("t", 2, 4),
    Field("emt", 5, 7),
    Field("dinve", 8, 8),
    Field("pre", 9, 9),
    Field("neste", 10, 10),
    Field("paside", 11, 11),
    Field("slptptr", 12, 63, addr=True),
    Field("aw", 64, 66),
    Field("pge", 67, 67),
    Field("nxe", 68, 68),
    Field("wpe", 69, 69),
    Field("cd", 70, 70),
    Field("emte", 71, 71),
    Field("did", 72, 87),
    Field("smep", 88, 88),
    Field("eafe", 89, 89),
    Field("ere", 90, 90),
    Field("slee", 91, 91),
    Field("pat", 96, 127),
    Field("pts", 128, 131),
    Field("pasidptr", 140, 191, addr=True),
    Field("pasidstptr", 204, 255, addr=True),
])

EXT_TT = {0: "host", 1: "host-device-tlb", 2: "pass-through",
          4: "pasid", 5: "pasid-device-tlb"}


def ext_pasid_table_size(pts: int) -> int:
    """Entries in a VT-d 2.x PASID table of size field PTS (2.x §9.4)."""
    return 1 << (pts + 5)


# --- PASID directory and table -------------------------------------------

#: Scalable-mode PASID-directory entry (VT-d §9.5): P, FPD, PASID-table
#: pointer. Indexed by PASID bits 19:6.
pasid_dir_entry = Structure("pasid-directory-entry", "VT-d §9.5", 1, [
    Field("p", 0, 0),
    Field("fpd", 1, 1),
    Field("ptp", 12, 63, addr=True),
])

#: Scalable-mode PASID-table entry (VT-d §9.6), 512 bits, indexed by PASID
#: bits 5:0. AW: second-level width (001b 39-bit/3-level, 010b
#: 48-bit/4-level, 011b 57-bit/5-level). PGTT (PASID granular translation
#: type): 001b first-level only, 010b second-level only, 011b nested,
#: 100b pass-through. FLPM: first-level paging mode, 00b 4-level, 01b
#: 5-level. FLPTPTR is an HPA for PGTT 001b and a GPA for 011b.
#: Bits 5, 11:10, 86:80, 139:136 and 511:192 are reserved here (later
#: revisions give some of them meanings this model does not use).
pasid_entry = Structure("pasid-entry", "VT-d §9.6", 8, [
    Field("p", 0, 0),
    Field("fpd", 1, 1),
    Field("aw", 2, 4),
    Field("pgtt", 6, 8),
    Field("ssade", 9, 9),
    Field("slptptr", 12, 63, addr=True),
    Field("did", 64, 79),
    Field("pwsnp", 87, 87),
    Field("pgsnp", 88, 88),
    Field("cd", 89, 89),
    Field("emte", 90, 90),
    Field("emt", 91, 93),
    Field("pwt", 94, 94),
    Field("pcd", 95, 95),
    Field("pat", 96, 127),
    Field("sre", 128, 128),
    Field("ere", 129, 129),
    Field("flpm", 130, 131),
    Field("wpe", 132, 132),
    Field("nxe", 133, 133),
    Field("smep", 134, 134),
    Field("eafe", 135, 135),
    Field("flptptr", 140, 191, addr=True),
])

PGTT = {"first": 1, "second": 2, "nested": 3, "pass-through": 4}
PGTT_NAMES = {v: k for k, v in PGTT.items()}

#: AW encodings shared by context entries and PASID entries (VT-d §9.3,
#: §9.6): AW value -> second-level paging levels.
AW_LEVELS = {1: 3, 2: 4, 3: 5}

#: VT-d 2.x PASID entry (2.x §9.5), 64 bits: P, PWT, PCD, FLPM (00b
#: 4-level, 01b 5-level), SRE and the first-level table pointer.
ext_pasid_entry = Structure("ext-pasid-entry", "VT-d 2.x §9.5", 1, [
    Field("p", 0, 0),
    Field("pwt", 3, 3),
    Field("pcd", 4, 4),
    Field("flpm", 9, 10),
    Field("sre", 11, 11),
    Field("flptptr", 12, 63, addr=True),
])
