"""A layered (Sugiyama-style) layout computed in Python, so no Graphviz binary
is needed: layers from longest path (or a node's ``layer`` attribute), order
within a layer by a few barycenter sweeps to reduce crossings."""

from __future__ import annotations

import networkx as nx


def layers(g: nx.DiGraph) -> dict:
    """Node -> layer index. A node's ``layer`` attribute wins; otherwise the
    longest path from a source (cycles are broken by DFS order)."""
    if all("layer" in d for _, d in g.nodes(data=True)):
        return {n: int(d["layer"]) for n, d in g.nodes(data=True)}
    dag = nx.DiGraph()
    dag.add_nodes_from(g.nodes)
    # Drop back edges so the graph is acyclic; a cycle in a page table
    # (a table pointing at itself) must still draw.
    for u, v in nx.dfs_edges(g) if not nx.is_directed_acyclic_graph(g) else g.edges:
        dag.add_edge(u, v)
    if not nx.is_directed_acyclic_graph(dag):  # pragma: no cover - dfs_edges is a forest
        dag = nx.bfs_tree(dag, next(iter(dag)))
    out = {}
    for n in nx.topological_sort(dag):
        fixed = g.nodes[n].get("layer")
        preds = [out[p] + 1 for p in dag.predecessors(n)]
        out[n] = int(fixed) if fixed is not None else max(preds, default=0)
    return out


def layered_layout(g: nx.DiGraph, *, sweeps: int = 4) -> dict:
    """Node -> (column, layer): column a float position within its layer
    (0, 1, 2 ... after ordering), layer an int. Callers scale to pixels."""
    lay = layers(g)
    by_layer: dict[int, list] = {}
    for n in g.nodes:  # insertion order is the stable starting order
        by_layer.setdefault(lay[n], []).append(n)
    ks = sorted(by_layer)
    pos = {n: i for k in ks for i, n in enumerate(by_layer[k])}
    und = g.to_undirected(as_view=True)
    for s in range(sweeps):
        seq = ks[1:] if s % 2 == 0 else list(reversed(ks[:-1]))
        for k in seq:
            ref = k - 1 if s % 2 == 0 else k + 1

            def bary(n, ref=ref):
                nb = [pos[m] for m in und.neighbors(n) if lay.get(m) == ref]
                return sum(nb) / len(nb) if nb else pos[n]

            by_layer[k].sort(key=bary)
            for i, n in enumerate(by_layer[k]):
                pos[n] = i
    return {n: (float(pos[n]), lay[n]) for n in g.nodes}
