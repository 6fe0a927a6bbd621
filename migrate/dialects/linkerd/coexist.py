"""Linkerd's side of a coexistence window, as the target (install, join a namespace, verify,
enforce) and as the source (leave, uninstall).

Facts (../shared/reference/mapping-istio-linkerd.md sections 0, 1.2, 4, 5):
- Linkerd 2.19+ no longer installs Gateway API CRDs; 2.20 supports bundles 1.2.1-1.5.1 and
  Istio 1.30 accepts 1.5.1, so that bundle serves both while they coexist (experimental
  channel when TCP/TLS routes are used);
- ``linkerd.io/inject`` and ``config.linkerd.io/default-inbound-policy`` are read at pod
  creation (a restart applies them); Server ``accessPolicy`` changes apply immediately;
- a ServiceProfile for a Service silently overrides its HTTPRoutes, retries and timeouts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from migrate.dialects.coexist import (
    Coexistence,
    RouteHandover,
    remove_template_keys,
    set_template_annotation,
)
from migrate.dialects.linkerd.handover import hand_over_mesh_routes
from migrate.dialects.gatewayapi.bundle import bundle_guard
from migrate.ir.model import FeatureUse, Namespace, Workload
from migrate.losses import ObjectRef
from migrate.plan.commands import Command, pipe, run

if TYPE_CHECKING:
    from migrate.dialects.base import Manifest
from migrate.sources.model import RawObject


def gateway_api_bundle(version: str) -> str:
    """The Gateway API release to install for a Linkerd version.

    Linkerd 2.20 supports 1.2.1-1.5.1 and Istio 1.30 accepts 1.5.1 (it refuses TLSRoute CRDs
    older than 1.5.0); 2.18-2.19 support 1.1.1-1.2.1; 2.15-2.17 0.7-1.1.1
    (mapping-istio-linkerd.md section 0).
    """
    minor = int(version.split(".")[1]) if version.count(".") == 1 else 20
    if minor >= 20:
        return "v1.5.1"
    return "v1.2.1" if minor >= 18 else "v1.1.1"


INJECT = "linkerd.io/inject"
"""The annotation Linkerd's injector reads on namespaces and pod templates."""


