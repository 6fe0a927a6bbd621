"""Linkerd's side of a coexistence window: install, join a namespace, verify, enforce.

Facts (../shared/reference/mapping-istio-linkerd.md sections 0, 1.2, 4, 5):
- Linkerd 2.19+ no longer installs Gateway API CRDs; 2.20 supports bundles 1.2.1-1.5.1 and
  Istio 1.30 accepts 1.5.1, so that bundle serves both while they coexist (experimental
  channel when TCP/TLS routes are used);
- ``linkerd.io/inject`` and ``config.linkerd.io/default-inbound-policy`` are read at pod
  creation (a restart applies them); Server ``accessPolicy`` changes apply immediately;
- a ServiceProfile for a Service silently overrides its HTTPRoutes, retries and timeouts.
"""

from __future__ import annotations


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


def uninstall_commands() -> list[str]:
    """Rollback of the install."""
    return ["linkerd viz uninstall | kubectl delete -f -",
            "linkerd uninstall | kubectl delete -f -"]


def join_commands(ns: str, annotations: dict[str, str]) -> list[str]:
    """Let Linkerd inject a namespace's pods (takes effect on restart)."""
    extra = "".join(f" {k}={v}" for k, v in sorted(annotations.items()))
    return [f"kubectl annotate namespace {ns} linkerd.io/inject=enabled{extra} --overwrite"]


def leave_commands(ns: str, annotations: dict[str, str]) -> list[str]:
    """Rollback of :func:`join_commands`."""
    extra = "".join(f" {k}-" for k in sorted(annotations))
    return [f"kubectl annotate namespace {ns} linkerd.io/inject-{extra}"]


def enforce_commands(ns: str, annotations: dict[str, str]) -> list[str]:
    """Set the namespace's final default policy (read at pod creation)."""
    if not annotations:
        return []
    values = " ".join(f"{k}={v}" for k, v in sorted(annotations.items()))
    return [f"kubectl annotate namespace {ns} {values} --overwrite"]


def verify_joined(ns: str, workloads: list[str], policy: bool) -> list[str]:
    """Checks after a namespace's pods restarted under Linkerd."""
    cmds = [f"linkerd check --proxy --namespace {ns}",
            f"linkerd viz stat deploy -n {ns}  # every workload meshed, success rate as before",
            f"kubectl get httproutes.policy.linkerd.io -n {ns}  # every route Accepted"]
    if policy:
        cmds += [f"linkerd viz authz -n {ns} {w}  # audit hits: callers a policy would refuse"
                 for w in workloads]
    return cmds


def verify_enforced(ns: str) -> list[str]:
    """Checks after policy starts refusing requests."""
    return [f"linkerd viz authz -n {ns} deploy  # no unexpected unauthorized requests",
            f"linkerd viz stat deploy -n {ns}  # success rates unchanged"]
