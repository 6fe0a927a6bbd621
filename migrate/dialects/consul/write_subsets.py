"""Destination subsets -> ServiceResolver subsets, and the pod metadata their filters need.

A ServiceResolver subset selects instances with a filter over the Consul catalog
(``Service.Meta.version == "v1"``; mapping-consul-others.md section 1.2). Pod labels are not
copied into the catalog: consul-k8s registers service metadata from the pod annotation prefix
``consul.hashicorp.com/service-meta-`` (consul-k8s control-plane/connect-inject/constants,
``AnnotationMeta``; section 1.3). So each subset label becomes such an annotation on the pod
templates the subset selects, applied with the namespace's routing (the pods restart with the
move anyway). One Service per subset is not an option: consul-k8s registers a pod under a
single Kubernetes Service.

Consul meta keys allow ``[A-Za-z0-9_-]`` only (agent/structs ``metaKeyFormat``), so other
characters of a label key become ``_``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from migrate.dialects.base import Manifest
from migrate.dialects.consul.write_context import ConsulContext
from migrate.ir.graph import selects
from migrate.ir.model import DestinationPolicy, ServiceKey, Subset, Workload
from migrate.losses import ObjectRef, Severity

META_ANNOTATION = "consul.hashicorp.com/service-meta-"
_META_INVALID = re.compile(r"[^A-Za-z0-9_-]")
_SUBSET_INVALID = re.compile(r"[^a-z0-9-]+")
_TEMPLATE = {"CronJob": ("spec", "jobTemplate", "spec", "template"), "Pod": ()}
_API = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
        "ReplicaSet": "apps/v1", "Job": "batch/v1", "CronJob": "batch/v1", "Pod": "v1"}


def meta_key(label: str) -> str:
    """A Consul service-meta key for a pod label key (valid, and short enough to annotate).

    The annotation name after ``consul.hashicorp.com/`` may hold 63 characters, 13 of which
    are ``service-meta-``; Consul reserves keys starting with ``consul-``.
    """
    key = _META_INVALID.sub("_", label)
    if key.lower().startswith("consul-"):
        key = "label_" + key
    if len(key) > 50:
        key = f"{key[:41]}_{hashlib.sha256(label.encode()).hexdigest()[:8]}"
    return key


def subset_name(name: str) -> str:
    """A Consul subset name (lowercase letters, digits and dashes)."""
    return _SUBSET_INVALID.sub("-", name.lower()).strip("-")[:63].strip("-") or "subset"


def subset_filter(subset: Subset) -> str:
    """The catalog filter selecting a subset's instances (all of its labels must match)."""
    parts = []
    for key, value in subset.labels:
        quoted = value.replace("\\", "\\\\").replace('"', '\\"')
        parts.append(f'Service.Meta.{meta_key(key)} == "{quoted}"')
    return " and ".join(parts)


