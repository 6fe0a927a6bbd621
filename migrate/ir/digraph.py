"""A small directed graph with edge attributes, for the namespace dependency graph.

It offers the part of ``networkx.DiGraph``'s interface the planner uses (``add_edge`` with
attributes, ``has_edge``, ``edges[a, b]``, ``predecessors``, ``successors``, ``nodes``), so
:mod:`migrate.plan.order` works on either. A plan no longer imports networkx for it: the
import alone took about 23 MB and a few tenths of a second, a third of the memory of
parsing a 2,000-service dump (docs/performance.md).
"""

from __future__ import annotations

from typing import Any, Hashable, Iterable, Iterator


class _EdgeView:
    """``graph.edges``: iterates (source, target) pairs; ``edges[a, b]`` is the edge's
    attribute dict (a KeyError if there is no such edge)."""

    __slots__ = ("_succ",)

    def __init__(self, succ: dict[Hashable, dict[Hashable, dict[str, Any]]]) -> None:
        self._succ = succ

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        for a, targets in self._succ.items():
            for b in targets:
                yield a, b

    def __len__(self) -> int:
        return sum(len(targets) for targets in self._succ.values())

    def __contains__(self, edge: object) -> bool:
        if not isinstance(edge, tuple) or len(edge) != 2:
            return False
        a, b = edge
        return b in self._succ.get(a, {})

    def __getitem__(self, edge: tuple[Hashable, Hashable]) -> dict[str, Any]:
        a, b = edge
        return self._succ[a][b]


class DiGraph:
    """Nodes and directed edges, each edge with an attribute dict; insertion ordered."""

    def __init__(self) -> None:
        self._succ: dict[Hashable, dict[Hashable, dict[str, Any]]] = {}
        self._pred: dict[Hashable, dict[Hashable, dict[str, Any]]] = {}

    def add_node(self, node: Hashable) -> None:
        """Add a node (nothing changes if it is there)."""
        if node not in self._succ:
            self._succ[node] = {}
            self._pred[node] = {}

    def add_nodes_from(self, nodes: Iterable[Hashable]) -> None:
        """Add several nodes."""
        for node in nodes:
            self.add_node(node)

    def add_edge(self, a: Hashable, b: Hashable, **attributes: Any) -> None:
        """Add an edge a -> b (and its nodes); on an existing edge the attributes are
        updated, as networkx does."""
        self.add_node(a)
        self.add_node(b)
        data = self._succ[a].get(b)
        if data is None:
            data = self._succ[a][b] = self._pred[b][a] = {}
        data.update(attributes)

    def has_edge(self, a: Hashable, b: Hashable) -> bool:
        """Whether there is an edge a -> b."""
        return b in self._succ.get(a, {})

    def __contains__(self, node: object) -> bool:
        return node in self._succ

    def __iter__(self) -> Iterator[Any]:
        return iter(self._succ)

    def __len__(self) -> int:
        return len(self._succ)

    @property
    def nodes(self) -> list[Any]:
        """The nodes, in the order added."""
        return list(self._succ)

    @property
    def edges(self) -> _EdgeView:
        """The edges: iterate for (a, b) pairs, index with ``[a, b]`` for attributes."""
        return _EdgeView(self._succ)

    def successors(self, node: Hashable) -> Iterator[Any]:
        """Targets of the edges leaving ``node``."""
        return iter(self._succ[node])

    def predecessors(self, node: Hashable) -> Iterator[Any]:
        """Sources of the edges entering ``node``."""
        return iter(self._pred[node])
