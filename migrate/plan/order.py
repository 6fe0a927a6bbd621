"""The migration order: one documented, tested policy.

Callees move before callers (../shared/reference/mapping-istio-linkerd.md section 5): traffic
between the two meshes is plaintext with no peer identity, and the target mesh can be told to
accept that (staged policy that admits the same requests without a peer identity) while the
source mesh, with STRICT mTLS and identity-based authorization, cannot without weakening
it. Moving callees first means a migrated namespace
only ever calls other migrated namespaces (full mTLS and identities), and namespaces still on
the source mesh never receive plaintext from the target mesh. Namespaces that call each other
(a cycle) collapse into one group that moves in one step. Among groups ready at the same time,
those not facing the ingress go first, then by name, so the order is deterministic; the
ingress-facing namespaces, and the ingress gateway itself, go last.
"""

from __future__ import annotations

from typing import Iterable

import networkx as nx


def migration_order(deps: nx.DiGraph, ingress: Iterable[str] = ()) -> list[list[str]]:
    """Groups of namespaces in the order they move: callees first, cycles together.

    ``deps`` has an edge caller -> callee for every call between namespaces.
    """
    facing = set(ingress)
    cond = nx.condensation(deps)
    members = {c: sorted(cond.nodes[c]["members"]) for c in cond.nodes}
    # Reverse the edges (callee -> caller) so a topological order lists callees first.
    order = nx.lexicographical_topological_sort(
        cond.reverse(copy=True),
        key=lambda c: (bool(facing & set(members[c])), members[c]))
    return [members[c] for c in order]


def override_order(requested: list[str], computed: list[list[str]]) -> list[list[str]]:
    """The order a person asked for: their namespaces first, one group each, in their order;
    every other namespace keeps its computed group and relative order afterwards."""
    wanted = [ns for ns in dict.fromkeys(requested)]
    known = {ns for group in computed for ns in group}
    groups = [[ns] for ns in wanted if ns in known]
    rest = [[ns for ns in group if ns not in wanted] for group in computed]
    return groups + [g for g in rest if g]


def exposed_hops(deps: nx.DiGraph, groups: list[list[str]]) -> list[dict[str, object]]:
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
