"""The migration order: one documented, tested policy.

Callees move before callers (../shared/reference/mapping-istio-linkerd.md section 5): traffic
between the two meshes is plaintext with no peer identity, and the target mesh can be told to
accept that (staged ``audit`` policy) while the source mesh, with STRICT mTLS and identity-based
authorization, cannot without weakening it. Moving callees first means a migrated namespace
only ever calls other migrated namespaces (full mTLS and identities), and namespaces still on
the source mesh never receive plaintext from the target mesh. Namespaces that call each other
(a cycle) collapse into one group that moves in one step. Among groups ready at the same time,
those not facing the ingress go first, then by name, so the order is deterministic; the
ingress-facing namespaces, and the ingress gateway itself, go last.
"""

from __future__ import annotations

import heapq
from typing import Any, Hashable, Iterable

from migrate.ir.digraph import DiGraph


def migration_order(deps: DiGraph, ingress: Iterable[str] = ()) -> list[list[str]]:
    """Groups of namespaces in the order they move: callees first, cycles together.

    ``deps`` has an edge caller -> callee for every call between namespaces (a
    :class:`~migrate.ir.digraph.DiGraph`, or a ``networkx.DiGraph``).
    """
    facing = set(ingress)
    groups = [sorted(members) for members in strongly_connected(deps)]
    group_of = {ns: g for g, members in enumerate(groups) for ns in members}
    # Group-level edges, reversed (callee group -> caller groups): a topological order of
    # the reversed edges lists callees first.
    callers: list[set[int]] = [set() for _ in groups]
    for g, members in enumerate(groups):
        for ns in members:
            for callee in deps.successors(ns):
                if group_of[callee] != g:
                    callers[group_of[callee]].add(g)
    waiting = [0] * len(groups)
    for found in callers:
        for g in found:
            waiting[g] += 1

    def key(g: int) -> tuple[bool, list[str]]:
        # Among ready groups: not facing the ingress first, then by name. Groups are
        # disjoint, so keys never tie and the order does not depend on how groups were found.
        return bool(facing & set(groups[g])), groups[g]

    ready = [(key(g), g) for g in range(len(groups)) if not waiting[g]]
    heapq.heapify(ready)
    order = []
    while ready:
        _, g = heapq.heappop(ready)
        order.append(groups[g])
        for caller in callers[g]:
            waiting[caller] -= 1
            if not waiting[caller]:
                heapq.heappush(ready, (key(caller), caller))
    return order


def strongly_connected(graph: Any) -> list[list[Hashable]]:
    """The strongly connected components of a graph with ``nodes`` and ``successors``
    (Tarjan's algorithm, iterative so deep call chains cannot overflow the stack)."""
    index: dict[Hashable, int] = {}
    low: dict[Hashable, int] = {}
    stack: list[Hashable] = []
    on_stack: set[Hashable] = set()
    components: list[list[Hashable]] = []
    for root in graph.nodes:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(graph.successors(root)))]
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.successors(child))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:  # every child seen: node is done
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component)
    return components


def override_order(requested: list[str], computed: list[list[str]]) -> list[list[str]]:
    """The order a person asked for: their namespaces first, one group each, in their order;
    every other namespace keeps its computed group and relative order afterwards."""
    wanted = [ns for ns in dict.fromkeys(requested)]
    known = {ns for group in computed for ns in group}
    groups = [[ns] for ns in wanted if ns in known]
    rest = [[ns for ns in group if ns not in wanted] for group in computed]
    return groups + [g for g in rest if g]


def exposed_hops(deps: DiGraph, groups: list[list[str]]) -> list[dict[str, object]]:
    """Calls whose caller moves before its callee, and for how many steps.

    During those steps the callee, still on the source mesh, receives plaintext with no peer
    identity: STRICT mTLS resets the connection and identity-based rules refuse it.
    """
    position = {ns: i for i, group in enumerate(groups) for ns in group}
    hops = []
    for caller, callee in sorted(deps.edges):
        a, b = position.get(caller), position.get(callee)
        if a is not None and b is not None and a < b:
            hops.append({"caller": caller, "callee": callee, "caller_group": a,
                         "callee_group": b, "groups_exposed": b - a,
                         "reasons": list(deps.edges[caller, callee].get("reasons", []))})
    return hops
