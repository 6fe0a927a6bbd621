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

from migrate.dialects.coexist import Coexistence, RouteHandover, remove_template_keys
from migrate.dialects.linkerd.handover import hand_over_mesh_routes
from migrate.ir.model import Namespace, Workload
from migrate.losses import ObjectRef
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
    INGRESS = "the ingress controller meshed with linkerd.io/inject: ingress"
    STAGED_POLICY = ("Servers in `audit`: refused requests are logged, not refused")
    ENFORCED_POLICY = ("Servers leave `audit` and the STRICT default applies to restarted pods")
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
                       workloads: list[Workload]) -> list[str]:
        """Drop ``linkerd.io/inject`` from the namespace and the pod templates."""
        cmds = [f"kubectl annotate namespace {ns} linkerd.io/inject-"]
        for w in workloads:
            cmds += remove_template_keys(w, "annotations", ["linkerd.io/inject"])
        return cmds

    def rejoin_commands(self, ns: str, record: Namespace | None,
                        workloads: list[Workload]) -> list[str]:
        """Put the namespace's injection annotation back as it was."""
        value = dict(record.annotations).get("linkerd.io/inject", "enabled") if record else \
            "enabled"
        return [f"kubectl annotate namespace {ns} linkerd.io/inject={value} --overwrite"]

    def uninstall_commands(self) -> list[str]:
        """Remove Linkerd (viz first, then the control plane and its CRDs)."""
        return ["linkerd viz uninstall | kubectl delete -f -",
                "linkerd uninstall | kubectl delete -f -"]

    def reinstall_note(self) -> str:
        """Rollback of the uninstall."""
        return ("linkerd install --crds | kubectl apply -f - && linkerd install | kubectl apply "
                "-f -  # with your identity issuer; then re-apply the rollback/ folder")

    # -- target role -------------------------------------------------------------------------
    def install_commands(self, experimental: bool, version: str = "2.20") -> list[str]:
        """Install the Gateway API bundle both meshes accept, then Linkerd."""
        return install_commands(experimental, version)

    def install_verify(self) -> list[str]:
        """Checks after installing."""
        return install_verify()

    def install_rollback(self) -> list[str]:
        """Rollback of the install."""
        return self.uninstall_commands()

    def join_commands(self, ns: str, annotations: dict[str, str],
                      workloads: list[Workload]) -> list[str]:
        """Let Linkerd inject a namespace's pods (takes effect on restart)."""
        extra = "".join(f" {k}={v}" for k, v in sorted(annotations.items()))
        return [f"kubectl annotate namespace {ns} linkerd.io/inject=enabled{extra} --overwrite"]

    def unjoin_commands(self, ns: str, annotations: dict[str, str],
                        workloads: list[Workload]) -> list[str]:
        """Rollback of :meth:`join_commands`."""
        extra = "".join(f" {k}-" for k in sorted(annotations))
        return [f"kubectl annotate namespace {ns} linkerd.io/inject-{extra}"]

    def verify_joined(self, ns: str, workloads: list[str], policy: bool) -> list[str]:
        """Checks after a namespace's pods restarted under Linkerd."""
        cmds = [f"linkerd check --proxy --namespace {ns}",
                f"linkerd viz stat deploy -n {ns}  # every workload meshed, success rate as before",
                f"kubectl get httproutes.policy.linkerd.io -n {ns}  # every route Accepted"]
        if policy:
            cmds += [f"linkerd viz authz -n {ns} {w}  # audit hits: callers a policy would refuse"
                     for w in workloads]
        return cmds

    def verify_enforced(self, ns: str) -> list[str]:
        """Checks after policy starts refusing requests."""
        return [f"linkerd viz authz -n {ns} deploy  # no unexpected unauthorized requests",
                f"linkerd viz stat deploy -n {ns}  # success rates unchanged"]

    def ingress_manual(self, source: Coexistence) -> list[str]:
        """Linkerd has no ingress controller of its own."""
        return [
            "Install a Gateway API ingress controller and annotate its namespace with "
            "linkerd.io/inject=ingress.",
            f"Recreate each listener and route of {source.INGRESS} as a Gateway API Gateway and "
            "HTTPRoutes with that Gateway as parent (see the ingress losses below).",
            "Move DNS / the load balancer to the new controller and watch its success rate.",
        ]

    def ingress_verify(self) -> list[str]:
        """The new controller is programmed and meshed."""
        return ["kubectl get gateways.gateway.networking.k8s.io -A  # Programmed=True",
                "linkerd viz stat deploy -n <ingress namespace>  # meshed, traffic flowing"]

    def cleanup_summary(self, source: Coexistence) -> str:
        """Routes take their long-term form; the source goes."""
        return (f"{source.TITLE} is no longer in the data path. The coexistence-only "
                "policy.linkerd.io HTTPRoutes are replaced by gateway.networking.k8s.io ones "
                f"(Istio would have read those too while it ran), the remaining {source.TITLE} "
                f"objects are deleted and {source.TITLE} is uninstalled.")

    def cleanup_verify(self) -> list[str]:
        """Linkerd healthy, every long-term route accepted."""
        return ["linkerd check", "kubectl get httproutes.gateway.networking.k8s.io -A  "
                "# every route Accepted"]


def install_commands(experimental: bool, version: str = "2.20") -> list[str]:
    """Install the Gateway API bundle both meshes accept, then Linkerd."""
    channel = "experimental-install.yaml" if experimental else "standard-install.yaml"
    bundle = gateway_api_bundle(version)
    return [
        "kubectl apply --server-side -f https://github.com/kubernetes-sigs/gateway-api/releases/"
        f"download/{bundle}/{channel}"
        + ("" if bundle == "v1.5.1" else "  # check the Istio version in use accepts this "
           "bundle (Istio 1.30 needs 1.5.0+ for TLSRoute)"),
        "linkerd check --pre",
        "linkerd install --crds | kubectl apply -f -",
        "linkerd install | kubectl apply -f -",
        "linkerd check",
        "linkerd viz install | kubectl apply -f -  # used by the verification commands",
    ]


def install_verify() -> list[str]:
    """Checks after installing."""
    return [
        "linkerd check",
        "kubectl get crd servers.policy.linkerd.io httproutes.policy.linkerd.io "
        "httproutes.gateway.networking.k8s.io",
        "kubectl get serviceprofiles.linkerd.io -A  # expect none: a ServiceProfile overrides "
        "the HTTPRoutes, retries and timeouts of its Service",
    ]








LINKERD = LinkerdCoexistence()
