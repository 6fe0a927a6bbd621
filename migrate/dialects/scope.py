"""What every target writer reports about the scope of the source's security: policies whose
selector picks no workload of the input, and headless Services whose Istio callers keep
sending Istio mTLS to pods that left Istio.
"""

from __future__ import annotations

from migrate.ir.graph import MeshGraph
from migrate.ir.hosts import service_of_host
from migrate.ir.model import AuthzPolicy, MTLSPolicy, Service, Workload
from migrate.losses import LossLog, Severity


def report_unselected(graph: MeshGraph, losses: LossLog, namespaces: list[str],
                      target: str) -> None:
    """An ``info`` loss for each policy with a selector that picks no workload of the input.

    Such a policy produces nothing in the target (its Servers, selectors or intentions are
    written per workload or Service the input shows), and its source object is still
    removed with the other source objects of its namespace; pods that later carry its labels
    get the target's namespace default instead. Mesh-wide policies count as selecting
    something when they pick a workload in any migrated namespace.
    """
    moved = set(namespaces)
    for cls, feature in ((AuthzPolicy, "authz.allow"), (MTLSPolicy, "mtls.strict")):
        for policy in graph.of(cls):
            if policy.selector is None:
                continue
            if policy.mesh_wide:
                scope = sorted(moved)
            elif policy.namespace in moved:
                scope = [policy.namespace]
            else:
                continue
            if any(graph.workloads_selected(ns, policy.selector) for ns in scope):
                continue
            ref = policy.origin.ref
            wanted = ", ".join(f"{k}={v}" for k, v in policy.selector)
            where = "any migrated namespace" if policy.mesh_wide else f"namespace {ref.namespace}"
            losses.report(
                "AUTHZ_SELECTS_NOTHING", Severity.INFO, feature, ref, policy.origin.path,
                f"{ref.kind} {ref.namespace}/{ref.name} selects no workload of the input in "
                f"{where} ({wanted}); nothing was written for it in {target}, and its source "
                "object is removed with its namespace's other source objects, so pods with "
                "these labels created later get the namespace default",
                "If such pods exist in the cluster, add their workloads to the input and re-run; "
                "otherwise delete the policy.")


def report_headless(graph: MeshGraph, losses: LossLog, namespaces: list[str],
                    target: str) -> None:
    """A loss per headless Service of an Istio input that Istio callers reach.

    Istio chooses mTLS per endpoint (the ``tlsMode=istio`` label) only on EDS clusters; a
    headless Service is an ORIGINAL_DST cluster, which gets one transport socket for every
    endpoint, Istio mTLS under auto-mTLS (istio/istio#19703, PR #20231, #23673; istio.io#8300).
    So callers still on Istio keep sending Istio mTLS to the pods once they moved, which the
    target's proxy cannot terminate. Reported with the calls; nothing the target writes fixes
    it, the callers' mesh must be told to send plaintext.
    """
    if graph.mesh != "istio":
        return
    moved = set(namespaces)
    for svc in graph.of(Service):
        if not svc.headless or svc.key.namespace not in moved:
            continue
        callers = sorted({f"{w.kind} {w.namespace}/{w.name}" for w in graph.of(Workload)
                          for host, _ in w.calls
                          if service_of_host(host, w.namespace) == svc.key
                          and w.namespace != svc.key.namespace})
        if not callers:
            continue
        host = f"{svc.key.name}.{svc.key.namespace}.svc.cluster.local"
        losses.report(
            "HEADLESS_MESH_TLS", Severity.MANUAL, "authz.allow", svc.origin.ref,
            svc.origin.path,
            f"Service {svc.key} is headless: Istio does not choose TLS per endpoint for it, so "
            f"its Istio callers ({'; '.join(callers)}) keep sending Istio mTLS to its pods "
            f"after they move to {target}, from the move of {svc.key.namespace} until each "
            "caller's own move; those calls fail",
            f"Before {svc.key.namespace} moves, apply a DestinationRule for host {host} with "
            "trafficPolicy.tls.mode: DISABLE in the Istio root namespace (the calls go "
            "plaintext, as every cross-mesh hop does), and delete it once the callers moved; "
            "or move the callers in the same step (--order).")