class LinkerdCoexistence(Coexistence):
    """Linkerd 2.14-2.20."""

    MESH = "linkerd"
    TITLE = "Linkerd"
    CONTROL_NAMESPACE = "linkerd"
    GROUP_SUFFIXES = ("linkerd.io", "split.smi-spec.io")
    # Objects that configure the callee's own (inbound) proxy; routes, ServiceProfiles and
    # TrafficSplits are applied by callers and stay until the last Linkerd caller moved.
    INBOUND_KINDS = frozenset({"Server", "ServerAuthorization", "AuthorizationPolicy",
                               "MeshTLSAuthentication", "NetworkAuthentication",
                               "HTTPLocalRateLimitPolicy"})
    PROXY_CONTAINER = "linkerd-proxy"
    # A pod's own linkerd.io/inject: disabled wins over its namespace's enabled
    # (https://linkerd.io/2/features/proxy-injection/).
    KEEP_OUT = ("annotations", "linkerd.io/inject", "disabled")
    INGRESS = "the ingress controller meshed with linkerd.io/inject: ingress"
    STAGED_POLICY = ("Servers enforce the source's ports, paths and methods; while a grant's "
                     "callers remain on the source mesh, its `-plaintext` twin admits the same "
                     "requests from any client in the cluster networks, with or without a peer "
                     "identity (docs/coexistence.md)")
    ENFORCED_POLICY = ("the `-plaintext` twins are deleted, so every grant requires its identity "
                       "again, and the namespace's final default applies to restarted pods")
    # policy-controller outbound/index/http.rs indexes Service-parented gateway.networking.k8s.io
    # routes next to its own flavour.
    READS_MESH_GATEWAY_ROUTES = True

    # -- source role -------------------------------------------------------------------------
    def hand_over_mesh_routes(self, raw: dict[ObjectRef, RawObject]) -> RouteHandover:
        """Service-parented Gateway API HTTPRoutes re-created as ``policy.linkerd.io``
        (linkerd/handover.py)."""
        handed, kept = hand_over_mesh_routes(raw)
        return RouteHandover([(h.original, h.replacement) for h in handed if h.replacement],
                             [h.original for h in handed if h.replacement is None],
                             [(k.ref, k.reason) for k in kept])

    def leave_commands(self, ns: str, record: Namespace | None,
                       workloads: list[Workload]) -> list[Command]:
        """Drop ``linkerd.io/inject`` from the namespace and the pod templates."""
        cmds = [run("kubectl", "annotate", "namespace", ns, "linkerd.io/inject-")]
        for w in workloads:
            cmds += remove_template_keys(w, "annotations", ["linkerd.io/inject"])
        return cmds

    def rejoin_commands(self, ns: str, record: Namespace | None,
                        workloads: list[Workload]) -> list[Command]:
        """Put back the injection annotations :meth:`leave_commands` removed, as the input had
        them: the namespace's, and each pod template's (the values are quoted, never checked:
        Kubernetes accepts any annotation value). Nothing the input did not hold is added; a
        namespace the input has no object for keeps the planner's assumption (injected by its
        namespace, said in the step's manual lines) unless its pod templates carry their own."""
        cmds = []
        own = [w for w in workloads if w.kind != "Pod" and INJECT in dict(w.pod_annotations)]
        value = dict(record.annotations).get(INJECT) if record else \
            (None if own else "enabled")
        if value is not None:
            cmds.append(run("kubectl", "annotate", "namespace", ns, f"{INJECT}={value}",
                            "--overwrite"))
        cmds += [set_template_annotation(w, INJECT, dict(w.pod_annotations)[INJECT])
                 for w in own]
        return cmds

    def uninstall_commands(self) -> list[Command]:
        """Remove Linkerd (viz first, then the control plane and its CRDs)."""
        return [pipe(("linkerd", "viz", "uninstall"), ("kubectl", "delete", "-f", "-")),
                pipe(("linkerd", "uninstall"), ("kubectl", "delete", "-f", "-"))]

    def extension_uninstall(self, features: Sequence[FeatureUse]) -> list[Command]:
        """The multicluster extension goes before the control plane when the input shows it
        (Links, mirrored Services, failover splits): ``linkerd uninstall`` is run after the
        extensions, and ``linkerd multicluster uninstall`` only once no Link is left (the
        cleanup has deleted them by then)."""
        # fact: linkerd.multicluster-uninstall
        if not any(u.feature == "multicluster" for u in features):
            return []
        return [pipe(("linkerd", "multicluster", "uninstall"), ("kubectl", "delete", "-f", "-"),
                     note="removes the mirrored Services: calls to other clusters through them "
                          "stop; before Linkerd 2.18 unlink each cluster first (linkerd "
                          "multicluster unlink --cluster-name=<name> | kubectl delete -f -)")]

    def extension_reinstall(self, features: Sequence[FeatureUse]) -> list[Command | str]:
        """Rollback of :meth:`extension_uninstall`: the extension, then the links by hand."""
        if not any(u.feature == "multicluster" for u in features):
            return []
        return [pipe(("linkerd", "multicluster", "install"), ("kubectl", "apply", "-f", "-")),
                "Link the other clusters again: linkerd --context=<other> multicluster link "
                "--cluster-name=<other> | kubectl apply -f - for each (the Links' credentials "
                "went with the extension)."]

    def reinstall_commands(self) -> list[Command]:
        """Rollback of the uninstall."""
        return [pipe(("linkerd", "install", "--crds"), ("kubectl", "apply", "-f", "-")),
                pipe(("linkerd", "install"), ("kubectl", "apply", "-f", "-"),
                     note="with your identity issuer; then re-apply the rollback/ folder")]

    # -- target role -------------------------------------------------------------------------
    # fact: linkerd.init-capabilities
    CNI_PLUGIN = "the Linkerd CNI plugin (linkerd-cni; https://linkerd.io/2/features/cni/)"
    CNI_DAEMONSETS = ("linkerd-cni",)
    OWN_PREFIXES = ("linkerd-",)

    def install_commands(self, experimental: bool, version: str = "2.20",
                         cni: bool = False) -> list[Command]:
        """Install the Gateway API bundle both meshes accept, then Linkerd."""
        return install_commands(experimental, version, cni)

    def trust_manual(self) -> list[str]:
        """``linkerd install`` makes a trust anchor nothing rotates."""
        # fact: linkerd.trust-anchor
        return [
            "Decide the trust anchor before `linkerd install`: without the --identity-* flags "
            "it generates one self-signed certificate, valid for one year, that serves as both "
            "trust anchor and issuer, and nothing rotates it; meshed connections fail once it "
            "expires, and replacing it is a trust-anchor rotation. For "
            "production create your own (https://linkerd.io/2/tasks/generate-certificates/), "
            "add --identity-trust-anchors-file, --identity-issuer-certificate-file and "
            "--identity-issuer-key-file to the `linkerd install` below, and automate the "
            "issuer's rotation (https://linkerd.io/2/tasks/"
            "automatically-rotating-control-plane-tls-credentials/). `linkerd check` warns "
            "60 days before expiry."]

    def install_verify(self) -> list[Command]:
        """Checks after installing."""
        return install_verify()

    def install_rollback(self) -> list[Command]:
        """Rollback of the install."""
        return self.uninstall_commands()

    def join_commands(self, ns: str, annotations: dict[str, str],
                      workloads: list[Workload]) -> list[Command]:
        """Let Linkerd inject a namespace's pods (takes effect on restart)."""
        extra = [f"{k}={v}" for k, v in sorted(annotations.items())]
        return [run("kubectl", "annotate", "namespace", ns, "linkerd.io/inject=enabled", *extra,
                    "--overwrite")]

    def unjoin_commands(self, ns: str, annotations: dict[str, str],
                        workloads: list[Workload]) -> list[Command]:
        """Rollback of :meth:`join_commands`."""
        extra = [f"{k}-" for k in sorted(annotations)]
        return [run("kubectl", "annotate", "namespace", ns, "linkerd.io/inject-", *extra)]

    def verify_joined(self, ns: str, workloads: list[str], policy: bool) -> list[Command]:
        """Checks after a namespace's pods restarted under Linkerd."""
        # viz stat names each workload by its kind: `deploy` alone shows nothing for a
        # namespace of StatefulSets or DaemonSets.
        cmds = [run("linkerd", "check", "--proxy", "--namespace", ns)]
        cmds += [run("linkerd", "viz", "stat", "-n", ns, w,
                     note="meshed, success rate as before") for w in workloads]
        cmds.append(run("kubectl", "get", "httproutes.policy.linkerd.io", "-n", ns, "-o",
                        'jsonpath={range .items[*]}{.metadata.name}{" Accepted="}'
                        '{.status.parents[*].conditions[?(@.type=="Accepted")].status}'
                        '{"\\n"}{end}', note="every route Accepted=True"))
        if policy:
            cmds += [run("linkerd", "viz", "authz", "-n", ns, w,
                         note="unauthorized requests: callers the policy refuses")
                     for w in workloads]
        return cmds

    def verify_enforced(self, ns: str, workloads: list[str],
                        enforced: Sequence[Manifest] = ()) -> list[Command]:
        """Checks after policy starts refusing requests, per workload (by its kind)."""
        return [cmd for w in workloads for cmd in (
            run("linkerd", "viz", "authz", "-n", ns, w,
                note="no unexpected unauthorized requests"),
            run("linkerd", "viz", "stat", "-n", ns, w, note="success rate unchanged"))]

    def ingress_manual(self, source: Coexistence) -> list[str]:
        """Linkerd has no ingress controller of its own."""
        return [
            "Install a Gateway API ingress controller and annotate its namespace with "
            "linkerd.io/inject=ingress.",
            f"Recreate each listener and route of {source.INGRESS} as a Gateway API Gateway and "
            "HTTPRoutes with that Gateway as parent (see the ingress losses below).",
            "Move DNS / the load balancer to the new controller and watch its success rate.",
        ]

    def ingress_verify(self) -> list[Command]:
        """The new controller is programmed and meshed."""
        return [run("kubectl", "get", "gateways.gateway.networking.k8s.io", "-A",
                    note="Programmed=True"),
                run("linkerd", "viz", "stat", "deploy", "-n", "<ingress namespace>",
                    note="meshed, traffic flowing")]

    def cleanup_summary(self, source: Coexistence) -> str:
        """Routes take their long-term form; the source goes."""
        return (f"{source.TITLE} is no longer in the data path. The coexistence-only "
                "policy.linkerd.io HTTPRoutes are replaced by gateway.networking.k8s.io ones "
                f"(Istio would have read those too while it ran), the remaining {source.TITLE} "
                f"objects are deleted and {source.TITLE} is uninstalled.")

    def cleanup_verify(self) -> list[Command]:
        """Linkerd healthy, every long-term route accepted."""
        return [run("linkerd", "check"),
                run("kubectl", "get", "httproutes.gateway.networking.k8s.io", "-A",
                    note="every route Accepted")]


