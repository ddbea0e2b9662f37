"""Pictures of a walk for the widgets, drawn by the kit's renderer
(:mod:`svmkit.render.svg`, layouts in Python): every cell and node carries ``data-ref`` /
``data-node``, and the lit one ``data-highlight='1'``, which the browser tests look for.
"""

from __future__ import annotations

from svmkit.graphs import walk_graph
from svmkit.render.svg import graph_svg, walk_grid_svg


def grid_svg(walk, *, highlight=None, title=None):
    """The two-dimensional grid of ``walk`` with reference ``highlight`` (1-based) lit."""
    return walk_grid_svg(walk, highlight=highlight, title=title)


def path_svg(walk, *, highlight=None, title=None):
    """The entries a walk read, in order, as a graph with reference ``highlight`` lit
    (for walks with no scenario behind them, hence no structure graph)."""
    def label(node, d):
        return f"{d['n']}. {d['structure'] or d['stage']}\n{d['address']:#x}"

    return graph_svg(walk_graph(walk), highlight=("ref", highlight) if highlight else None,
                     title=title, label=label)


def structures_svg(graph, node, *, title=None):
    """A scenario's structure graph (:func:`svmkit.graphs.structure_graph`) with ``node``
    (the table the current reference read) lit."""
    return graph_svg(graph, highlight=node, title=title)
