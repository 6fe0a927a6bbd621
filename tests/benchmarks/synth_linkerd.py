"""Synthetic Linkerd meshes: the same services, versions and call graph as synth.py's Istio
ones, in Linkerd's terms.

Per service: ServiceAccount, Service, per-version backend Services and v1/v2 Deployments; a
Gateway API HTTPRoute on the Service with a header route to v2 and a 90/10 weighted route
with a request timeout and retry annotations (Linkerd 2.16+); a Server on the pods' port, a
MeshTLSAuthentication naming the callers' identities and an AuthorizationPolicy binding them.
Each namespace is injected and defaults to ``all-authenticated`` (mTLS required).
"""

from __future__ import annotations

from typing import Any, Iterator

from tests.benchmarks.synth import service_name, suffixed, topology, workloads

TRUST = "cluster.local"


def _identity(ns: str, sa: str) -> str:
    return f"{sa}.{ns}.serviceaccount.identity.linkerd.{TRUST}"


def _service(ns: str, name: str, callers: list[tuple[str, str]],
             calls: list[str]) -> Iterator[dict[str, Any]]:
    backends = {v: suffixed(name, v) for v in ("v1", "v2")}
    yield from workloads(ns, name, calls, {}, backends)
    port = {"name": name, "port": 8080}
    yield {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": name, "namespace": ns,
                        "annotations": {"retry.linkerd.io/http": "5xx",
                                        "retry.linkerd.io/limit": "2"}},
           "spec": {"parentRefs": [{"group": "core", "kind": "Service", **port}], "rules": [
               {"matches": [{"headers": [{"type": "Exact", "name": "x-canary",
                                          "value": "true"}]}],
                "backendRefs": [{"name": backends["v2"], "port": 8080}]},
               {"timeouts": {"request": "5s"},
                "backendRefs": [{"name": backends["v1"], "port": 8080, "weight": 90},
                                {"name": backends["v2"], "port": 8080, "weight": 10}]}]}}
    if not callers:
        return
    server = suffixed(name, "http")
    yield {"apiVersion": "policy.linkerd.io/v1beta3", "kind": "Server",
           "metadata": {"name": server, "namespace": ns},
           "spec": {"podSelector": {"matchLabels": {"app": name}}, "port": "http",
                    "proxyProtocol": "HTTP/1"}}
    yield {"apiVersion": "policy.linkerd.io/v1alpha1", "kind": "MeshTLSAuthentication",
           "metadata": {"name": suffixed(name, "callers"), "namespace": ns},
           "spec": {"identities": [_identity(cns, csa) for cns, csa in callers]}}
    yield {"apiVersion": "policy.linkerd.io/v1alpha1", "kind": "AuthorizationPolicy",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"targetRef": {"group": "policy.linkerd.io", "kind": "Server",
                                  "name": server},
                    "requiredAuthenticationRefs": [{
                        "group": "policy.linkerd.io", "kind": "MeshTLSAuthentication",
                        "name": suffixed(name, "callers")}]}}


def generate_linkerd(namespaces: int, services: int, ns_prefix: str = "team-",
                     svc_prefix: str = "svc-", unique: bool = False) -> list[dict[str, Any]]:
    """All objects of a synthetic Linkerd mesh."""
    objects: list[dict[str, Any]] = []
    for ns, callees, callers_ns in topology(namespaces, ns_prefix):
        objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": ns, "annotations": {
                "linkerd.io/inject": "enabled",
                "config.linkerd.io/default-inbound-policy": "all-authenticated"}}})
        for s in range(services):
            svc = service_name(svc_prefix, s, ns, unique)
            calls = [f"{service_name(svc_prefix, s, c, unique)}.{c}.svc.cluster.local"
                     for c in callees]
            callers = [(c, service_name(svc_prefix, s, c, unique)) for c in callers_ns]
            objects.extend(_service(ns, svc, callers, calls))
    return objects
