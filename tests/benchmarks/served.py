"""Objects as ``kubectl get -o yaml|json`` returns them from a cluster, not as they were applied.

The API server adds to every object what it owns and what it defaults, and controllers add
what they observe (kubectl.docs.kubernetes.io, guides/resource_printing/raw: "fields owned by
the apiserver", "fields defaulted by the apiserver", "fields set by Controllers"). A dump taken
from a cluster, the input meshmigrate is pointed at, carries all of it; the generator's
objects (synth.py) are the applied form. :func:`as_served` adds, per object:

- ``metadata``: ``uid``, ``resourceVersion``, ``creationTimestamp``, ``generation`` (kinds with
  a spec the server versions), and ``kubectl.kubernetes.io/last-applied-configuration``, the
  applied object as JSON, which ``kubectl apply`` (client-side, also Argo CD's default) keeps.
  ``managedFields`` is left out: kubectl hides it from ``get`` output since 1.21
  (kubernetes/kubernetes#96878).
- Namespace: the ``kubernetes.io/metadata.name`` label, ``spec.finalizers``, ``status.phase``.
- Service: ``clusterIP(s)``, IP families, ``sessionAffinity``, ``type``,
  ``internalTrafficPolicy``, port protocols, ``status.loadBalancer``.
- Deployment: the revision annotation, the defaulted spec (``progressDeadlineSeconds``,
  ``revisionHistoryLimit``, ``strategy``, the pod template's ``dnsPolicy``,
  ``restartPolicy``, ``schedulerName``, ``securityContext``,
  ``terminationGracePeriodSeconds``, each container's ``imagePullPolicy``, ``resources``,
  termination message settings and port protocols) and ``status`` with its two conditions.

The defaults are the API server's own: kubernetes pkg/apis/apps/v1/defaults.go
(``SetDefaults_Deployment``: 25% surge and unavailability, ``revisionHistoryLimit`` 10,
``progressDeadlineSeconds`` 600) and pkg/apis/core/v1/defaults.go (a Service port's
``targetPort`` and ``protocol``, ``sessionAffinity``, the pod and container defaults).

Mesh custom resources get only the metadata: their status is written by the mesh's
controller only where that is enabled.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

# Kinds whose metadata.generation the API server keeps (those with a spec it versions).
_GENERATION_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
_CREATED = "2026-11-30T09:12:45Z"
_READY = "2026-11-30T09:12:50Z"


def as_served(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``objects`` as a cluster serves them back (see the module docstring)."""
    return [_served(obj, i) for i, obj in enumerate(objects)]


def as_served_json(objects: list[dict[str, Any]]) -> str:
    """``kubectl get -o json`` output: a List, indented by four spaces as kubectl prints
    (kubernetes pkg/printers/json.go, ``JSONPrinter``: ``json.MarshalIndent(obj, "", "    ")``)."""
    return json.dumps({"apiVersion": "v1", "items": objects, "kind": "List",
                       "metadata": {"resourceVersion": ""}}, indent=4) + "\n"


def _served(applied: dict[str, Any], index: int) -> dict[str, Any]:
    obj = copy.deepcopy(applied)
    meta = obj.setdefault("metadata", {})
    kind = obj["kind"]
    digest = hashlib.sha256(f"{kind}/{meta.get('namespace', '')}/{meta['name']}".encode()) \
        .hexdigest()
    meta["uid"] = "-".join((digest[:8], digest[8:12], digest[12:16], digest[16:20],
                            digest[20:32]))
    meta["resourceVersion"] = str(100000 + index)
    meta["creationTimestamp"] = _CREATED
    if kind in _GENERATION_KINDS or "." in obj["apiVersion"].split("/")[0]:
        meta["generation"] = 1  # workloads and custom resources
    annotations = meta.setdefault("annotations", {})
    annotations["kubectl.kubernetes.io/last-applied-configuration"] = \
        json.dumps(applied, separators=(",", ":"), sort_keys=True) + "\n"
    if kind == "Namespace":
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
    elif kind == "Service":
        _service(obj, index)
    elif kind == "Deployment":
        annotations["deployment.kubernetes.io/revision"] = "1"
        _deployment(obj)
    return obj


def _service(obj: dict[str, Any], index: int) -> None:
    spec = obj["spec"]
    ip = f"10.96.{index // 250 % 250}.{index % 250 + 1}"
    spec.update({"clusterIP": ip, "clusterIPs": [ip], "internalTrafficPolicy": "Cluster",
                 "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                 "sessionAffinity": "None", "type": spec.get("type", "ClusterIP")})
    for port in spec.get("ports", []):
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port["port"])
    obj["status"] = {"loadBalancer": {}}


def _deployment(obj: dict[str, Any]) -> None:
    spec = obj["spec"]
    spec.setdefault("replicas", 1)
    spec.update({"progressDeadlineSeconds": 600, "revisionHistoryLimit": 10,
                 "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                              "type": "RollingUpdate"}})
    template = spec["template"]
    template.setdefault("metadata", {})["creationTimestamp"] = None
    pod = template["spec"]
    pod.update({"dnsPolicy": "ClusterFirst", "restartPolicy": "Always",
                "schedulerName": "default-scheduler", "securityContext": {},
                "terminationGracePeriodSeconds": 30})
    for container in pod.get("containers", []):
        container.update({"imagePullPolicy": "IfNotPresent", "resources": {},
                          "terminationMessagePath": "/dev/termination-log",
                          "terminationMessagePolicy": "File"})
        for port in container.get("ports", []):
            port.setdefault("protocol", "TCP")
    replicas = spec["replicas"]
    name = obj["metadata"]["name"]
    obj["status"] = {
        "availableReplicas": replicas,
        "conditions": [
            _condition("Available", "MinimumReplicasAvailable",
                       "Deployment has minimum availability."),
            _condition("Progressing", "NewReplicaSetAvailable",
                       f'ReplicaSet "{name}-5d8f7c9b6d" has successfully progressed.'),
        ],
        "observedGeneration": 1, "readyReplicas": replicas, "replicas": replicas,
        "updatedReplicas": replicas,
    }


def _condition(kind: str, reason: str, message: str) -> dict[str, str]:
    return {"lastTransitionTime": _READY, "lastUpdateTime": _READY, "message": message,
            "reason": reason, "status": "True", "type": kind}


def as_served_yaml(objects: list[dict[str, Any]]) -> str:
    """``kubectl get -o yaml`` output: one List document, keys in alphabetical order as
    kubectl writes them (its ``YAMLPrinter`` converts the JSON form through a map with
    ghodss/yaml, kubernetes pkg/printers/json.go)."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump({"apiVersion": "v1", "items": objects, "kind": "List",
                      "metadata": {"resourceVersion": ""}}, Dumper=dumper, sort_keys=True)
