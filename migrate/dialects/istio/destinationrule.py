"""DestinationRule -> IR destination policy (subsets, client TLS, balancing, ejection)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from migrate.dialects.fields import Fields, join
from migrate.ir.graph import MeshGraph
from migrate.ir.hosts import service_of_host
from migrate.ir.model import DestinationPolicy, OutlierDetection, Subset, labels

if TYPE_CHECKING:
    from migrate.dialects.istio.reader import IstioReader

_OUTLIER_KEPT = ("consecutive5xxErrors", "consecutiveErrors", "baseEjectionTime")


def read_destination_rule(reader: IstioReader, f: Fields, graph: MeshGraph) -> None:
    """Read one DestinationRule."""
    host = f.name("spec.host")
    key = service_of_host(host, f.ref.namespace, reader.cluster_domain)
    subsets = []
    for i, raw in enumerate(f.list("spec.subsets")):
        path = f"spec.subsets[{i}]"
        if not isinstance(raw, dict):
            f.invalid(path, "expected a subset mapping")
            continue
        if f.peek(join(path, "trafficPolicy")) is not None:
            f.use("destination.subset_policy", join(path, "trafficPolicy"))
            _tls(f, join(path, "trafficPolicy"))
            for j, _ in enumerate(f.list(join(path, "trafficPolicy.portLevelSettings"))):
                _tls(f, join(path, f"trafficPolicy.portLevelSettings[{j}]"))
        subsets.append(Subset(f.string(join(path, "name")),
                              labels(f.mapping(join(path, "labels"), whole=True)), path))
    if key is None and subsets:
        f.use("destination.external", "spec.subsets", host)
    elif subsets:
        f.note("destination.subsets", "spec.subsets")
    tls_mode, outlier = _traffic_policy(f, "spec.trafficPolicy")
    for i, _ in enumerate(f.list("spec.trafficPolicy.portLevelSettings")):
        path = f"spec.trafficPolicy.portLevelSettings[{i}]"
        f.use("destination.port_level", path)
        _tls(f, path)  # TLS is reported wherever it sits: origination means plaintext if lost
    if f.peek("spec.workloadSelector") is not None:
        f.use("destination.workload_selector", "spec.workloadSelector")
    export_to = f.strings("spec.exportTo")
    if export_to and set(export_to) != {"*"}:
        f.use("destination.export_to", "spec.exportTo", ",".join(export_to))
    graph.add(DestinationPolicy(
        namespace=f.ref.namespace, name=f.ref.name, service=key, host=host,
        subsets=tuple(subsets), tls_mode=tls_mode, outlier=outlier, origin=f.origin("spec")))


def _traffic_policy(f: Fields, path: str) -> tuple[str, OutlierDetection | None]:
    lb = join(path, "loadBalancer")
    given, balancing = f.keys_at(path), f.keys_at(lb)
    if balancing.get("simple") is not None:
        f.use("destination.lb.simple", join(lb, "simple"), f.string(join(lb, "simple")))
    for key, feature in (("consistentHash", "destination.lb.consistent_hash"),
                         ("localityLbSetting", "destination.lb.locality"),
                         ("warmupDurationSecs", "destination.lb.warmup"),
                         ("warmup", "destination.lb.warmup")):
        if balancing.get(key) is not None:
            f.use(feature, join(lb, key))
    if given.get("connectionPool") is not None:
        f.use("destination.connection_pool", join(path, "connectionPool"))
    for key in ("tunnel", "proxyProtocol"):
        if given.get(key) is not None:
            f.use("destination.tunnel", join(path, key))
    if given.get("retryBudget") is not None:
        f.use("destination.retry_budget", join(path, "retryBudget"))
    tls_mode = _tls(f, path)
    outlier = None
    od = join(path, "outlierDetection")
    if given.get("outlierDetection") is not None:
        errors = f.integer(join(od, "consecutive5xxErrors"))
        if errors is None:
            errors = f.integer(join(od, "consecutiveErrors"))
        lost = sorted(k for k in f.mapping(od) if k not in _OUTLIER_KEPT)
        f.use("destination.outlier_detection", od, ", ".join(lost))
        outlier = OutlierDetection(errors, f.string(join(od, "baseEjectionTime")), od)
    return tls_mode, outlier


def _tls(f: Fields, path: str) -> str:
    """Record the ``tls`` block under a traffic policy (top level, port level or subset) as
    the feature its mode is, and return the mode ('' when absent)."""
    tls_mode = f.string(join(path, "tls.mode"))
    if f.peek(join(path, "tls")) is not None:
        feature = {"ISTIO_MUTUAL": "destination.tls.istio_mutual", "DISABLE":
                   "destination.tls.disable", "": "destination.tls.istio_mutual"}.get(
                       tls_mode, "destination.tls.origination")
        f.use(feature, join(path, "tls"), tls_mode)
    return tls_mode
