"""Synthetic meshes for benchmarks: N namespaces with M services each, in Istio, Linkerd or
Consul terms (``generate(..., mesh=...)``; the Linkerd and Consul shapes live in
synth_linkerd.py and synth_consul.py).

Istio: each service has a ServiceAccount, a Service, two Deployments (v1, v2), a
DestinationRule with subsets and outlier detection, a VirtualService with a header route and
a weighted route with retries and a timeout, and an AuthorizationPolicy naming its callers;
each namespace has a STRICT PeerAuthentication. Namespaces call the next ones (a layered
dependency graph), and every tenth namespace calls back into its predecessor (cycles).
"""

from __future__ import annotations

import json
from typing import Any, Iterator


def _service(ns: str, name: str, callers: list[tuple[str, str]],
             calls: list[str]) -> Iterator[dict[str, Any]]:
    labels = {"app": name}
    yield {"apiVersion": "v1", "kind": "ServiceAccount",
           "metadata": {"name": name, "namespace": ns}}
    yield {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
           "spec": {"selector": labels, "ports": [{"name": "http", "port": 8080}]}}
    for version in ("v1", "v2"):
        yield {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": suffixed(name, version), "namespace": ns,
                            "labels": {**labels, "version": version}},
               "spec": {"replicas": 2, "selector": {"matchLabels": {**labels, "version": version}},
                        "template": {"metadata": {"labels": {**labels, "version": version}},
                                     "spec": {"serviceAccountName": name, "containers": [{
                                         "name": "app", "image": f"registry.local/{name}:1.0",
                                         "ports": [{"containerPort": 8080}],
                                         "readinessProbe": {"httpGet": {"path": "/ready",
                                                                        "port": 8080}},
                                         "env": [{"name": f"DEP_{i}", "value": f"http://{c}:8080"}
                                                 for i, c in enumerate(calls)]}]}}}}
    yield {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"host": name,
                    "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": 5,
                                                           "baseEjectionTime": "30s"}},
                    "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                {"name": "v2", "labels": {"version": "v2"}}]}}
    yield {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"hosts": [name], "http": [
               {"match": [{"headers": {"x-canary": {"exact": "true"}}}],
                "route": [{"destination": {"host": name, "subset": "v2"}}]},
               {"timeout": "5s", "retries": {"attempts": 2, "retryOn": "5xx"},
                "route": [{"destination": {"host": name, "subset": "v1"}, "weight": 90},
                          {"destination": {"host": name, "subset": "v2"}, "weight": 10}]}]}}
    if callers:
        yield {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
               "metadata": {"name": name, "namespace": ns},
               "spec": {"selector": {"matchLabels": labels}, "rules": [
                   {"from": [{"source": {"principals": [
                       f"cluster.local/ns/{cns}/sa/{csvc}" for cns, csvc in callers]}}],
                    "to": [{"operation": {"methods": ["GET", "POST"]}}]}]}}


def topology(namespaces: int, ns_prefix: str = "team-") -> list[tuple[str, list[str], list[str]]]:
    """(namespace, callee namespaces, caller namespaces) of the layered graph with cycles.

    Every namespace calls the next two; every tenth one also calls back into its predecessor.
    """
    names = [f"{ns_prefix}{i:04d}" for i in range(namespaces)]
    out = []
    for i, ns in enumerate(names):
        callees = [names[j] for j in (i + 1, i + 2) if j < namespaces]
        if i % 10 == 9:
            callees.append(names[i - 1])  # a call back: makes a cycle
        callers = [names[j] for j in (i - 1, i - 2) if j >= 0]
        if i % 10 == 8 and i + 1 < namespaces:
            callers.append(names[i + 1])  # the other end of that call back
        out.append((ns, callees, callers))
    return out


def service_name(svc_prefix: str, index: int, ns: str, unique: bool) -> str:
    """A service's name: ``<prefix><index>``, plus its namespace's number when ``unique``.

    Consul CE has one service namespace, so same-named Services of different namespaces merge
    into one Consul service; ``unique`` names avoid that when Consul is the target.
    """
    return f"{svc_prefix}{index:03d}-{ns[-4:]}" if unique else f"{svc_prefix}{index:03d}"


