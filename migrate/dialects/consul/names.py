"""Consul service names and the Kubernetes Services and pods behind them.

How consul-k8s names services (../shared/reference/mapping-consul-others.md section 1.3):
- its endpoints controller registers every injected pod a Kubernetes Service selects under
  the Service's ``metadata.name``, unless the pod annotation
  ``consul.hashicorp.com/connect-service`` names another service;
- a Service labelled ``consul.hashicorp.com/service-ignore: "true"`` is not registered;
- a pod several Services select registers only through the one its
  ``consul.hashicorp.com/kubernetes-service`` annotation names, when it has one;
- with ACLs the Kubernetes auth method binds the service identity to the pod's ServiceAccount
  name, so the ServiceAccount normally carries the service's name;
- Consul CE has one Consul namespace: same-named Services in different Kubernetes namespaces
  are one Consul service (instances merge, every config entry and intention applies to all).
"""

from __future__ import annotations

from dataclasses import dataclass

from migrate.ir.graph import MeshGraph, selects
from migrate.ir.model import Service, ServiceKey, Workload
from migrate.losses import LossLog, Severity

PREFIX = "consul.hashicorp.com/"
SERVICE_ANNOTATION = PREFIX + "connect-service"
UPSTREAMS_ANNOTATION = PREFIX + "connect-service-upstreams"
META_PREFIX = PREFIX + "service-meta-"
TAGS_ANNOTATION = PREFIX + "service-tags"
IGNORE_LABEL = PREFIX + "service-ignore"
KUBERNETES_SERVICE_ANNOTATION = PREFIX + "kubernetes-service"


@dataclass(frozen=True)
class Instance:
    """One Kubernetes Service registered under a Consul name, with its injected workloads."""

    service: Service
    workloads: tuple[Workload, ...]
    """Injected workloads the Service selects that register under this name (may be empty
    when the input holds the Service but not its pods)."""

    @property
    def key(self) -> ServiceKey:
        """The Kubernetes Service."""
        return self.service.key


def meshed(workload: Workload, graph: MeshGraph, inject_default: bool) -> bool:
    """Whether consul-k8s injects (and so registers) a workload's pods."""
    if workload.injection == "sidecar":
        return True
    if workload.injection != "inherit":
        return False
    ns = graph.namespace(workload.namespace)
    return ns.injection == "sidecar" if ns is not None else inject_default


def annotation(workload: Workload, key: str) -> str:
    """A pod-template annotation value ('' when absent)."""
    return dict(workload.pod_annotations).get(key, "")


