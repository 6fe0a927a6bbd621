"""Istio's side of a coexistence window: how a namespace leaves Istio, what must be
neutralized first, which objects may go when, and how Istio is removed at the end.

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

import copy
from typing import Any

from migrate.ir.model import Namespace, Workload
from migrate.losses import ObjectRef
from migrate.sources.model import RawObject, strip_noise

INBOUND_KINDS = frozenset({"PeerAuthentication", "AuthorizationPolicy", "RequestAuthentication",
                           "Sidecar", "Telemetry", "EnvoyFilter", "WasmPlugin",
                           "TrafficExtension", "ProxyConfig", "WorkloadEntry", "WorkloadGroup"})
ROUTING_KINDS = frozenset({"VirtualService", "DestinationRule"})
_GROUP = {"VirtualService": "networking.istio.io", "DestinationRule": "networking.istio.io",
          "Gateway": "networking.istio.io", "ServiceEntry": "networking.istio.io",
          "Sidecar": "networking.istio.io", "WorkloadEntry": "networking.istio.io",
          "WorkloadGroup": "networking.istio.io", "EnvoyFilter": "networking.istio.io",
          "ProxyConfig": "networking.istio.io", "PeerAuthentication": "security.istio.io",
          "AuthorizationPolicy": "security.istio.io",
          "RequestAuthentication": "security.istio.io", "Telemetry": "telemetry.istio.io",
          "WasmPlugin": "extensions.istio.io", "TrafficExtension": "extensions.istio.io"}


def is_istio(ref: ObjectRef) -> bool:
    """Whether an object belongs to one of Istio's own API groups."""
    return ref.api_version.split("/")[0].endswith("istio.io")


def resource(ref: ObjectRef) -> str:
    """``kind.group/name`` as kubectl addresses it without ambiguity."""
    group = _GROUP.get(ref.kind) or (ref.api_version.split("/")[0] if "/" in ref.api_version
                                     else "")
    kind = ref.kind.lower()
    return f"{kind}.{group}/{ref.name}" if group else f"{kind}/{ref.name}"


def delete_command(ref: ObjectRef) -> str:
    """Delete one source object (idempotent)."""
    ns = f" -n {ref.namespace}" if ref.namespace else ""
    return f"kubectl delete {resource(ref)}{ns} --ignore-not-found"


def neutralize_mesh_tls(raw: dict[ObjectRef, RawObject]) -> list[tuple[dict[str, Any], RawObject]]:
    """DestinationRules with ``tls.mode: ISTIO_MUTUAL`` rewritten without it.

    Returns (rewritten body, original) pairs. Subset and port-level TLS settings are removed
    too; a traffic policy left empty is dropped.
    """
    out = []
    for ref in sorted(raw):
        obj = raw[ref]
        if ref.kind != "DestinationRule":
            continue
        body = strip_noise(copy.deepcopy(obj.body))
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


def leave_commands(ns: str, record: Namespace | None, workloads: list[Workload]) -> list[str]:
    """Commands that stop Istio injecting a namespace's pods (applied on restart)."""
    cmds = [f"kubectl label namespace {ns} istio-injection- istio.io/rev- "
            "istio.io/dataplane-mode-"]
    for w in workloads:
        labels = dict(w.pod_labels)
        template = "/spec/template/metadata/labels" if w.kind != "CronJob" else \
            "/spec/jobTemplate/spec/template/metadata/labels"
        for key in ("sidecar.istio.io/inject", "istio.io/rev", "istio.io/dataplane-mode"):
            if key in labels and w.kind != "Pod":
                pointer = key.replace("~", "~0").replace("/", "~1")
                cmds.append(f"kubectl patch {w.kind.lower()} {w.name} -n {ns} --type=json "
                            f"-p '[{{\"op\":\"remove\",\"path\":\"{template}/{pointer}\"}}]'")
    return cmds


def rejoin_commands(ns: str, record: Namespace | None) -> list[str]:
    """Commands that give a namespace back to Istio injection (rollback)."""
    labels = dict(record.labels) if record else {}
    if "istio.io/rev" in labels:
        return [f"kubectl label namespace {ns} istio.io/rev={labels['istio.io/rev']} --overwrite"]
    if labels.get("istio.io/dataplane-mode") == "ambient":
        return [f"kubectl label namespace {ns} istio.io/dataplane-mode=ambient --overwrite"]
    return [f"kubectl label namespace {ns} istio-injection=enabled --overwrite"]


def verify_left(ns: str) -> list[str]:
    """Checks that no pod of the namespace still runs an Istio sidecar."""
    return [f"kubectl get pods -n {ns} -o jsonpath='{{range .items[*]}}{{.metadata.name}}"
            f"{{\": \"}}{{.spec.containers[*].name}}{{\"\\n\"}}{{end}}' | grep istio-proxy "
            "# expect no output"]


def uninstall_commands() -> list[str]:
    """Remove Istio once nothing uses it."""
    return ["istioctl uninstall --purge -y",
            "kubectl delete namespace istio-system --ignore-not-found",
            "kubectl get crd -o name | grep -E 'istio\\.io' | xargs -r kubectl delete"]


def reinstall_note() -> str:
    """Rollback of the uninstall."""
    return ("istioctl install -y --set revision=<your revision>  "
            "# then re-apply the rollback/ folder")