def generate(namespaces: int, services: int, mesh: str = "istio", ns_prefix: str = "team-",
             svc_prefix: str = "svc-", unique: bool = False) -> list[dict[str, Any]]:
    """All objects of a synthetic mesh in ``mesh``'s terms (istio, linkerd or consul).

    ``ns_prefix``/``svc_prefix`` set the names (``<prefix>0001``, ``<prefix>000``); long
    prefixes give 63-character names for the generated-name limit tests. ``unique`` makes
    service names unique across namespaces (always so for Consul, see :func:`service_name`).
    """
    if mesh == "linkerd":
        from tests.benchmarks.synth_linkerd import generate_linkerd

        return generate_linkerd(namespaces, services, ns_prefix, svc_prefix, unique)
    if mesh == "consul":
        from tests.benchmarks.synth_consul import generate_consul

        return generate_consul(namespaces, services, ns_prefix, svc_prefix)
    if mesh != "istio":
        raise ValueError(f"no synthetic generator for {mesh!r}")
    objects: list[dict[str, Any]] = []
    for ns, callees, callers_ns in topology(namespaces, ns_prefix):
        objects.append({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": ns, "labels": {"istio-injection": "enabled"}}})
        objects.append({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                        "metadata": {"name": "default", "namespace": ns},
                        "spec": {"mtls": {"mode": "STRICT"}}})
        for s in range(services):
            svc = service_name(svc_prefix, s, ns, unique)
            calls = [f"{service_name(svc_prefix, s, c, unique)}.{c}.svc.cluster.local"
                     for c in callees]
            callers = [(c, service_name(svc_prefix, s, c, unique)) for c in callers_ns]
            objects.extend(_service(ns, svc, callers, calls))
    return objects


def as_yaml(objects: list[dict[str, Any]]) -> str:
    """A multi-document YAML dump."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump_all(objects, Dumper=dumper, sort_keys=False)


def as_json(objects: list[dict[str, Any]]) -> str:
    """A ``kubectl get -o json`` style List."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})


def workloads(ns: str, name: str, calls: list[str], pod_annotations: dict[str, dict[str, str]],
              services: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """A service's ServiceAccount, Service and v1/v2 Deployments (any mesh).

    ``pod_annotations`` maps a version to its pod template annotations; ``services`` maps a
    version to the name of an extra per-version Service (Linkerd's backends).
    """
    labels = {"app": name}
    yield {"apiVersion": "v1", "kind": "ServiceAccount",
           "metadata": {"name": name, "namespace": ns}}
    yield {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": ns, "labels": labels},
           "spec": {"selector": labels, "ports": [{"name": "http", "port": 8080,
                                                   "targetPort": 8080}]}}
    for version, backend in sorted((services or {}).items()):
        selector = {**labels, "version": version}
        yield {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": backend, "namespace": ns, "labels": selector},
               "spec": {"selector": selector, "ports": [{"name": "http", "port": 8080,
                                                         "targetPort": 8080}]}}
    for version in ("v1", "v2"):
        pod_labels = {**labels, "version": version}
        template: dict[str, Any] = {"labels": pod_labels}
        if pod_annotations.get(version):
            template["annotations"] = dict(pod_annotations[version])
        yield {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": suffixed(name, version), "namespace": ns,
                            "labels": pod_labels},
               "spec": {"replicas": 2, "selector": {"matchLabels": pod_labels},
                        "template": {"metadata": template,
                                     "spec": {"serviceAccountName": name, "containers": [{
                                         "name": "app", "image": f"registry.local/{name}:1.0",
                                         "ports": [{"name": "http", "containerPort": 8080}],
                                         "readinessProbe": {"httpGet": {"path": "/ready",
                                                                        "port": 8080}},
                                         "env": [{"name": f"DEP_{i}", "value": f"http://{c}:8080"}
                                                 for i, c in enumerate(calls)]}]}}}}


def suffixed(name: str, suffix: str) -> str:
    """``name-suffix``, cut in the middle to a 63-character DNS label when longer, keeping
    the name's last nine characters (its numbers) so that the result stays unique."""
    full = f"{name}-{suffix}"
    if len(full) <= 63:
        return full
    return f"{name[: 62 - len(suffix) - 9]}{name[-9:]}-{suffix}"
