"""JSON for a walk trace, with a stable schema (documented in docs/scenarios.md,
"JSON walk trace").

Addresses and entry values are hex strings (``"0x1000"``): 64-bit entries do
not fit a JavaScript number exactly. Keys never disappear: absent values are
``null``. ``schema`` names the format and version; a change that removes or
renames a key bumps the version.
"""

from __future__ import annotations

import json as _json

from svmkit.graphs import walk_grid

WALK_SCHEMA = "svmkit-walk/1"


def _h(v):
    return None if v is None else f"0x{int(v):x}"


def walk_to_dict(walk, **context) -> dict:
    """A ``Walk`` (design.md) as a JSON-ready dict. ``context`` (e.g.
    ``model``, ``device``, ``pasid``, ``access``) is kept under ``context``
    with ints as numbers and strings as given."""
    grid = walk_grid(walk)
    f = walk.fault
    refs = []
    for i, r in enumerate(walk.refs or [], 1):
        refs.append({
            "n": i, "stage": r.stage, "level": r.level, "structure": r.structure,
            "address": _h(r.address), "value": _h(r.value), "guest_level": r.guest_level,
        })
    return {
        "schema": WALK_SCHEMA,
        "context": dict(context),
        "va": _h(walk.va),
        "ok": bool(walk.ok),
        "pa": _h(walk.pa),
        "gpa": _h(getattr(walk, "gpa", None)),
        "page_size": walk.page_size,
        "fault": None if f is None else {
            "stage": f.stage, "level": f.level, "reason": f.reason,
            "address": _h(f.address), "code": f.code, "access": getattr(f, "access", None),
            "ref": grid.fault_number,
        },
        "refs": refs,
        "grid": {
            "nested": grid.nested,
            "second_levels": grid.second_levels,
            "first_levels": grid.first_levels,
            "prefix": [c.number for c in grid.prefix],
            "rows": [{
                "guest_level": row.guest_level,
                "second": {str(l): c.number for l, c in sorted(row.second.items(), reverse=True)},
                "first": None if row.first is None else row.first.number,
            } for row in grid.rows],
        },
    }


def walk_json(walk, *, indent: int | None = 2, **context) -> str:
    """:func:`walk_to_dict` serialised, keys in a fixed order."""
    return _json.dumps(walk_to_dict(walk, **context), indent=indent)


def scenario_json(s, *, indent: int | None = 2) -> str:
    """A scenario as JSON: the same data as its TOML file (schema
    ``svmkit-scenario/1``, docs/scenarios.md), addresses as numbers."""
    from svmkit.scenario import to_dict
    return _json.dumps(to_dict(s), indent=indent)
