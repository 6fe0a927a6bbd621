"""The Kubernetes side both evaluators share: Services, workloads and their labels.

Built from the source input's own Service and workload objects (they stay in the cluster
through the migration), read straight from the manifests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

_TEMPLATE = {"Deployment": ("spec", "template"), "StatefulSet": ("spec", "template"),
             "DaemonSet": ("spec", "template"), "ReplicaSet": ("spec", "template"),
             "Job": ("spec", "template"), "CronJob": ("spec", "jobTemplate", "spec", "template"),
             "Pod": ()}

_KINDS_LOWER = {kind.lower(): kind for kind in _TEMPLATE}
"""Workload kinds as ``kubectl delete`` names them."""


def dig(obj: Any, *keys: Any, default: Any = None) -> Any:
    """Nested lookup that tolerates wrong types."""
    for key in keys:
        if isinstance(obj, dict):
            obj = obj.get(key)
        elif isinstance(obj, list) and isinstance(key, int) and key < len(obj):
            obj = obj[key]
        else:
            return default
    return default if obj is None else obj


RULES_ANNOTATION = "meshmigrate.io/rules"


def rule_origin(obj: dict[str, Any], index: int) -> str:
    """The source rule an emitted object's rule ``index`` came from, as the writer recorded it
    (comma-separated, in rule order, in ``meshmigrate.io/rules``), or ``""``."""
    origins = str(dig(obj, "metadata", "annotations", RULES_ANNOTATION, default="")).split(",")
    return origins[index] if 0 <= index < len(origins) else ""


class Unique(list):  # type: ignore[type-arg]
    """Objects known to hold one copy per object (a cluster state's), which ``unique`` takes
    as they are: each evaluator built at each step of the coexistence check asked again."""


def unique(objects: Iterable[Any]) -> list[dict[str, Any]]:
    """The objects with one copy per (API group, kind, namespace, name): the last one, as the
    reader keeps the copy read last."""
    if isinstance(objects, Unique):
        return objects
    found: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for obj in objects:
        if isinstance(obj, dict):
            api = str(obj.get("apiVersion", ""))
            key = (api.split("/")[0] if "/" in api else "", str(obj.get("kind", "")),
                   str(dig(obj, "metadata", "namespace", default="")),
                   str(dig(obj, "metadata", "name", default="")))
            found.pop(key, None)
            found[key] = obj
    return list(found.values())


@dataclass(frozen=True)
class WorkloadInfo:
    """A workload as the evaluators need it."""

    id: str
    """``Kind/namespace/name``."""
    namespace: str
    labels: tuple[tuple[str, str], ...]
    service_account: str
    ports: tuple[tuple[str, int], ...]
    annotations: tuple[tuple[str, str], ...] = ()
    """Pod-template annotations (Linkerd per-pod defaults, Consul service name and meta)."""


@dataclass(frozen=True)
class ServiceInfo:
    """A Service: selector and ports (port, name, targetPort)."""

    namespace: str
    name: str
    selector: tuple[tuple[str, str], ...]
    ports: tuple[tuple[int, str, Any], ...]
    annotations: tuple[tuple[str, str], ...] = ()
    grpc: bool = False
    """Every port speaks gRPC (appProtocol or port name), so every request is
    ``POST /<package.Service>/<Method>``."""


class World:
    """Services and workloads by namespace."""

    def __init__(self, objects: Iterable[dict[str, Any]]) -> None:
        self.services: dict[tuple[str, str], ServiceInfo] = {}
        self.workloads: dict[str, list[WorkloadInfo]] = {}
        self.namespaces: dict[str, dict[str, str]] = {}
        self._selected: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[str, ...]] = {}
        """select() answers; every change to the workloads clears it."""
        self._by_id: dict[str, WorkloadInfo] = {}
        """Workloads by id (``workload()`` is asked for every probe and workload)."""
        self._backends: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
        self._ports: dict[tuple[str, str, int, str], tuple[int, str]] = {}
        """backend() and target_port() answers; every change to the world clears them."""
        for obj in objects:
            try:
                self._add(obj)
            except (TypeError, AttributeError, ValueError, KeyError):
                continue  # a damaged object: the reader has reported it already

    def copy(self, without: Iterable[tuple[str, str, str, str]] = ()) -> "World":
        """A copy to change apart (target manifests merged in), without the objects named in
        ``without`` ((lower-case kind, API group, namespace, name), as ``kubectl delete``
        names them): cheaper than reading the same objects again."""
        out = World(())
        out.services = dict(self.services)
        out.workloads = {ns: list(ws) for ns, ws in self.workloads.items()}
        out.namespaces = {ns: dict(v) for ns, v in self.namespaces.items()}
        out._by_id = dict(self._by_id)
        for kind, group, ns, name in without:
            if kind == "service" and group == "":
                out.services.pop((ns, name), None)
            elif kind == "namespace" and group == "":
                out.namespaces.pop(name, None)
            elif kind in _KINDS_LOWER:
                wid = f"{_KINDS_LOWER[kind]}/{ns}/{name}"
                if out._by_id.pop(wid, None) is not None:
                    out.workloads[ns] = [w for w in out.workloads[ns] if w.id != wid]
        return out

    def _changed(self) -> None:
        """Forget the answers worked out from the workloads and Services."""
        self._selected.clear()
        self._backends.clear()
        self._ports.clear()

    def _add(self, obj: Any) -> None:
        self._changed()
        if isinstance(obj, dict):
            kind = obj.get("kind")
            meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
            ns = str(meta.get("namespace") or "default")
            name = str(meta.get("name", ""))
            if kind == "Namespace":
                self.namespaces[name] = {**dict(dig(meta, "annotations", default={})),
                                         **dict(dig(meta, "labels", default={}))}
            elif kind == "Service" and str(obj.get("apiVersion")) == "v1":
                self.add_service(obj)
            elif kind in _TEMPLATE and not (kind in ("Pod", "ReplicaSet", "Job") and
                                            meta.get("ownerReferences")):
                template = dig(obj, *_TEMPLATE[kind], default={}) if _TEMPLATE[kind] else obj
                labels = dig(template, "metadata", "labels", default={})
                notes = dig(template, "metadata", "annotations", default={})
                spec = dig(template, "spec", default={})
                ports = tuple((str(p.get("name") or ""), p["containerPort"])
                              for c in dig(spec, "containers", default=[]) if isinstance(c, dict)
                              for p in c.get("ports") or [] if isinstance(p, dict)
                              and isinstance(p.get("containerPort"), int))
                info = WorkloadInfo(f"{kind}/{ns}/{name}", ns,
                                    tuple(sorted((str(k), str(v)) for k, v in
                                                 (labels if isinstance(labels, dict) else {})
                                                 .items())),
                                    str(dig(spec, "serviceAccountName", default="default")),
                                    ports,
                                    tuple(sorted((str(k), str(v)) for k, v in
                                                 (notes if isinstance(notes, dict) else {})
                                                 .items())))
                same = self.workloads.setdefault(ns, [])
                same[:] = [w for w in same if w.id != info.id]  # a later copy wins, as in
                same.append(info)  # the reader's duplicate handling
                self._by_id[info.id] = info

    def patch_workload(self, obj: dict[str, Any]) -> None:
        """Merge a target manifest that patches an existing workload's pod template (a writer
        adding Consul service meta, say): labels and annotations are added, the rest stays."""
        kind = obj.get("kind")
        if kind not in _TEMPLATE or not _TEMPLATE[kind]:
            return
        self._changed()
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        ns, name = str(meta.get("namespace") or "default"), str(meta.get("name", ""))
        template = dig(obj, *_TEMPLATE[kind], default={})
        labels = dig(template, "metadata", "labels", default={})
        notes = dig(template, "metadata", "annotations", default={})
        found = self.workloads.get(ns, [])
        for i, old in enumerate(found):
            if old.id == f"{kind}/{ns}/{name}":
                found[i] = WorkloadInfo(
                    old.id, ns,
                    tuple(sorted({**dict(old.labels), **{str(k): str(v) for k, v in (
                        labels if isinstance(labels, dict) else {}).items()}}.items())),
                    old.service_account, old.ports,
                    tuple(sorted({**dict(old.annotations), **{str(k): str(v) for k, v in (
                        notes if isinstance(notes, dict) else {}).items()}}.items())))
                self._by_id[old.id] = found[i]

    def add_service(self, obj: dict[str, Any]) -> None:
        """Add (or merge metadata into) a Service."""
        self._changed()
        meta = obj.get("metadata") or {}
        ns, name = str(meta.get("namespace") or "default"), str(meta.get("name"))
        annotations = tuple(sorted((meta.get("annotations") or {}).items()))
        old = self.services.get((ns, name))
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            if old:  # a metadata-only patch of an existing Service
                self.services[(ns, name)] = ServiceInfo(
                    ns, name, old.selector, old.ports,
                    tuple(sorted({**dict(old.annotations), **dict(annotations)}.items())),
                    old.grpc)
            return
        selector = spec.get("selector") if isinstance(spec.get("selector"), dict) else {}
        ports = tuple((p["port"], str(p.get("name") or ""), p.get("targetPort", p["port"]))
                      for p in spec.get("ports") or []
                      if isinstance(p, dict) and isinstance(p.get("port"), int))
        protocols = [str(p.get("appProtocol") or p.get("name") or "").lower()
                     for p in spec.get("ports") or [] if isinstance(p, dict)]
        grpc = bool(protocols) and all(p == "grpc" or p.startswith("grpc-") and
                                       not p.startswith("grpc-web") for p in protocols)
        self.services[(ns, name)] = ServiceInfo(
            ns, name, tuple(sorted((str(k), str(v)) for k, v in selector.items())), ports,
            annotations, grpc)

    def select(self, namespace: str, labels: dict[str, str]) -> tuple[str, ...]:
        """Workloads of a namespace whose pods carry all ``labels`` (empty: none)."""
        if not labels:
            return ()
        key = (namespace, tuple(sorted((str(k), str(v)) for k, v in labels.items())))
        found = self._selected.get(key)
        if found is None:  # evaluators ask the same selectors for every probe
            wanted = set(key[1])
            found = tuple(sorted(w.id for w in self.workloads.get(namespace, [])
                                 if wanted <= set(w.labels)))
            self._selected[key] = found
        return found

    def backend(self, namespace: str, labels: dict[str, str]) -> str:
        """How a backend is named in outcomes: the workloads it reaches, or, where the input
        has no workloads, the pod selector itself (so a subset and the per-subset Service that
        replaces it compare equal)."""
        key = (namespace, tuple(sorted((str(k), str(v)) for k, v in labels.items())))
        found = self._backends.get(key)
        if found is None:
            pods = self.select(namespace, labels)
            found = "+".join(pods) if pods else (
                f"pods/{namespace}{{{','.join(f'{k}={v}' for k, v in key[1])}}}"
                if labels else "")
            self._backends[key] = found
        return found

    def workload(self, wid: str) -> WorkloadInfo | None:
        """A workload by id."""
        return self._by_id.get(wid)

    def target_port(self, namespace: str, service: str, port: int, workload: WorkloadInfo
                    ) -> tuple[int, str]:
        """(container port number, container port name) a Service port reaches on a workload."""
        key = (namespace, service, port, workload.id)
        found = self._ports.get(key)
        if found is None or self._by_id.get(workload.id) is not workload:
            found = self._ports[key] = self._target_port(namespace, service, port, workload)
        return found

    def _target_port(self, namespace: str, service: str, port: int, workload: WorkloadInfo
                     ) -> tuple[int, str]:
        svc = self.services.get((namespace, service))
        labels = dict(workload.labels)
        if svc and not (svc.selector and all(labels.get(k) == v for k, v in svc.selector)):
            # The workload is not the Service's own (a split or override to another Service
            # in front of it): the request keeps its port and that Service maps it.
            svc = next((s for (ns, _), s in sorted(self.services.items())
                        if ns == workload.namespace and s.selector
                        and all(labels.get(k) == v for k, v in s.selector)
                        and any(p == port for p, _, _ in s.ports)), svc)
        target: Any = port
        if svc:
            target = next((t for p, _, t in svc.ports if p == port), port)
        if isinstance(target, str):
            number = next((n for name, n in workload.ports if name == target), 0)
            return number, target
        name = next((nm for nm, n in workload.ports if n == target), "")
        return int(target), name
