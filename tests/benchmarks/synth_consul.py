"""Synthetic Consul meshes: the same services, versions and call graph as synth.py's Istio
ones, in consul-k8s terms.

Consul CE names services without their Kubernetes namespace, so every service name carries
its namespace's number to stay unique. Per service: ServiceAccount, Service and v1/v2
Deployments (``connect-inject`` and ``service-meta-version`` pod annotations); ServiceDefaults
(``http``); a ServiceResolver with v1/v2 subsets by ``Service.Meta.version``; a
ServiceSplitter 90/10; a ServiceRouter with a header route to v2 and a default route with a
request timeout and retries; ServiceIntentions allowing its callers, then denying ``*``.
Mesh-wide: ProxyDefaults ``global`` and Mesh ``mesh`` (transparent proxy, mesh destinations
only) in the ``consul`` namespace; mTLS is always on in Consul.
"""

from __future__ import annotations

from typing import Any, Iterator

from tests.benchmarks.synth import service_name, topology, workloads

CONSUL_NS = "consul"
API = "consul.hashicorp.com/v1alpha1"


def _entry(kind: str, ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name, "namespace": ns},
            "spec": spec}


def _service(ns: str, name: str, callers: list[str], calls: list[str]) -> Iterator[dict[str, Any]]:
    inject = {v: {"consul.hashicorp.com/connect-inject": "true",
                  "consul.hashicorp.com/service-meta-version": v} for v in ("v1", "v2")}
    yield from workloads(ns, name, calls, inject)
    yield _entry("ServiceDefaults", ns, name, {"protocol": "http"})
    yield _entry("ServiceResolver", ns, name, {
        "defaultSubset": "v1",
        "subsets": {v: {"filter": f"Service.Meta.version == {v}"} for v in ("v1", "v2")}})
    yield _entry("ServiceSplitter", ns, name, {"splits": [
        {"serviceSubset": "v1", "weight": 90}, {"serviceSubset": "v2", "weight": 10}]})
    yield _entry("ServiceRouter", ns, name, {"routes": [
        {"match": {"http": {"header": [{"name": "x-canary", "exact": "true"}]}},
         "destination": {"serviceSubset": "v2"}},
        {"match": {"http": {"pathPrefix": "/"}},
         "destination": {"requestTimeout": "5s", "numRetries": 2,
                         "retryOnStatusCodes": [503]}}]})
    if callers:
        yield _entry("ServiceIntentions", ns, name, {
            "destination": {"name": name},
            "sources": [{"name": c, "action": "allow"} for c in callers]
            + [{"name": "*", "action": "deny"}]})


def generate_consul(namespaces: int, services: int, ns_prefix: str = "team-",
                    svc_prefix: str = "svc-") -> list[dict[str, Any]]:
    """All objects of a synthetic Consul mesh."""
    objects: list[dict[str, Any]] = [
        _entry("ProxyDefaults", CONSUL_NS, "global", {"config": {"protocol": "http"}}),
        _entry("Mesh", CONSUL_NS, "mesh", {"transparentProxy": {"meshDestinationsOnly": True}}),
    ]

    def name(ns: str, s: int) -> str:
        # Consul CE's service names are cluster-wide: always unique.
        return service_name(svc_prefix, s, ns, unique=True)

    for ns, callees, callers_ns in topology(namespaces, ns_prefix):
        objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for s in range(services):
            calls = [f"{name(c, s)}.{c}.svc.cluster.local" for c in callees]
            objects.extend(_service(ns, name(ns, s), [name(c, s) for c in callers_ns], calls))
    return objects