class ConsulNames:
    """Consul service name -> the Kubernetes Services (and pods) that register under it."""

    def __init__(self, graph: MeshGraph, inject_default: bool) -> None:
        self.graph = graph
        self._registered: dict[str, list[Instance]] = {}
        self._unmeshed: dict[str, list[Instance]] = {}
        for svc in graph.of(Service):
            if dict(svc.labels).get(IGNORE_LABEL, "").lower() == "true" or not svc.selector:
                continue
            picked = [w for w in graph.workloads_selected(svc.key.namespace, svc.selector)
                      if meshed(w, graph, inject_default) and
                      annotation(w, KUBERNETES_SERVICE_ANNOTATION) in ("", svc.key.name)]
            by_name: dict[str, list[Workload]] = {}
            for w in picked:
                override = annotation(w, SERVICE_ANNOTATION).strip()
                by_name.setdefault(override or svc.key.name, []).append(w)
            for name, workloads in by_name.items():
                self._registered.setdefault(name, []).append(Instance(svc, tuple(workloads)))
            if not picked:
                self._unmeshed.setdefault(svc.key.name, []).append(Instance(svc, ()))

    def registered(self) -> list[str]:
        """Consul names with injected pods in the input, sorted."""
        return sorted(self._registered)

    def instances(self, name: str, namespace: str = "") -> list[Instance]:
        """Where a Consul name lives, sorted by Service key.

        Registered (injected) instances first; when the input has none, Services of that name
        whose pods are absent or not injected, since config entries name them anyway.
        ``namespace`` restricts to one Kubernetes namespace (Enterprise namespace mirroring).
        """
        found = self._registered.get(name) or self._unmeshed.get(name) or []
        if namespace:
            found = [i for i in found if i.key.namespace == namespace]
        return sorted(found, key=lambda i: i.key)

    def keys(self, name: str, namespace: str = "") -> list[ServiceKey]:
        """The Kubernetes Services of a Consul name."""
        return [i.key for i in self.instances(name, namespace)]

    def principals(self, name: str, trust_domain: str, namespace: str = "") -> tuple[str, ...]:
        """Istio-form principals of the pods registering under a Consul name.

        The pods' real ServiceAccounts are used; with no pods in the input, the ACL binding
        rule's convention (ServiceAccount = service name) is assumed. An unknown name keeps
        CE's meaning, "that service in any namespace": a suffix pattern.
        """
        found: set[str] = set()
        for inst in self.instances(name, namespace):
            accounts = {w.service_account for w in inst.workloads} or {name}
            found.update(f"{trust_domain}/ns/{inst.key.namespace}/sa/{sa}" for sa in accounts)
        if not found:
            ns = f"ns/{namespace}/" if namespace else ""
            return (f"*/{ns}sa/{name}",)
        return tuple(sorted(found))

    def report_collisions(self, losses: LossLog) -> None:
        """One loss per Service whose Consul name is shared across Kubernetes namespaces."""
        for name in self.registered():
            instances = self.instances(name)
            spaces = sorted({i.key.namespace for i in instances})
            if len(spaces) < 2:
                continue
            for inst in instances:
                others = ", ".join(f"{ns}/{name}" for ns in spaces if ns != inst.key.namespace)
                losses.report(
                    "CONSUL_SHARED_NAME", Severity.MANUAL, "input", inst.service.origin.ref,
                    "metadata.name",
                    f"Consul CE registers this Service and {others} as one Consul service "
                    f"'{name}': its instances are load-balanced together and every config entry "
                    f"and intention for '{name}' applies to all of them; the target mesh keeps "
                    f"them apart by namespace, so this plan gives each the same configuration",
                    "Decide whether callers meant all namespaces' pods; if not, rename the "
                    "Services (or use Consul Enterprise namespace mirroring, "
                    "connectInject.consulNamespaces.mirroringK8S) before migrating.")


def workloads_matching(instance: Instance, meta: dict[str, str],
                       tags: tuple[str, ...]) -> list[Workload]:
    """Workloads of an instance whose registration metadata and tags satisfy a filter."""
    out = []
    for w in instance.workloads:
        ann = dict(w.pod_annotations)
        have_tags = {t.strip() for t in ann.get(TAGS_ANNOTATION, "").split(",") if t.strip()}
        if all(ann.get(META_PREFIX + k) == v for k, v in meta.items()) and \
                set(tags) <= have_tags:
            out.append(w)
    return out


def distinguishing_labels(instance: Instance, matching: list[Workload]) -> dict[str, str] | None:
    """Pod labels that pick exactly ``matching`` among an instance's workloads, or None.

    A Consul subset selects endpoints by catalog metadata, which comes from pod annotations.
    The target meshes select by pod labels, so the subset survives only if some labels are
    shared by every matching workload, are not the Service's own selector, and are carried
    by no other workload of the Service.
    """
    if not matching:
        return None
    common = dict(matching[0].pod_labels)
    for w in matching[1:]:
        theirs = dict(w.pod_labels)
        common = {k: v for k, v in common.items() if theirs.get(k) == v}
    selector = dict(instance.service.selector)
    common = {k: v for k, v in common.items() if selector.get(k) != v}
    if not common:
        return None
    chosen = tuple(sorted(common.items()))
    others = [w for w in instance.workloads if w not in matching]
    if any(selects(chosen, w.pod_labels) for w in others):
        return None
    return common
