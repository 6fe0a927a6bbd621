"""Istio's side of a coexistence window, as the source (how a namespace leaves Istio, what
must be neutralized first, which objects may go when, how Istio is removed) and as the target
(install, join, staged and enforced policy, ingress).

Facts (../shared/reference/mapping-istio-linkerd.md sections 1.1, 4, 5):
- injection is decided at pod creation by the namespace label ``istio-injection`` or
  ``istio.io/rev`` and the pod label ``sidecar.istio.io/inject``; a restart applies a change;
- an explicit ``tls.mode: ISTIO_MUTUAL`` makes Istio clients send Istio mTLS even to pods that
  have no Istio sidecar (auto-mTLS would send plaintext), which a Linkerd proxy passes through
  to the application unterminated; so it is removed before any namespace moves;
- VirtualServices and DestinationRules are applied by the *caller's* sidecar, so they stay
  until the last Istio caller of their hosts has moved; policies that configure a namespace's
  own sidecars (PeerAuthentication, AuthorizationPolicy, ...) can go once it has moved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from migrate.dialects.coexist import (
    Coexistence,
    Neutralized,
    remove_template_keys,
)
from migrate.dialects.gatewayapi.bundle import bundle_guard
from migrate.ir.model import Namespace, Workload
from migrate.losses import ObjectRef
from migrate.plan.commands import Command, pipe, run
from migrate.sources.model import RawObject, strip_noise

if TYPE_CHECKING:
    from migrate.dialects.base import Manifest

INBOUND_KINDS = frozenset({"PeerAuthentication", "AuthorizationPolicy", "RequestAuthentication",
                           "Sidecar", "Telemetry", "EnvoyFilter", "WasmPlugin",
                           "TrafficExtension", "ProxyConfig", "WorkloadEntry", "WorkloadGroup"})
ROUTING_KINDS = frozenset({"VirtualService", "DestinationRule"})
# Injection keys Istio reads on namespaces and pod templates (mapping-istio-linkerd.md 4).
_NAMESPACE_LABELS = ("istio-injection", "istio.io/rev", "istio.io/dataplane-mode")
_TEMPLATE_LABELS = ("sidecar.istio.io/inject", "istio.io/rev", "istio.io/dataplane-mode")


def neutralize_mesh_tls(raw: dict[ObjectRef, RawObject]) -> list[tuple[dict[str, Any], RawObject]]:
    """DestinationRules with ``tls.mode: ISTIO_MUTUAL`` rewritten without it.

    Returns (rewritten body, original) pairs. Subset and port-level TLS settings are removed
    too; a traffic policy left empty is dropped.
    """
    out = []
    for ref in sorted(raw):
        obj = raw[ref]
        if ref.kind != "DestinationRule" or not _mentions(obj.body, "ISTIO_MUTUAL"):
            continue
        # strip_noise copies every mapping and list, so the rewrite below leaves the source
        # body (still needed for rollback and verification) as it was read.
        body = strip_noise(obj.body)
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        changed = _drop_mesh_tls(spec, "trafficPolicy")
        subsets = spec.get("subsets")
        for subset in subsets if isinstance(subsets, list) else []:
            if isinstance(subset, dict):
                changed |= _drop_mesh_tls(subset, "trafficPolicy")
        policy = spec.get("trafficPolicy")
        levels = policy.get("portLevelSettings") if isinstance(policy, dict) else None
        for level in levels if isinstance(levels, list) else []:
            if isinstance(level, dict) and isinstance(level.get("tls"), dict) and \
                    level["tls"].get("mode") == "ISTIO_MUTUAL":
                del level["tls"]
                changed = True
        if changed:
            out.append((body, obj))
    return out


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The mappings of a list field (anything else in it, or a non-list, counts as none)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _mentions(value: Any, text: str) -> bool:
    """Whether ``text`` is a value anywhere in a parsed body: a cheap test before copying."""
    if isinstance(value, dict):
        return any(_mentions(v, text) for v in value.values())
    if isinstance(value, list):
        return any(_mentions(v, text) for v in value)
    return value == text


def _drop_mesh_tls(holder: dict[str, Any], key: str) -> bool:
    policy = holder.get(key)
    if not isinstance(policy, dict):
        return False
    tls = policy.get("tls")
    if isinstance(tls, dict) and tls.get("mode") == "ISTIO_MUTUAL":
        del policy["tls"]
        if not policy:
            del holder[key]
        return True
    return False


class IstioCoexistence(Coexistence):
    """Istio 1.26-1.30 (sidecar mode; ambient namespaces are handled as far as labels go)."""

    MESH = "istio"
    TITLE = "Istio"
    CONTROL_NAMESPACE = "istio-system"
    GROUP_SUFFIXES = ("istio.io",)
    INBOUND_KINDS = INBOUND_KINDS
    PROXY_CONTAINER = "istio-proxy"
    # The pod label sidecar.istio.io/inject: "false" wins over a namespace's
    # istio-injection=enabled (istio.io/latest/docs/setup/additional-setup/sidecar-injection/
    # #controlling-the-injection-policy).
    KEEP_OUT = ("labels", "sidecar.istio.io/inject", "false")
    INGRESS = "the Istio ingress gateway"
    STAGED_POLICY = ("PeerAuthentication PERMISSIVE and AuthorizationPolicies that still admit "
                     "plaintext callers without an identity")
    ENFORCED_POLICY = ("PeerAuthentication turns STRICT and the plaintext allowances are "
                       "removed, so only mesh identities the source allowed get in")
    # Istio implements GAMMA: Service-parented routes become mesh VirtualServices
    # (pilot/pkg/config/kube/gateway route_collections.go).
    READS_MESH_GATEWAY_ROUTES = True

    # -- source role -------------------------------------------------------------------------
    def neutralize(self, raw: dict[ObjectRef, RawObject]) -> list[Neutralized]:
        """ISTIO_MUTUAL DestinationRules (see the module docstring)."""
        return [Neutralized(body, obj) for body, obj in neutralize_mesh_tls(raw)]

    def neutralize_summary(self, count: int) -> str:
        """Why DestinationRules are rewritten."""
        return (f" Rewrites {count} DestinationRule(s) without `tls.mode: ISTIO_MUTUAL`: "
                "with it, Istio clients would send Istio mTLS to pods that moved to the other "
                "mesh, whose proxy cannot terminate it. Istio's auto-mTLS keeps Istio-to-Istio "
                "traffic encrypted.")

    def mesh_wide_refs(self, refs: list[ObjectRef]) -> list[ObjectRef]:
        """Root-namespace DestinationRules, EnvoyFilters and Sidecars apply to every host."""
        return [r for r in refs if r.kind in ("DestinationRule", "EnvoyFilter", "Sidecar")
                and self.owns(r)]

    def leave_commands(self, ns: str, record: Namespace | None,
                       workloads: list[Workload]) -> list[Command]:
        """Drop Istio's namespace labels and pod-template injection labels."""
        cmds = [run("kubectl", "label", "namespace", ns, *(f"{k}-" for k in _NAMESPACE_LABELS))]
        for w in workloads:
            cmds += remove_template_keys(w, "labels", list(_TEMPLATE_LABELS))
        return cmds

    def rejoin_commands(self, ns: str, record: Namespace | None,
                        workloads: list[Workload]) -> list[Command]:
        """Give a namespace back to Istio injection."""
        labels = dict(record.labels) if record else {}
        if "istio.io/rev" in labels:
            return [run("kubectl", "label", "namespace", ns,
                        f"istio.io/rev={labels['istio.io/rev']}", "--overwrite")]
        if labels.get("istio.io/dataplane-mode") == "ambient":
            return [run("kubectl", "label", "namespace", ns, "istio.io/dataplane-mode=ambient",
                        "--overwrite")]
        return [run("kubectl", "label", "namespace", ns, "istio-injection=enabled",
                    "--overwrite")]

    CNI_DAEMONSETS = ("istio-cni-node",)
    OWN_PREFIXES = ("istiod", "istio-")
    # fact: istio.init-capabilities
    CNI_PLUGIN = ("the Istio CNI plugin (istio-cni-node; https://istio.io/latest/docs/setup/"
                  "additional-setup/pod-security-admission/; istio-system itself must allow "
                  "the privileged level the DaemonSet needs)")

    def delete_control_namespace(self) -> Command:
        """``istioctl uninstall`` leaves istio-system; Istio's uninstall guide deletes it."""
        return run("kubectl", "delete", "namespace", "istio-system", "--ignore-not-found")

    def ingress_manual_extra(self, raw: dict[ObjectRef, RawObject]) -> list[str]:
        """The TLS secrets Istio Gateways serve (``servers[].tls.credentialName``, read by the
        gateway from its own namespace) and the CORS policies of the VirtualServices bound to
        them: the new ingress needs both, and neither is a listener or a route."""
        secrets, cors = set(), set()
        for ref in sorted(raw):
            spec = raw[ref].body.get("spec")
            if not isinstance(spec, dict) or not self.owns(ref):
                continue
            if ref.kind == "Gateway":
                for server in _dicts(spec.get("servers")):
                    tls = server.get("tls")
                    name = tls.get("credentialName") if isinstance(tls, dict) else None
                    if isinstance(name, str) and name:
                        secrets.add(f"{ref.namespace}/{name} (Gateway {ref.name})")
            elif ref.kind == "VirtualService":
                gateways = spec.get("gateways")
                bound = [g for g in gateways if isinstance(g, str) and g != "mesh"] \
                    if isinstance(gateways, list) else []
                if bound and any("corsPolicy" in rule for rule in _dicts(spec.get("http"))):
                    cors.add(f"{ref.namespace}/{ref.name}")
        notes = []
        if secrets:
            notes.append("TLS secrets the Istio gateways serve (the gateway reads them from "
                         "its own namespace): " + ", ".join(sorted(secrets)) + ". Copy each "
                         "to the new ingress's namespace before DNS moves (a ReferenceGrant "
                         "to them would break when the cleanup deletes istio-system).")
        if cors:
            notes.append("VirtualServices bound to an ingress gateway answer CORS preflights "
                         "(corsPolicy): " + ", ".join(sorted(cors)) + ". Configure the same "
                         "CORS policy on the new ingress, or browsers will refuse "
                         "cross-origin calls after the switch.")
        return notes

    def uninstall_commands(self) -> list[Command]:
        """Remove Istio once nothing uses it."""
        return [run("istioctl", "uninstall", "--purge", "-y"),
                self.delete_control_namespace(),
                pipe(("kubectl", "get", "crd", "-o", "name"), ("grep", "-E", "istio\\.io"),
                     ("xargs", "-r", "kubectl", "delete"))]

    def reinstall_commands(self) -> list[Command]:
        """Rollback of the uninstall."""
        return [run("istioctl", "install", "-y", "--set", "revision=<your revision>",
                    note="then re-apply the rollback/ folder")]

    # -- target role -------------------------------------------------------------------------
    def install_commands(self, experimental: bool, version: str,
                         cni: bool = False) -> list[Command]:
        """Gateway API CRDs Istio 1.30 accepts (1.5.x), then istiod (sidecar mode; with
        ``cni``, with the Istio CNI plugin instead of the istio-init container).

        Istio 1.30 refuses TLSRoute CRDs older than Gateway API 1.5.0
        (mapping-istio-linkerd.md section 0), so 1.5.1 is installed.
        """
        channel = "experimental-install.yaml" if experimental else "standard-install.yaml"
        return [
            bundle_guard("v1.5.1", experimental),
            run("kubectl", "apply", "--server-side", "-f", "https://github.com/kubernetes-sigs/"
                f"gateway-api/releases/download/v1.5.1/{channel}"),
            run("istioctl", "x", "precheck"),
            run("istioctl", "install", "-y", "--set", "profile=minimal", "--set",
                f"tag={version}.0", *(("--set", "components.cni.enabled=true") if cni else ()),
                note="pin the patch release you run"),
            run("kubectl", "-n", "istio-system", "rollout", "status", "deploy/istiod",
                "--timeout=5m"),
        ]

    def trust_manual(self) -> list[str]:
        """istiod's self-signed root."""
        # fact: istio.self-signed-ca
        return [
            "Decide the root of trust before `istioctl install`: without a `cacerts` secret in "
            "istio-system, istiod generates a self-signed root (secret istio-ca-secret, valid "
            "for 10 years) and signs every workload certificate with it. For production plug "
            "in an intermediate CA of your own first (https://istio.io/latest/docs/tasks/"
            "security/cert-management/plugin-ca-cert/): changing the root later is a rotation "
            "every workload must follow."]

    def install_verify(self) -> list[Command]:
        """istiod is up and the configuration analyses clean."""
        return [run("kubectl", "-n", "istio-system", "get", "deploy", "istiod",
                    note="Available"),
                run("istioctl", "analyze", "-A",
                    note="no errors on the objects applied so far")]

    def install_rollback(self) -> list[Command]:
        """Rollback of the install."""
        return [run("istioctl", "uninstall", "--purge", "-y"),
                run("kubectl", "delete", "namespace", "istio-system", "--ignore-not-found")]

    def join_commands(self, ns: str, annotations: dict[str, str],
                      workloads: list[Workload]) -> list[Command]:
        """Label the namespace for sidecar injection (read at pod creation)."""
        return [run("kubectl", "label", "namespace", ns, "istio-injection=enabled",
                    "--overwrite")]

    def unjoin_commands(self, ns: str, annotations: dict[str, str],
                        workloads: list[Workload]) -> list[Command]:
        """Rollback of :meth:`join_commands`."""
        return [run("kubectl", "label", "namespace", ns, "istio-injection-")]

    def enforce_commands(self, ns: str, annotations: dict[str, str]) -> list[Command]:
        """Istio policy is objects, applied by the enforce step's manifests."""
        return []

    def verify_joined(self, ns: str, workloads: list[str], policy: bool) -> list[Command]:
        """Sidecars present and in sync with istiod."""
        cmds = [pipe(("istioctl", "proxy-status"), ("grep", f"\\.{ns} "),
                     note="every pod SYNCED"),
                run("istioctl", "analyze", "-n", ns, note="no errors")]
        if policy:
            cmds += [run("istioctl", "x", "authz", "check", w, "-n", ns,
                         note="the staged rules are loaded") for w in workloads]
        return cmds

    def enforced_policy(self, enforced: Sequence[Manifest]) -> str:
        """:attr:`ENFORCED_POLICY`, without the STRICT clause when the step writes no STRICT
        PeerAuthentication (the source admitted plaintext, so mTLS stays PERMISSIVE)."""
        if _strict(enforced):
            return self.ENFORCED_POLICY
        return ("the plaintext allowances are removed, so only callers the source allowed get "
                "in; mTLS stays PERMISSIVE, as the source admitted plaintext")

    def verify_enforced(self, ns: str, workloads: list[str],
                        enforced: Sequence[Manifest] = ()) -> list[Command]:
        """After enforcing: the STRICT PeerAuthentication the step wrote, if it wrote one
        (a source that admitted plaintext keeps PERMISSIVE, and then no STRICT object
        exists to check), and the policies each pod gets."""
        strict = _strict(enforced)
        cmds = [run("kubectl", "get", "peerauthentication", name, "-n", ns,
                    "-o", "jsonpath={.spec.mtls.mode}", note="STRICT") for name in strict]
        return cmds + [run("istioctl", "x", "describe", "pod", "<a pod>", "-n", ns,
                           note="mTLS STRICT, policies listed" if strict else
                           "policies listed")]

    def ingress_manual(self, source: Coexistence) -> list[str]:
        """Istio serves ingress with its own gateway or Gateway API class ``istio``."""
        return [
            "Deploy an Istio ingress gateway (Gateway API Gateway with gatewayClassName istio, "
            "or the istio-ingressgateway chart).",
            f"Recreate each listener and route of {source.INGRESS} on it (see the ingress "
            "losses below).",
            "Move DNS / the load balancer to the new gateway and watch its success rate.",
        ]

    def ingress_verify(self) -> list[Command]:
        """The new gateway is programmed and healthy."""
        return [run("kubectl", "get", "gateways.gateway.networking.k8s.io", "-A",
                    note="Programmed=True"),
                run("istioctl", "proxy-status", note="the gateway pods SYNCED")]

    def cleanup_verify(self) -> list[Command]:
        """Istio configuration analyses clean once the source is gone."""
        return [run("istioctl", "analyze", "-A", note="no errors"),
                run("istioctl", "proxy-status", note="every pod SYNCED")]


ISTIO = IstioCoexistence()


def _strict(manifests: Sequence[Manifest]) -> list[str]:
    """Names of the STRICT PeerAuthentications among ``manifests``, sorted."""
    return sorted(m.name for m in manifests if m.kind == "PeerAuthentication"
                  and (m.body.get("spec") or {}).get("mtls", {}).get("mode") == "STRICT")
