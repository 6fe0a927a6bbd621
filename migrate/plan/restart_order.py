"""The order a move step restarts its workloads in: callees before their callers.

A move step restarts its workloads one after the other. A workload that restarted runs the
target's proxy and calls in plaintext with no identity; a callee still waiting on the source
mesh refuses that under STRICT mTLS or an identity-based policy (mapping-istio-linkerd.md
section 5). The other way round works: a caller still on the source reaches a callee already
on the target, whose staged policy admits the source mesh's plaintext. So within a step, as
between steps, callees restart first. Workloads that call each other (a cycle) cannot all be
served; the step reports the window (``PLAN_RESTART_CYCLE``).

The calls are those the IR knows: a workload naming a Service in its environment, and an
ALLOW policy naming a caller's service account or namespace.
"""

from __future__ import annotations

from typing import Iterable

import networkx as nx

from migrate.ir.graph import CALLS, MeshGraph, node_id
from migrate.ir.model import AuthzPolicy, Route, Workload


def workload_calls(graph: MeshGraph, workloads: Iterable[Workload]) -> nx.DiGraph:
    """Caller -> callee among ``workloads`` (keyed by :func:`node_id`)."""
    members = {node_id(w): w for w in workloads}
    calls = nx.DiGraph()
    calls.add_nodes_from(sorted(members))
    selected: dict[str, list[str]] = {}
    for key, w in members.items():
        for svc in graph.services_of(w):
            selected.setdefault(node_id(svc), []).append(key)
    for u, v in graph.edges(CALLS):
        if u in members:
            calls.add_edges_from((u, callee) for callee in selected.get(v, []) if callee != u)
    for authz in graph.of(AuthzPolicy):
        if authz.action != "ALLOW":
            continue
        callees = [node_id(w) for w in graph.workloads_selected(authz.namespace, authz.selector)
                   if node_id(w) in members]
        if not callees:
            continue
        identities = graph.caller_identities(authz)
        namespaces = graph.caller_namespaces(authz)
        callers = [k for k, w in members.items()
                   if (w.namespace, w.service_account) in identities or w.namespace in namespaces]
        calls.add_edges_from((a, b) for a in callers for b in callees if a != b)
    return calls


def ingress_backends(graph: MeshGraph) -> set[str]:
    """Workloads an ingress route sends to: the entry points, whose callers the IR does not
    see (the application's own calls among them are often not in any manifest)."""
    keys = {b.service for route in graph.of(Route) if route.ingress for rule in route.rules
            for b in rule.backends if b.service}
    return {node_id(w) for w in graph.of(Workload)
            if any(s.key in keys for s in graph.services_of(w))}


def callee_first(graph: MeshGraph, workloads: list[Workload]
                 ) -> tuple[list[Workload], list[list[Workload]]]:
    """``workloads`` in restart order (callees first; of the others, ingress backends last,
    otherwise as given) and the groups of workloads that call each other (each restarts as a
    group, in the given order)."""
    calls = workload_calls(graph, workloads)
    entry = ingress_backends(graph)
    # An ingress backend is the likeliest caller of the rest: it restarts after them.
    position = {node_id(w): (node_id(w) in entry, i) for i, w in enumerate(workloads)}
    condensed = nx.condensation(calls)
    members = condensed.graph["mapping"]
    # Callees first: the reverse of a caller -> callee topological order, ties as given.
    order = list(nx.lexicographical_topological_sort(
        condensed.reverse(copy=True),
        key=lambda c: min(position[m] for m in condensed.nodes[c]["members"])))
    by_key = {node_id(w): w for w in workloads}
    out: list[Workload] = []
    cycles: list[list[Workload]] = []
    for c in order:
        group = sorted(condensed.nodes[c]["members"], key=position.__getitem__)
        out += [by_key[k] for k in group]
        if len(group) > 1:
            cycles.append([by_key[k] for k in group])
    assert len(out) == len(workloads) and len(members) == len(workloads)
    return out, cycles
