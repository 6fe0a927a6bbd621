"""Core Kubernetes kinds every mesh reader needs: Namespace, Service, ServiceAccount, the
pod-template owners (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod) and
PodDisruptionBudgets (what a restart of those owners meets: :mod:`kube_rollout`).

Only mesh-relevant fields are read. The dialect decides what labels and annotations mean
for injection (``namespace_injection`` / ``workload_injection``) and which annotation
prefixes belong to it (``read_mesh_annotations``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from migrate.dialects.fields import Fields
from migrate.dialects.kube_rollout import read_disruption_budget, rollout_of
from migrate.ir.graph import MeshGraph, env_calls
from migrate.ir.model import Namespace, Probe, Service, ServiceKey, ServicePort, Workload, labels

if TYPE_CHECKING:
    from migrate.dialects.base import Reader

# Workloads are read at the versions older dumps still hold, as the workloads they are: the
# API server served Deployments, DaemonSets and ReplicaSets at extensions/v1beta1 until 1.16,
# apps/v1beta1-2 until 1.16 and CronJobs at batch/v1beta1 until 1.25 (Kubernetes deprecated
# API migration guide, https://kubernetes.io/docs/reference/using-api/deprecation-guide/).
# The pod template's shape is the same at every one of them; a restart names the kind only.
VERSIONS = {"": frozenset({"v1"}), "apps": frozenset({"v1", "v1beta1", "v1beta2"}),
            "batch": frozenset({"v1", "v1beta1"}), "extensions": frozenset({"v1beta1"}),
            "policy": frozenset({"v1", "v1beta1"})}

POD_TEMPLATE = {
    "Deployment": "spec.template", "StatefulSet": "spec.template", "DaemonSet": "spec.template",
    "ReplicaSet": "spec.template", "Job": "spec.template",
    "CronJob": "spec.jobTemplate.spec.template", "Pod": "",
}


def read_namespace(reader: Reader, f: Fields, graph: MeshGraph) -> None:
    """A Namespace and its injection state."""
    lab = f.mapping("metadata.labels")
    ann = f.mapping("metadata.annotations")
    injection = reader.namespace_injection(f, lab, ann)  # type: ignore[attr-defined]
    graph.add(Namespace(f.ref.name, labels(lab), labels(ann), injection, f.origin("metadata")))
    reader.core_extras(f, graph)


def read_service(reader: Reader, f: Fields, graph: MeshGraph) -> None:
    """A Service: ports (with protocol hints) and selector."""
    ports = []
    for i, p in enumerate(f.list("spec.ports")):
        if not isinstance(p, dict) or not isinstance(p.get("port"), int):
            f.invalid(f"spec.ports[{i}]", "a Service port needs a numeric port")
            continue
        target = p.get("targetPort")
        ports.append(ServicePort(
            port=p["port"], name=str(p.get("name") or ""),
            target_port=target if isinstance(target, (int, str)) else None,
            protocol=str(p.get("protocol") or "TCP"),
            app_protocol=str(p.get("appProtocol") or "")))
    spec = f.mapping("spec")
    selector = spec.get("selector") if isinstance(spec.get("selector"), dict) else {}
    graph.add(Service(
        key=ServiceKey(f.ref.namespace, f.ref.name), ports=tuple(ports), selector=labels(selector),
        labels=labels(f.mapping("metadata.labels")),
        headless=spec.get("clusterIP") == "None", origin=f.origin("spec"),
        raw_spec_type=str(spec.get("type") or "ClusterIP")))
    reader.core_extras(f, graph)


def read_service_account(reader: Reader, f: Fields, graph: MeshGraph) -> None:
    """ServiceAccounts are identities; workloads name them, so nothing is stored."""


def read_workload(reader: Reader, f: Fields, graph: MeshGraph) -> None:
    """A pod-template owner: labels, annotations, service account, ports, probes, env calls."""
    owners = f.peek("metadata.ownerReferences") or []
    if f.ref.kind in ("Pod", "ReplicaSet", "Job") and any(
            isinstance(o, dict) and o.get("controller") for o in owners):
        return  # its owner (Deployment, CronJob, ...) carries the template we read
    base = POD_TEMPLATE[f.ref.kind]
    pre = f"{base}." if base else ""
    pod_labels = f.mapping(f"{pre}metadata.labels")
    pod_ann = f.mapping(f"{pre}metadata.annotations")
    spec = f.mapping(f"{pre}spec")
    ports: set[tuple[str, int]] = set()
    probes: set[Probe] = set()
    env: list[tuple[str, str]] = []
    for kind in ("containers", "initContainers"):
        containers = spec.get(kind) if isinstance(spec.get(kind), list) else []
        for ci, c in enumerate(containers):
            if not isinstance(c, dict):
                continue
            # fact: istio.native-sidecar
            if kind == "initContainers" and c.get("restartPolicy") != "Always":
                continue
            for p in c.get("ports") if isinstance(c.get("ports"), list) else []:
                if isinstance(p, dict) and isinstance(p.get("containerPort"), int) and \
                        str(p.get("protocol") or "TCP") == "TCP":
                    ports.add((str(p.get("name") or ""), p["containerPort"]))
            for probe_kind in ("readinessProbe", "livenessProbe", "startupProbe"):
                http = (c.get(probe_kind) or {}).get("httpGet") if isinstance(
                    c.get(probe_kind), dict) else None
                if isinstance(http, dict) and http.get("port") is not None:
                    probes.add(Probe(str(http.get("path") or "/"), http["port"]))
            for ei, e in enumerate(c.get("env") if isinstance(c.get("env"), list) else []):
                if isinstance(e, dict) and isinstance(e.get("value"), str):
                    env.append((f"{pre}spec.{kind}[{ci}].env[{ei}]", e["value"]))
    injection = reader.workload_injection(f, pod_labels, pod_ann)  # type: ignore[attr-defined]
    graph.add(Workload(
        kind=f.ref.kind, namespace=f.ref.namespace, name=f.ref.name,
        service_account=str(spec.get("serviceAccountName") or spec.get("serviceAccount")
                            or "default"),
        pod_labels=labels(pod_labels), pod_annotations=labels(pod_ann),
        ports=tuple(sorted(ports, key=lambda p: (p[1], p[0]))),
        probes=tuple(sorted(probes, key=lambda p: (p.path, str(p.port)))),
        injection=injection, calls=env_calls(env), origin=f.origin(base or "spec"),
        rollout=rollout_of(f)))
    reader.core_extras(f, graph)


HANDLERS = {
    ("", "Namespace"): read_namespace,
    ("", "Service"): read_service,
    ("", "ServiceAccount"): read_service_account,
    ("", "Pod"): read_workload,
    ("apps", "Deployment"): read_workload,
    ("apps", "StatefulSet"): read_workload,
    ("apps", "DaemonSet"): read_workload,
    ("apps", "ReplicaSet"): read_workload,
    ("extensions", "Deployment"): read_workload,
    ("extensions", "DaemonSet"): read_workload,
    ("extensions", "ReplicaSet"): read_workload,
    ("batch", "Job"): read_workload,
    ("batch", "CronJob"): read_workload,
    ("policy", "PodDisruptionBudget"): read_disruption_budget,
}
