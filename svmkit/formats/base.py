"""What every format module provides on top of its descriptor.

A format module builds one :class:`Format` instance, ``FORMAT``. The walkers read only the
descriptor (see :mod:`svmkit.formats.layout`); everything here is for people: named fields,
entry builders for tests and scenarios, spec names of the levels, and the architecture's
fault numbers.
"""

from dataclasses import dataclass

from . import layout as L


@dataclass(frozen=True)
class Field:
    """A named bit field of an entry: bits ``hi..lo``, in entries of kind ``where``
    ("all", "table" or "leaf")."""

    name: str
    hi: int
    lo: int
    where: str = "all"
    doc: str = ""
    address: bool = False      # an address field reads in place (not shifted down)

    def get(self, entry):
        value = (entry >> self.lo) & ((1 << (self.hi - self.lo + 1)) - 1)
        return value << self.lo if self.address else value


class Format:
    """One page-table entry format. Subclasses set the class attributes and implement
    :meth:`descriptor` and :meth:`fault_code`."""

    name = ""
    stage_name = "first"    # the stage this format serves: "first" (a CPU's or a guest's
                            # tables) or "second" (a host's tables for a VM or a device)
    spec = ""               # the specification sections the module implements
    levels_allowed = ()     # walk depths the format supports
    level_names = {}        # level -> spec name of an entry at that level (table form)
    leaf_names = {}         # level -> spec name of a leaf at that level, where it differs
    fields = ()             # Field objects
    page_sizes = {}         # level -> size of a leaf at that level, where leaves exist

    def check_levels(self, levels, argument="levels"):
        if levels not in self.levels_allowed:
            raise ValueError(
                f"{argument}={levels!r} is not allowed for format {self.name!r}; "
                f"allowed: {', '.join(map(str, self.levels_allowed))}")

    def descriptor(self, levels, phys_bits=52, **options):
        raise NotImplementedError

    def fault_code(self, reason, access, user):
        """The architecture's number for a fault of this stage, or None."""
        return None

    # -- for people -------------------------------------------------------------------------

    def structure(self, level, leaf):
        """The spec's name of an entry read at ``level`` ("pml4e", "sl-pte" ...)."""
        if leaf and level in self.leaf_names:
            return self.leaf_names[level]
        return self.level_names.get(level, f"level-{level}")

    def is_leaf(self, entry, level, d):
        """Whether ``entry`` read at ``level`` maps a page (uses the descriptor ``d``)."""
        kind = d[level, L.L_LEAF]
        if kind == L.LEAF_ALWAYS:
            return True
        if kind == L.LEAF_NEVER:
            return False
        e = L.to_i64(entry)
        return (e & int(d[level, L.L_LEAF_MASK])) == int(d[level, L.L_LEAF_VAL])

    def decode(self, entry, level, d=None, leaf=None):
        """Named fields of ``entry`` read at ``level``, for display.

        ``leaf`` says which form to decode; None works it out with descriptor ``d`` (the
        default descriptor for the deepest walk when ``d`` is None). The result also holds
        ``reserved``: the reserved bits that are set (0 when the entry is well formed).
        """
        entry = L.to_u64(entry)
        if d is None:
            d = self.descriptor(max(self.levels_allowed))
        if leaf is None:
            leaf = self.is_leaf(entry, level, d)
        out = {"form": "leaf" if leaf else "table"}
        for f in self.fields:
            if f.where == "all" or f.where == ("leaf" if leaf else "table"):
                out[f.name] = f.get(entry)
        rsvd = int(d[level, L.L_RSVD_LEAF if leaf else L.L_RSVD_TABLE])
        out["reserved"] = entry & L.to_u64(rsvd)
        return out

    def page_size(self, level):
        return 1 << (12 + 9 * (level - 1))
