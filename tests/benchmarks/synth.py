"""Synthetic Istio meshes for benchmarks: N namespaces with M services each.

Each service has a ServiceAccount, a Service, two Deployments (v1, v2), a DestinationRule
with subsets and outlier detection, a VirtualService with a header route and a weighted
route with retries and a timeout, and an AuthorizationPolicy naming its callers; each
namespace has a STRICT PeerAuthentication. Namespaces call the next ones (a layered
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
               "metadata": {"name": f"{name}-{version}", "namespace": ns,
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


def generate(namespaces: int, services: int) -> list[dict[str, Any]]:
    """All objects of a synthetic mesh."""
    objects: list[dict[str, Any]] = []
    names = [f"team-{i:04d}" for i in range(namespaces)]
    for i, ns in enumerate(names):
        objects.append({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": ns, "labels": {"istio-injection": "enabled"}}})
        objects.append({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                        "metadata": {"name": "default", "namespace": ns},
                        "spec": {"mtls": {"mode": "STRICT"}}})
        callees = [names[j] for j in (i + 1, i + 2) if j < namespaces]
        if i % 10 == 9:
            callees.append(names[i - 1])  # a call back: makes a cycle
        callers_ns = [names[j] for j in (i - 1, i - 2) if j >= 0]
        for s in range(services):
            svc = f"svc-{s:03d}"
            calls = [f"{svc}.{c}.svc.cluster.local" for c in callees]
            callers = [(c, svc) for c in callers_ns]
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
