"""Who is in the mesh: whether a workload's pods run the mesh's proxy.

A pod without the proxy enforces nothing: every caller reaches it, in plaintext, whatever
policy names it. Each mesh decides injection its own way, from the pod template's labels and
annotations and its namespace's (``World.namespaces`` holds a namespace's labels and
annotations together). A namespace the input does not show is taken as injected, as the
planner takes it (pipeline ``_namespaces``): dumps made for ``kubectl apply -n`` carry no
Namespace object, and the mesh objects in them say the namespace is meshed.
"""

from __future__ import annotations

from migrate.verify.world import World, WorkloadInfo

TRUE = ("true", "enabled", "yes", "1")
"""Truthy spellings the injectors accept (consul-k8s parses with strconv.ParseBool)."""


def istio(world: World, info: WorkloadInfo) -> bool:
    """Istio's injection policy (https://istio.io/latest/docs/setup/additional-setup/
    sidecar-injection/#controlling-the-injection-policy): a pod's ``sidecar.istio.io/inject``
    label (or the deprecated annotation) set to false never injects; otherwise the namespace's
    ``istio-injection=enabled``, an ``istio.io/rev`` revision label (on the namespace or the
    pod), or the pod's inject=true label does, unless the namespace says
    ``istio-injection=disabled``. Ambient namespaces (``istio.io/dataplane-mode=ambient``)
    are in the mesh too: ztunnel enforces their policies."""
    labels, notes = dict(info.labels), dict(info.annotations)
    pod = str(labels.get("sidecar.istio.io/inject", notes.get("sidecar.istio.io/inject", "")))
    if pod.lower() == "false":
        return False
    if info.namespace not in world.namespaces:
        return True
    ns = world.namespaces[info.namespace]
    if ns.get("istio-injection") == "disabled":
        return False
    return (ns.get("istio-injection") == "enabled" or bool(ns.get("istio.io/rev"))
            or bool(labels.get("istio.io/rev")) or pod.lower() == "true"
            or ns.get("istio.io/dataplane-mode") == "ambient"
            or labels.get("istio.io/dataplane-mode") == "ambient")


def linkerd(world: World, info: WorkloadInfo) -> bool:
    """Linkerd's proxy injector (https://linkerd.io/2/features/proxy-injection/): the
    ``linkerd.io/inject`` annotation on the pod template, else on the namespace: ``enabled``
    or ``ingress`` inject, ``disabled`` (or nothing) does not."""
    key = "linkerd.io/inject"
    value = dict(info.annotations).get(key)
    if value is None:
        if info.namespace not in world.namespaces:
            return True
        value = world.namespaces[info.namespace].get(key)
    return value in ("enabled", "ingress")


def consul(info: WorkloadInfo, default: bool) -> bool:
    """consul-k8s's connect injector (control-plane/connect-inject/webhook
    ``shouldInject``; https://developer.hashicorp.com/consul/docs/k8s/connect#how-it-works):
    the pod's ``consul.hashicorp.com/connect-inject`` annotation, else the Helm
    ``connectInject.default``; Consul has no namespace annotation for it (namespaces are chosen
    with Helm ``k8sAllowNamespaces``/``k8sDenyNamespaces``, not in the input)."""
    value = dict(info.annotations).get("consul.hashicorp.com/connect-inject")
    if value is None:
        return default
    return value.strip().lower() in TRUE