def subset_names(dp: DestinationPolicy) -> dict[str, str]:
    """Source subset name -> Consul subset name, unique within the resolver."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for subset in dp.subsets:
        base = name = subset_name(subset.name)
        n = 2
        while name in used:
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        out[subset.name] = name
    return out


def consul_subset(ctx: ConsulContext, service: ServiceKey, subset: str, ref: ObjectRef,
                  path: str, feature: str) -> str | None:
    """The Consul subset a route backend names, or None (reported) when none defines it."""
    dp = ctx.policies.get(service)
    names = subset_names(dp) if dp else {}
    if subset in names and ctx.migrated(service):
        return names[subset]
    why = ("no DestinationRule defines it" if subset not in names else
           "the Service's namespace is not moving to Consul in this plan")
    ctx.losses.report(
        "ROUTE_BACKEND_UNKNOWN", Severity.MANUAL, feature, ref, path,
        f"subset {subset!r} of {service} has no ServiceResolver: {why}; the backend was left out",
        "Add the DestinationRule (and its Service's namespace) to the input, or write the "
        "ServiceResolver subset by hand.")
    return None


def write_resolvers(ctx: ConsulContext) -> None:
    """One ServiceResolver per destination policy with subsets, and the pod annotations."""
    patches: dict[tuple[str, str, str], tuple[Workload, dict[str, str], set[ObjectRef]]] = {}
    for key in sorted(ctx.policies):
        dp = ctx.policies[key]
        if dp.subsets and ctx.migrated(key) and ctx.graph.service(key) is None:
            ctx.losses.report(
                "ROUTE_BACKEND_UNKNOWN", Severity.MANUAL, "destination.subsets", dp.origin.ref,
                f"{dp.origin.path}.subsets",
                f"subsets of {key} are not written: the Service is not in the input, so no "
                "ServiceResolver or pod annotation can be made for them",
                "Add the Service and its workloads to the input and re-run, or write the "
                "ServiceResolver subsets by hand.")
        if not dp.subsets or not ctx.migrated(key) or not ctx.owns(key):
            continue
        names = subset_names(dp)
        subsets: dict[str, Any] = {}
        for subset in dp.subsets:
            body: dict[str, Any] = {}
            if subset.labels:
                body["filter"] = subset_filter(subset)
            subsets[names[subset.name]] = body
            _annotate(ctx, dp, subset, patches)
        ctx.add(ctx.out.routing, "ServiceResolver", key.namespace, key.name,
                {"subsets": dict(sorted(subsets.items()))}, {dp.origin.ref})
        ctx.losses.report(
            "CONSUL_SUBSET_META", Severity.INFO, "destination.subsets", dp.origin.ref,
            f"{dp.origin.path}.subsets",
            f"subsets of {key} filter on Consul service metadata; the pod templates they select "
            f"get {META_ANNOTATION}<label> annotations (the pods restart)",
            "Keep the annotations in the workloads' own manifests so the next deploy keeps them.")
    for wkey in sorted(patches):
        w, annotations, sources = patches[wkey]
        ctx.out.add(ctx.out.routing, Manifest(_patch_body(w, annotations),
                                              tuple(sorted(sources)), patch=True))


def _annotate(ctx: ConsulContext, dp: DestinationPolicy, subset: Subset,
              patches: dict[tuple[str, str, str], tuple[Workload, dict[str, str],
                                                        set[ObjectRef]]]) -> None:
    assert dp.service is not None
    svc = ctx.graph.service(dp.service)
    selector = tuple(sorted({**dict(svc.selector if svc else ()), **dict(subset.labels)}.items()))
    picked = [w for w in ctx.graph.workloads_selected(dp.service.namespace, selector)
              if svc is not None and svc.selector and selects(svc.selector, w.pod_labels)]
    if not picked:
        ctx.losses.report(
            "CONSUL_SUBSET_META", Severity.DEGRADED, "destination.subsets", dp.origin.ref,
            subset.origin_path or f"{dp.origin.path}.subsets",
            f"no workload of the input carries the labels of subset {subset.name!r} of "
            f"{dp.service}, so no pod was annotated: the subset selects no instance",
            f"Annotate those pods with {META_ANNOTATION}<label>: <value> for each subset label.")
        return
    for w in picked:
        key = (w.namespace, w.kind, w.name)
        entry = patches.setdefault(key, (w, {}, set()))
        for label, value in subset.labels:
            entry[1][META_ANNOTATION + meta_key(label)] = value
        entry[2].update({dp.origin.ref, w.ref})


def _patch_body(w: Workload, annotations: dict[str, str]) -> dict[str, Any]:
    """A merge patch adding annotations to a workload's pod template (or to a bare Pod)."""
    inner: dict[str, Any] = {"metadata": {"annotations": dict(sorted(annotations.items()))}}
    levels = _TEMPLATE.get(w.kind, ("spec", "template"))
    body: dict[str, Any] = inner
    for level in reversed(levels):
        body = {level: body}
    meta = {"name": w.name, "namespace": w.namespace}
    if w.kind == "Pod":
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {**meta, "annotations": inner["metadata"]["annotations"]}}
    return {"apiVersion": _API.get(w.kind, "apps/v1"), "kind": w.kind, "metadata": meta, **body}