def install_commands(experimental: bool, version: str = "2.20", cni: bool = False
                     ) -> list[Command]:
    """Install the Gateway API bundle both meshes accept, then Linkerd (with ``cni``, its CNI
    plugin first: the DaemonSet must run before the control plane is installed)."""
    channel = "experimental-install.yaml" if experimental else "standard-install.yaml"
    bundle = gateway_api_bundle(version)
    # fact: linkerd.init-capabilities
    with_cni = ("--linkerd-cni-enabled",) if cni else ()
    plugin = [pipe(("linkerd", "install-cni"), ("kubectl", "apply", "-f", "-")),
              run("kubectl", "-n", "linkerd-cni", "rollout", "status", "daemonset/linkerd-cni",
                  "--timeout=5m")] if cni else []
    return [
        bundle_guard(bundle, experimental),
        run("kubectl", "apply", "--server-side", "-f", "https://github.com/kubernetes-sigs/"
            f"gateway-api/releases/download/{bundle}/{channel}",
            note="" if bundle == "v1.5.1" else "check the Istio version in use accepts this "
            "bundle (Istio 1.30 needs 1.5.0+ for TLSRoute)"),
        *plugin,
        run("linkerd", "check", "--pre", *with_cni),
        pipe(("linkerd", "install", "--crds"), ("kubectl", "apply", "-f", "-")),
        pipe(("linkerd", "install", *with_cni), ("kubectl", "apply", "-f", "-")),
        run("linkerd", "check"),
        pipe(("linkerd", "viz", "install"), ("kubectl", "apply", "-f", "-"),
             note="used by the verification commands"),
    ]


def install_verify() -> list[Command]:
    """Checks after installing."""
    return [
        run("linkerd", "check"),
        run("kubectl", "get", "crd", "servers.policy.linkerd.io", "httproutes.policy.linkerd.io",
            "httproutes.gateway.networking.k8s.io"),
        run("kubectl", "get", "serviceprofiles.linkerd.io", "-A",
            note="expect none: a ServiceProfile overrides the HTTPRoutes, retries and timeouts "
            "of its Service"),
    ]








LINKERD = LinkerdCoexistence()
