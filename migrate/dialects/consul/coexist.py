"""Consul's side of a coexistence window (consul-k8s 1.x/2.0, sidecar with transparent proxy).

Facts (../shared/reference/mapping-consul-others.md sections 1.3-1.7; docs/coexistence.md):
- injection is per pod: the pod annotation ``consul.hashicorp.com/connect-inject`` decides
  over Helm's ``connectInject.default``, but ``"true"`` does not override the namespace scope
  (``k8sAllowNamespaces`` / ``k8sDenyNamespaces``, the webhook's namespaceSelector; fact
  ``consul.connect-inject-scope``); it is read at pod creation;
- every injected pod must be selected by a Kubernetes Service, and with ACLs its
  ServiceAccount must carry the Consul service's name (the auth method binds on it);
- ``Mesh.spec.transparentProxy.meshDestinationsOnly: true`` blocks calls from Consul pods to
  anything outside Consul's catalog, which a callee that left Consul is: it is switched off for
  the coexistence window;
- ``mutualTLSMode: permissive`` (only with ``Mesh.allowEnablingPermissiveMutualTLS``) lets a
  Consul callee accept the plaintext of callers on the other mesh; intentions are not enforced
  on that plaintext.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from migrate import facts
from migrate.dialects.coexist import (
    Coexistence,
    Neutralized,
    json_pointer,
    patch_json,
    set_template_annotation,
    template_path,
)
from migrate.dialects.gatewayapi.bundle import bundle_guard
from migrate.ir.model import Namespace, Workload
from migrate.losses import ObjectRef
from migrate.plan.commands import Command, json_arg, noted, pipe, run

if TYPE_CHECKING:
    from migrate.dialects.base import Manifest
from migrate.sources.model import RawObject, strip_noise

INJECT = "consul.hashicorp.com/connect-inject"
GATEWAY_API = "gateway.networking.k8s.io/"
_CONTROLLED = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")
_CONFIG_ENTRIES = "servicedefaults,servicerouters,servicesplitters,serviceresolvers," \
    "serviceintentions"


class ConsulCoexistence(Coexistence):
    """Consul on Kubernetes (consul-k8s)."""

    MESH = "consul"
    TITLE = "Consul"
    CONTROL_NAMESPACE = "consul"
    GROUP_SUFFIXES = ("consul.hashicorp.com",)
    # Evaluated at the destination proxy (intentions) or by the destination's own proxy
    # (rate limits in ServiceDefaults are not split out): intentions go when the callee moves;
    # routers, splitters, resolvers and defaults are compiled into callers' discovery chains.
    INBOUND_KINDS = frozenset({"ServiceIntentions"})
    # The injected sidecar is named ``consul-dataplane`` (``consul-dataplane-<service>`` on
    # multi-port pods; the grep in verify_left matches both): consul-k8s
    # control-plane/connect-inject/webhook/consul_dataplane_sidecar.go, ``sidecarContainer``.
    PROXY_CONTAINER = "consul-dataplane"
    INGRESS = "the Consul API gateway or IngressGateway"
    INGRESS_MESH_ONLY = True  # fact: consul.api-gateway-mesh-backends
    STAGED_POLICY = ("ServiceDefaults `mutualTLSMode: permissive`: plaintext callers on the "
                     "other mesh get in, and intentions do not apply to them")
    ENFORCED_POLICY = ("ServiceDefaults return to `mutualTLSMode: strict`, so intentions decide "
                       "every call")

    # -- source role -------------------------------------------------------------------------
    def neutralize(self, raw: dict[ObjectRef, RawObject]) -> list[Neutralized]:
        """``Mesh`` with ``meshDestinationsOnly: true`` rewritten to allow non-mesh callees."""
        out = []
        # fact: consul.permissive-mtls
        # Pods waiting inside a move step are made permissive (waiting_permissive), which works
        # only with the Mesh flag; it is set only where no source entry is permissive already,
        # so that setting it changes nothing by itself.
        inert = not any(self.owns(r) and r.kind in ("ServiceDefaults", "ProxyDefaults") and
                        str((raw[r].body.get("spec") or {}).get("mutualTLSMode", "")).lower()
                        == "permissive" for r in raw if isinstance(raw[r].body.get("spec"), dict))
        for ref in sorted(raw):
            if ref.kind != "Mesh" or not self.owns(ref):
                continue
            body = strip_noise(raw[ref].body)  # a copy of every level: the source stays as read
            spec = body.get("spec")
            if not isinstance(spec, dict):
                continue
            tproxy = spec.get("transparentProxy")
            changed, opened = False, ""
            if isinstance(tproxy, dict) and tproxy.get("meshDestinationsOnly") is True:
                # fact: consul.mesh-destinations-only
                tproxy["meshDestinationsOnly"] = False
                changed, opened = True, "spec.transparentProxy.meshDestinationsOnly"
            # consul-k8s accepts only the Mesh named "mesh" (the others are not synced).
            if inert and ref.name == "mesh" and \
                    spec.get("allowEnablingPermissiveMutualTLS") is not True:
                spec["allowEnablingPermissiveMutualTLS"] = True
                changed = True
            if changed:
                out.append(Neutralized(body, raw[ref], opened))
        return out

    def neutralize_summary(self, count: int) -> str:
        """Why the Mesh entry is rewritten."""
        return (" Rewrites the Mesh entry: `transparentProxy.meshDestinationsOnly` false (with "
                "it, Consul callers could not reach a callee once it left Consul's catalog) and "
                "`allowEnablingPermissiveMutualTLS` true (pods waiting for their restart inside a "
                "move step are made permissive for the neighbours that moved first; no source "
                "entry is permissive, so this alone changes nothing).")

    def mesh_wide_refs(self, refs: list[ObjectRef]) -> list[ObjectRef]:
        """ProxyDefaults and Mesh apply to every Consul proxy."""
        return [r for r in refs if r.kind in ("ProxyDefaults", "Mesh") and self.owns(r)]

    def pinning_refs(self, raw: dict[ObjectRef, RawObject],
                     services: set[tuple[str, str]]) -> list[ObjectRef]:
        """Config entries that keep a Service's virtual IP registered.

        consul-k8s hands Consul the Service's ClusterIP as a manual virtual IP for every
        ServiceDefaults, ServiceRouter, ServiceSplitter, ServiceResolver and (non-wildcard)
        ServiceIntentions naming it, and Consul keeps that IP while any of them still names
        the service, instances or not. Consul callers' outbound listeners keep matching the
        ClusterIP and send the call to a cluster with no endpoints once the last Consul pod is
        gone, instead of passing it through (issue 22). So these go before the pods leave.
        """
        # fact: consul.virtual-ip-kept
        kinds = facts.value("consul.virtual-ip-kept", "kinds")
        out = []
        for ref in sorted(raw):
            if ref.kind not in kinds or not self.owns(ref):
                continue
            if ref.kind == "ServiceIntentions":
                dest = raw[ref].body.get("spec", {}).get("destination", {})
                dest = dest if isinstance(dest, dict) else {}
                name, ns = str(dest.get("name", "")), str(dest.get("namespace") or ref.namespace)
                if "*" in name or "*" in ns:
                    continue  # a wildcard destination is given no virtual IP
            else:
                name, ns = ref.name, ref.namespace
            if (ns, name) in services:
                out.append(ref)
        return out

    def rejected(self, raw: dict[ObjectRef, RawObject]) -> set[ObjectRef]:
        """A ServiceIntentions for a destination an earlier one (in the reader's order, which
        the plan followed: ``ConsulState.add_named``) already has: Consul keeps one per
        destination, and the consul-k8s webhook refuses to create the second again."""
        seen: set[str] = set()
        out: set[ObjectRef] = set()
        for ref in sorted(raw, key=lambda r: (r.namespace, r.name)):
            if ref.kind != "ServiceIntentions" or not self.owns(ref):
                continue
            spec = raw[ref].body.get("spec")
            dest = spec.get("destination") if isinstance(spec, dict) else None
            name = str(dest.get("name", "")) if isinstance(dest, dict) else ""
            if name in seen:
                out.add(ref)
            seen.add(name)
        return out

    def ingress_refs(self, raw: dict[ObjectRef, RawObject]) -> list[ObjectRef]:
        """The API gateway's Gateway API objects: Gateways of class ``consul`` and the routes
        whose parent is one of them."""
        gateways = {(r.namespace, r.name) for r in raw if r.kind == "Gateway" and
                    r.api_version.startswith(GATEWAY_API) and
                    str((raw[r].body.get("spec") or {}).get("gatewayClassName", "consul"))
                    == "consul"}
        out = []
        for ref in sorted(raw):
            if not ref.api_version.startswith(GATEWAY_API):
                continue
            if (ref.namespace, ref.name) in gateways and ref.kind == "Gateway":
                out.append(ref)
                continue
            spec = raw[ref].body.get("spec")
            parents = spec.get("parentRefs") if isinstance(spec, dict) else None
            if ref.kind.endswith("Route") and isinstance(parents, list) and any(
                    isinstance(p, dict) and p.get("kind", "Gateway") == "Gateway" and
                    (str(p.get("namespace") or ref.namespace), str(p.get("name", "")))
                    in gateways for p in parents):
                out.append(ref)
        return out

    def ingress_identities(self, raw: dict[ObjectRef, RawObject]) -> set[str]:
        """A Consul API gateway or IngressGateway is the Consul service of its name."""
        return {r.name for r in raw if r.kind == "IngressGateway" and self.owns(r)} | \
            {r.name for r in self.ingress_refs(raw) if r.kind == "Gateway"}

    def waiting_permissive(self, raw: dict[ObjectRef, RawObject],
                           services: set[tuple[str, str]]) -> tuple[list[Command],
                                                                    list[dict[str, Any]]]:
        """``mutualTLSMode: permissive`` on each Service's ServiceDefaults (patched, or a new
        one): a pod still waiting for its restart admits the plaintext of a neighbour already
        on the other mesh (intentions do not apply to that plaintext)."""
        commands: list[Command] = []
        created: list[dict[str, Any]] = []
        present = {(r.namespace, r.name) for r in raw
                   if r.kind == "ServiceDefaults" and self.owns(r)}
        for ns, name in sorted(services):
            if (ns, name) in present:
                commands.append(run("kubectl", "patch", "servicedefaults.consul.hashicorp.com",
                                    name, "-n", ns, "--type=merge", "-p",
                                    json_arg({"spec": {"mutualTLSMode": "permissive"}})))
            else:
                created.append({"apiVersion": "consul.hashicorp.com/v1alpha1",
                                "kind": "ServiceDefaults",
                                "metadata": {"name": name, "namespace": ns},
                                "spec": {"mutualTLSMode": "permissive"}})
        return commands, created

    def leave_commands(self, ns: str, record: Namespace | None,
                       workloads: list[Workload]) -> list[Command]:
        """Pin ``connect-inject: "false"`` on each pod template (beats Helm's defaults)."""
        return [set_template_annotation(w, INJECT, "false") for w in workloads
                if w.kind in _CONTROLLED]

    def rejoin_commands(self, ns: str, record: Namespace | None,
                        workloads: list[Workload]) -> list[Command]:
        """Give the pods back to Consul injection (the value as it was, quoted, never checked:
        Kubernetes accepts any annotation value)."""
        return [set_template_annotation(w, INJECT, dict(w.pod_annotations).get(INJECT, "true"))
                for w in workloads if w.kind in _CONTROLLED]

    CNI_DAEMONSETS = ("consul-cni",)
    OWN_PREFIXES = ("consul-",)
    # fact: consul.init-capabilities
    CNI_PLUGIN = ("the Consul CNI plugin (connectInject.cni.enabled; https://developer."
                  "hashicorp.com/consul/docs/k8s/connect/transparent-proxy/"
                  "enable-transparent-proxy)")

    def delete_control_namespace(self) -> Command:
        """``helm uninstall`` leaves the release's namespace."""
        return run("kubectl", "delete", "namespace", "consul", "--ignore-not-found")

    def uninstall_commands(self) -> list[Command]:
        """Remove consul-k8s and its CRDs."""
        return [run("helm", "uninstall", "consul", "-n", "consul"),
                self.delete_control_namespace(),
                pipe(("kubectl", "get", "crd", "-o", "name"),
                     ("grep", "-E", "consul\\.hashicorp\\.com"),
                     ("xargs", "-r", "kubectl", "delete"))]

    def reinstall_commands(self) -> list[Command]:
        """Rollback of the uninstall."""
        return [run("helm", "install", "consul", "hashicorp/consul", "-n", "consul",
                    "--create-namespace", "-f", "<your values.yaml>",
                    note="then re-apply the rollback/ folder")]

    # -- target role -------------------------------------------------------------------------
    def install_commands(self, experimental: bool, version: str,
                         cni: bool = False) -> list[Command]:
        """consul-k8s with injection opt-in per pod, transparent proxy and managed ACLs (with
        ``cni``, traffic redirection by the Consul CNI plugin)."""
        channel = "experimental-install.yaml" if experimental else "standard-install.yaml"
        return [
            bundle_guard("v1.5.1", experimental),
            run("kubectl", "apply", "--server-side", "-f", "https://github.com/kubernetes-sigs/"
                f"gateway-api/releases/download/v1.5.1/{channel}",
                note="consul-k8s 2.0 upgrades to Gateway API 1.5.1"),
            run("helm", "repo", "add", "hashicorp", "https://helm.releases.hashicorp.com"),
            run("helm", "repo", "update"),
            run("helm", "install", "consul", "hashicorp/consul", "-n", "consul",
                "--create-namespace", "--version", version,
                "--set", "connectInject.enabled=true", "--set", "connectInject.default=false",
                "--set", "connectInject.transparentProxy.defaultEnabled=true",
                "--set", "global.acls.manageSystemACLs=true",
                *(("--set", "connectInject.cni.enabled=true") if cni else ())),
            run("kubectl", "-n", "consul", "rollout", "status", "statefulset/consul-server",
                "--timeout=10m"),
        ]

    def trust_manual(self) -> list[str]:
        """Consul's built-in CA."""
        # fact: consul.builtin-ca
        return [
            "Decide the certificate authority before `helm install`: by default Consul's "
            "built-in CA generates a root valid for 10 years (root_cert_ttl 87600h) and "
            "rotates leaf certificates itself. To chain to your own PKI (Vault, or a root you "
            "provide), set the CA provider in the Helm values first "
            "(https://developer.hashicorp.com/consul/docs/connect/ca): changing it later is a "
            "root rotation."]

    def install_verify(self) -> list[Command]:
        """Servers up; config entries sync."""
        return [run("consul-k8s", "status"),
                run("kubectl", "get", "pods", "-n", "consul", note="all Running")]

    def install_rollback(self) -> list[Command]:
        """Rollback of the install."""
        return [run("helm", "uninstall", "consul", "-n", "consul"),
                run("kubectl", "delete", "namespace", "consul", "--ignore-not-found")]

    def join_commands(self, ns: str, annotations: dict[str, str],
                      workloads: list[Workload]) -> list[Command]:
        """Opt each pod template into injection (Helm's default stays off)."""
        return [set_template_annotation(w, INJECT, "true") for w in workloads
                if w.kind in _CONTROLLED]

    def unjoin_commands(self, ns: str, annotations: dict[str, str],
                        workloads: list[Workload]) -> list[Command]:
        """Take the opt-in back off."""
        return [patch_json(w, [{"op": "remove", "path": f"{template_path(w.kind)}/annotations/"
                                f"{json_pointer(INJECT)}"}])
                for w in workloads if w.kind in _CONTROLLED]

    def join_manual(self, ns: str, workloads: list[Workload]) -> list[str]:
        """consul-k8s registers a pod only through a Service selecting it."""
        return [f"Check that every workload of {ns} is selected by a Service (one per pod; a "
                "multi-port pod names it with consul.hashicorp.com/kubernetes-service) and that "
                "its ServiceAccount has that Service's name: with ACLs, Consul binds the service "
                "identity to the ServiceAccount name.",
                # fact: consul.connect-inject-scope
                f"Check that {ns} is inside Consul's injection scope: connect-inject \"true\" "
                "does not override Helm connectInject.k8sAllowNamespaces / k8sDenyNamespaces or "
                "the webhook's namespaceSelector, and outside them the pods restart without a "
                "sidecar (kubectl get mutatingwebhookconfiguration -l app=consul -o yaml; helm "
                "get values consul -n consul)."]

    def identity_manual(self, w: Workload, services: list[str]) -> list[str]:
        """With ACLs (the install above turns them on), consul-k8s registers a pod only when
        its ServiceAccount has the name of the Service it registers under (the Kubernetes auth
        method binds the service identity to the ServiceAccount name, [ref-c 1.3]): a pod
        running as another account (``default`` most often) never gets its sidecar ready."""
        account = w.service_account or "default"
        if not services or account in services or w.kind == "Pod":
            return []
        name = services[0] if len(services) == 1 else f"one of {', '.join(services)}"
        target = services[0] if len(services) == 1 else "<that Service's name>"
        return [f"{w.kind} {w.namespace}/{w.name} runs as ServiceAccount {account}, but with ACLs "
                f"Consul registers its pods as {name} only under a ServiceAccount of that name "
                f"(their sidecar never gets ready otherwise): create ServiceAccount {target} in "
                f"{w.namespace}, with the RBAC bindings {account} has there, before this step, "
                f"and add serviceAccountName: {target} to the pod-template patch of {w.kind} "
                f"{w.name} below, so that it changes in the same rollout (earlier, the source "
                "mesh's policies naming the old account would refuse its calls)."]

    def enforce_commands(self, ns: str, annotations: dict[str, str]) -> list[Command]:
        """Consul policy is config entries, applied by the enforce step's manifests."""
        return []

    def verify_joined(self, ns: str, workloads: list[str], policy: bool) -> list[Command]:
        """Pods carry the dataplane; config entries synced."""
        return [noted(self.verify_left(ns)[0], "every pod"),
                run("kubectl", "get", _CONFIG_ENTRIES, "-n", ns, note="every entry SYNCED True")]

    def verify_enforced(self, ns: str, workloads: list[str],
                        enforced: Sequence[Manifest] = ()) -> list[Command]:
        """Strict mTLS again; intentions synced."""
        return [run("kubectl", "get", "servicedefaults", "-n", ns, "-o",
                    "custom-columns=NAME:.metadata.name,MTLS:.spec.mutualTLSMode",
                    note="strict (or empty)"),
                run("kubectl", "get", "serviceintentions", "-n", ns, note="SYNCED True")]

    def ingress_manual(self, source: Coexistence) -> list[str]:
        """Consul's ingress is its API gateway (Gateway API, class ``consul``)."""
        return [
            "Deploy a Consul API gateway: a Gateway API Gateway with gatewayClassName consul.",
            f"Recreate each listener and route of {source.INGRESS} as HTTPRoutes with that "
            "Gateway as parent, and add intentions from the gateway to each backend.",
            "Move DNS / the load balancer to the new gateway and watch its success rate.",
        ]

    def ingress_verify(self) -> list[Command]:
        """The gateway is programmed."""
        return [run("kubectl", "get", "gateways.gateway.networking.k8s.io", "-A",
                    note="Programmed=True")]

    def cleanup_verify(self) -> list[Command]:
        """Every config entry synced."""
        return [run("consul-k8s", "status"),
                run("kubectl", "get", _CONFIG_ENTRIES, "-A", note="every entry SYNCED True")]


CONSUL = ConsulCoexistence()
