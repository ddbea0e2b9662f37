"""Renderers: plain text (mailing lists: ASCII, at most 72 columns), JSON
(stable documented schemas, see docs/scenarios.md) and SVG (layout computed
in Python, no Graphviz). Each takes model values (a ``Walk``, a graph, an
audit) and returns a string."""

from svmkit.render import json, svg, text

__all__ = ["json", "svg", "text"]
