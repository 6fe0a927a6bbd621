"""Lookups the evaluators make per probe, indexed once so a probe costs the same on a large
mesh as on a small one (a scan of every policy per probe made verification quadratic)."""

from __future__ import annotations

from typing import Any, Iterator

from migrate.verify.world import dig


def namespace_of(obj: dict[str, Any]) -> str:
    """``metadata.namespace``, ``default`` when absent (as ``kubectl apply`` without -n)."""
    return str(dig(obj, "metadata", "namespace", default="default") or "default")


class ByNamespace:
    """Objects in the order they were added, also reachable by namespace without a scan."""

    def __init__(self) -> None:
        self._items: list[dict[str, Any]] = []
        self._by_ns: dict[str, list[tuple[int, dict[str, Any]]]] = {}

    def append(self, obj: dict[str, Any]) -> None:
        """Add an object (indexed under its own namespace)."""
        self._by_ns.setdefault(namespace_of(obj), []).append((len(self._items), obj))
        self._items.append(obj)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __add__(self, other: Any) -> list[dict[str, Any]]:
        return list(self._items) + list(other)

    def in_ns(self, *namespaces: str) -> list[dict[str, Any]]:
        """Objects of these namespaces, in the order they were added."""
        found = [pair for ns in dict.fromkeys(namespaces) for pair in self._by_ns.get(ns, [])]
        return [obj for _, obj in sorted(found, key=lambda pair: pair[0])]


class ByParent:
    """Routes by the objects their ``parentRefs`` name: (kind, namespace, name)."""

    def __init__(self) -> None:
        self._items: list[dict[str, Any]] = []
        self._by_parent: dict[tuple[str, str, str], list[tuple[int, dict[str, Any]]]] = {}

    def append(self, route: dict[str, Any]) -> None:
        """Add a route under every parent it names."""
        ns = namespace_of(route)
        parents = dig(route, "spec", "parentRefs", default=[])
        keys = {(str(p.get("kind", "")), str(p.get("namespace", ns)), str(p.get("name", "")))
                for p in parents if isinstance(p, dict)} if isinstance(parents, list) else set()
        for key in keys:
            self._by_parent.setdefault(key, []).append((len(self._items), route))
        self._items.append(route)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def parented(self, kind: str, namespace: str, name: str) -> list[dict[str, Any]]:
        """Routes naming this parent, in the order they were added (callers still check the
        port and group themselves)."""
        return [route for _, route in self._by_parent.get((kind, namespace, name), [])]
