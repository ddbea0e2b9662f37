"""Page-table entry formats, one module each; :func:`get` finds one by name.

A format module defines ``FORMAT``, an instance of :class:`svmkit.formats.base.Format`.
Adding a format is adding a module here: the registry finds it by its file name.
"""

import importlib
import pkgutil

_NOT_FORMATS = {"base", "layout"}


def names():
    """Names of the formats that ship with svmkit."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__)
                  if m.name not in _NOT_FORMATS and not m.name.startswith("_"))


def get(name, argument="fmt"):
    """The :class:`~svmkit.formats.base.Format` called ``name``; ValueError naming
    ``argument`` and the formats allowed when there is none."""
    if isinstance(name, str) and name in names():
        return importlib.import_module(f"{__name__}.{name}").FORMAT
    if hasattr(name, "descriptor") and hasattr(name, "levels_allowed"):
        return name                      # already a Format
    raise ValueError(f"{argument}={name!r} is not a known format; allowed: {', '.join(names())}")
