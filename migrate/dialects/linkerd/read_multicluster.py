"""Linkerd's multicluster extension in the input: Links, mirrored and federated Services, and
the TrafficSplits linkerd-failover steers.

A plan covers one cluster. What connects it to others is reported (feature ``multicluster``,
loss ``MULTICLUSTER``, listed in the runbook's "Other clusters" section) and never planned as
if it were local:

- a ``Link`` (``multicluster.linkerd.io``) tells this cluster's service mirror to copy the
  exported Services of another cluster;
- a mirrored Service (label ``mirror.linkerd.io/mirrored-service``, linkerd2
  ``pkg/k8s/labels.go`` ``MirroredResourceLabel``; its cluster in ``mirror.linkerd.io/cluster-name``)
  has no selector: its endpoints are the other cluster's gateway or pods, written by the
  service mirror. A federated Service (``<name>-federated``, carrying the same label) unites
  one Service's endpoints across linked clusters. Neither is a Service of this cluster's
  workloads, so neither is read as one (no routes, policy or moves are planned for them);
- a Service labelled ``mirror.linkerd.io/exported`` stays a Service of this cluster, but other
  clusters call it through this cluster's multicluster gateway: reported too;
- a TrafficSplit that linkerd-failover controls (label ``failover.linkerd.io/controlled-by``,
  annotation ``failover.linkerd.io/primary-service``) has weights the operator rewrites at run
  time from the backends' readiness; copied as a static split it would pin traffic to what
  the dump caught.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from migrate import facts
from migrate.dialects.fields import Fields
from migrate.ir.graph import MeshGraph
from migrate.ir.model import FeatureUse, Opaque, Origin
from migrate.sources.model import RawObject

if TYPE_CHECKING:
    from migrate.dialects.linkerd.reader import LinkerdReader

GROUP = "multicluster.linkerd.io"
"""The multicluster extension's API group (Link)."""


def _labels(meta: Any, key: str) -> dict[str, str]:
    value = meta.get(key) if isinstance(meta, dict) else None
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def mirrored_detail(raw: RawObject) -> tuple[str, str] | None:
    """(field path, detail) when a Service is a mirror or a federated Service; else None."""
    # fact: linkerd.multicluster-mirrored-service
    if raw.kind != "Service" or raw.group:
        return None
    meta = raw.body.get("metadata")
    labels = _labels(meta, "labels")
    mirrored = facts.value("linkerd.multicluster-mirrored-service", "mirrored_label")
    if mirrored not in labels:
        return None
    path = f"metadata.labels.{mirrored}"
    annotations = _labels(meta, "annotations")
    federated = any(k.startswith(facts.value("linkerd.multicluster-mirrored-service",
                                             "federated_prefix")) for k in annotations)
    if federated or raw.ref.name.endswith("-federated"):
        return path, ("federated Service: one Service's endpoints across the linked "
                      "clusters; not planned as a local Service")
    cluster = labels.get(facts.value("linkerd.multicluster-mirrored-service", "cluster_label"),
                         "another cluster")
    return path, (f"mirror of a Service of cluster {cluster}, endpoints written by "
                  "Linkerd's service mirror; not planned as a local Service")


def split_mirrored(objects: list[RawObject]) -> tuple[list[RawObject], list[FeatureUse]]:
    """The objects without mirrored and federated Services, and a ``multicluster`` use for
    each one left out."""
    kept, uses = [], []
    for raw in objects:
        found = mirrored_detail(raw)
        if found is None:
            kept.append(raw)
        else:
            uses.append(FeatureUse("multicluster", Origin(raw.ref, found[0]), found[1]))
    return kept, uses


def exported_detail(f: Fields) -> tuple[str, str] | None:
    """(field path, detail) when a Service of this cluster is exported to linked clusters."""
    # fact: linkerd.multicluster-mirrored-service
    label = facts.value("linkerd.multicluster-mirrored-service", "exported_label")
    value = _labels(f.peek("metadata"), "labels").get(label)
    if value is None:
        return None
    return (f"metadata.labels.{label}",
            f"exported ({label}={value}): linked clusters call it through this "
            "cluster's Linkerd gateway, plaintext to it once it has moved")


def read_link(reader: LinkerdReader, f: Fields, graph: MeshGraph) -> None:
    """A Link: this cluster mirrors another cluster's exported Services."""
    target = f.peek("spec.targetClusterName")
    f.use("multicluster", "spec", f"Link to cluster {target or f.ref.name}: this cluster "
          "mirrors its exported Services")
    graph.add(Opaque(f.ref.kind, f.ref.namespace, f.ref.name, f.origin("spec")))


def failover_detail(f: Fields) -> str:
    """Why a TrafficSplit is linkerd-failover's (empty when it is not)."""
    # fact: linkerd.failover-trafficsplit
    labels = _labels(f.peek("metadata"), "labels")
    annotations = _labels(f.peek("metadata"), "annotations")
    label = facts.value("linkerd.failover-trafficsplit", "label")
    annotation = facts.value("linkerd.failover-trafficsplit", "annotation")
    if label not in labels and annotation not in annotations:
        return ""
    primary = annotations.get(annotation, "")
    if annotation in annotations:
        f.get(f"metadata.annotations.{annotation}")  # read here: not an unmodelled field
    return ("steered by linkerd-failover" + (f" (primary {primary})" if primary else "")
            + ": its weights follow the backends' readiness, not copied as a static split")
