"""A digest of the input objects a plan was made from, recorded in plan.json so that
``meshmigrate verify`` refuses to compare a plan with another input.

The digest covers what a plan reads, and only that: not document order, file layout, key
order, the format (YAML or JSON), what the API server keeps for its own bookkeeping
(``status``, ``resourceVersion``, ``managedFields``...: the fields the readers ignore,
``fields.NOISE``) or the defaults it fills in. The source mesh's own objects (and any other
kind) count whole; the Kubernetes kinds the readers take mesh facts from (Namespace,
Service, ServiceAccount, workloads) count by those facts: labels and annotations, a Service's
selector and ports, a pod template's labels, annotations, service account, container ports
and environment. So the applied files, a ``meshmigrate export`` and the live cluster give one
digest, and a changed weight, selector, label or policy gives another.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable

PREFIX = "sha256:"
_BOOKKEEPING = frozenset({"uid", "resourceVersion", "generation", "creationTimestamp",
                          "managedFields", "selfLink", "ownerReferences", "finalizers",
                          "deletionTimestamp", "deletionGracePeriodSeconds", "generateName"})
_SERVER_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration",
                                 "deployment.kubernetes.io/revision"})
_SERVER_LABELS = frozenset({"kubernetes.io/metadata.name"})
_TEMPLATE = {"Deployment": ("spec", "template"), "StatefulSet": ("spec", "template"),
             "DaemonSet": ("spec", "template"), "ReplicaSet": ("spec", "template"),
             "Job": ("spec", "template"), "CronJob": ("spec", "jobTemplate", "spec", "template"),
             "Pod": ()}


def input_digest(bodies: Iterable[dict[str, Any]]) -> str:
    """``sha256:<hex>`` over the sorted digests of each object's canonical JSON."""
    each = sorted(hashlib.sha256(json.dumps(_configuration(body), sort_keys=True,
                                            separators=(",", ":"), default=str).encode()
                                 ).digest()
                  for body in bodies)
    return PREFIX + hashlib.sha256(b"".join(each)).hexdigest()


def _configuration(body: dict[str, Any]) -> dict[str, Any]:
    """What a plan reads of an object."""
    api, kind = str(body.get("apiVersion", "")), str(body.get("kind", ""))
    head = {"apiVersion": api, "kind": kind, "metadata": _metadata(body.get("metadata"))}
    core = api in ("v1", "apps/v1", "batch/v1")
    if core and kind in ("Namespace", "ServiceAccount"):
        return head
    if core and kind == "Service":
        spec = _mapping(body.get("spec"))
        return {**head, "selector": spec.get("selector") or {},
                "ports": [_port(p, service=True) for p in _list(spec.get("ports"))]}
    if core and kind in _TEMPLATE:
        template: Any = body
        for key in _TEMPLATE[kind]:
            template = _mapping(template).get(key)
        template = _mapping(template)
        pod = _mapping(template.get("spec"))
        return {**head, "template": _metadata(template.get("metadata")),
                "serviceAccountName": pod.get("serviceAccountName") or "default",
                "containers": [{"name": c.get("name"), "env": c.get("env") or [],
                                "ports": [_port(p) for p in _list(c.get("ports"))]}
                               for c in map(_mapping, _list(pod.get("containers")))]}
    return {k: v for k, v in body.items() if k != "status"} | head


def _metadata(meta: Any) -> dict[str, Any]:
    """Metadata without bookkeeping, server-added keys or empty maps."""
    meta = {k: v for k, v in _mapping(meta).items() if k not in _BOOKKEEPING}
    for key, added in (("annotations", _SERVER_ANNOTATIONS), ("labels", _SERVER_LABELS)):
        if isinstance(meta.get(key), dict):
            meta[key] = {k: v for k, v in meta[key].items() if k not in added}
    return {k: v for k, v in meta.items() if v not in ({}, None)}


def _port(port: Any, service: bool = False) -> dict[str, Any]:
    """A port with the API server's defaults (protocol TCP; a Service's targetPort is its
    port) left out, so a served object and the applied one agree."""
    port = dict(_mapping(port))
    if port.get("protocol") == "TCP":
        del port["protocol"]
    if service:
        port = {k: v for k, v in port.items() if k in ("name", "port", "targetPort",
                                                        "protocol", "appProtocol")}
        if port.get("targetPort") == port.get("port"):
            port.pop("targetPort", None)
    return port


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
