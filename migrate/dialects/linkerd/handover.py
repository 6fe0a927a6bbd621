"""Linkerd's Service-parented Gateway API routes, moved out of a GAMMA target's sight for the
coexistence window.

Linkerd and Istio both apply ``gateway.networking.k8s.io`` routes whose parent is a Service
(GAMMA). While the two meshes run side by side, every such Linkerd route would also be
programmed into the Istio sidecars of moved callers, next to the VirtualService written for
the same host: Istio applies one mesh VirtualService per host (istioctl analyze IST0109) and
turns each GAMMA route into one of its own (istio/istio pilot/pkg/config/kube/gateway
route_collections.go), so which of the two wins is not defined. Worse, a route Linkerd ignores
because of a filter it does not support (URLRewrite, RequestMirror, CORS...) is applied by
Istio, which supports those filters (mapping-istio-linkerd.md 1.3).

Linkerd also reads the same routes in its own ``policy.linkerd.io/v1beta3`` flavour, which
Istio does not read (policy-controller ``outbound/index/http.rs`` indexes both flavours; fact
``linkerd.reads-both-route-flavours``). So the
prerequisites step re-creates each Service-parented HTTPRoute in that flavour and deletes the
Gateway API original, and deletes the routes Linkerd ignores outright (they do nothing under
Linkerd). Linkerd's routing is unchanged, provided the copy says exactly what Linkerd read:
- ``timeouts`` are kept when the source Linkerd reads them on the Gateway API flavour, from
  edge-25.11.3 / version-2.20 (linkerd2#14750; fact ``linkerd.gateway-rule-timeouts``): dropping
  them would take request timeouts away from Linkerd callers for the whole overlap. Before
  2.20 the Gateway API flavour ignored ``rules[].timeouts`` while the Linkerd flavour reads
  them, so there they are dropped (copying them would start enforcing timeouts Linkerd
  ignored). The source version comes from the caller; unknown, it is the newest Linkerd
  meshmigrate knows (mappings/linkerd.yaml ``default_version``). The ``timeout.linkerd.io`` and
  ``retry.linkerd.io`` annotations, which both flavours read, are always kept;
- a rule-level ResponseHeaderModifier, which the Linkerd flavour only has on backends, is
  moved onto each backend (the same responses pass through it); without a backend the route
  is not handed over;
- keys the Linkerd flavour lacks and Linkerd does not read (``sessionPersistence``, rule
  ``name``...) are left out.
GRPCRoute, TCPRoute and TLSRoute have no Linkerd flavour: they stay, and are reported.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from migrate import facts, mappings
from migrate.dialects.linkerd.read_routes import UNSUPPORTED_FILTERS
from migrate.losses import ObjectRef
from migrate.sources.model import RawObject, strip_noise

GATEWAY_GROUP = "gateway.networking.k8s.io"
POLICY_API = "policy.linkerd.io/v1beta3"
_RULE_KEYS = ("matches", "filters", "backendRefs")
_RULE_FILTERS = ("RequestHeaderModifier", "RequestRedirect")


@dataclass(frozen=True)
class Handover:
    """One Service-parented Gateway API route and what takes its place during the overlap."""

    original: RawObject
    replacement: dict[str, Any] | None
    """Its ``policy.linkerd.io`` copy; None when Linkerd ignores the route (it is deleted)."""


@dataclass(frozen=True)
class Kept:
    """A Service-parented route that cannot be moved out of the target's sight."""

    ref: ObjectRef
    reason: str


def hand_over_mesh_routes(raw: dict[ObjectRef, RawObject], source_version: str = ""
                          ) -> tuple[list[Handover], list[Kept]]:
    """The Service-parented Gateway API routes to hand over, and those that must stay.

    ``source_version`` is the running Linkerd's version (``"2.19"``); empty when unknown,
    which means the newest Linkerd of mappings/linkerd.yaml."""
    keep_timeouts = gateway_reads_timeouts(source_version)
    handed: list[Handover] = []
    kept: list[Kept] = []
    taken = {(r.namespace, r.name) for r in raw
             if r.kind == "HTTPRoute" and r.api_version.startswith("policy.linkerd.io/")}
    for ref in sorted(raw):
        obj = raw[ref]
        spec = obj.body.get("spec")
        if obj.group != GATEWAY_GROUP or not isinstance(spec, dict) or not _service_parent(spec):
            continue
        if ref.kind != "HTTPRoute":
            kept.append(Kept(ref, f"Linkerd has no policy.linkerd.io flavour of {ref.kind}"))
            continue
        if _filter_types(spec) & set(UNSUPPORTED_FILTERS):
            handed.append(Handover(obj, None))
            continue
        if (ref.namespace, ref.name) in taken:
            kept.append(Kept(ref, "a policy.linkerd.io HTTPRoute already has its name"))
            continue
        body, problem = _policy_flavour(obj.body, ref.namespace, keep_timeouts)
        if problem:
            kept.append(Kept(ref, problem))
        else:
            handed.append(Handover(obj, body))
    return handed, kept


def gateway_reads_timeouts(version: str) -> bool:
    """Whether Linkerd ``version`` (empty: the newest known) reads ``rules[].timeouts`` on
    gateway.networking.k8s.io HTTPRoutes."""
    # fact: linkerd.gateway-rule-timeouts
    since = str(facts.value("linkerd.gateway-rule-timeouts", "since"))
    version = version or mappings.table("linkerd").default_version
    return mappings.version_key(version) >= mappings.version_key(since)


def _service_parent(spec: dict[str, Any]) -> bool:
    return any(p.get("kind") == "Service" and p.get("group", "") in ("", "core")
               for p in _dicts(spec.get("parentRefs")))


def _filter_types(spec: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for rule in _dicts(spec.get("rules")):
        for flt in _dicts(rule.get("filters")):
            found.add(str(flt.get("type")))
        for backend in _dicts(rule.get("backendRefs")):
            found.update(str(flt.get("type")) for flt in _dicts(backend.get("filters")))
    return found


def _policy_flavour(body: dict[str, Any], namespace: str, keep_timeouts: bool
                    ) -> tuple[dict[str, Any], str]:
    """The route as ``policy.linkerd.io/v1beta3`` with what Linkerd read, or a problem."""
    clean = strip_noise(body)
    spec = copy.deepcopy(clean["spec"])
    rules = []
    for i, rule in enumerate(_dicts(spec.get("rules"))):
        out = {k: rule[k] for k in _RULE_KEYS if k in rule}
        if keep_timeouts and isinstance(rule.get("timeouts"), dict):
            # policy.linkerd.io/v1beta3 has rules[].timeouts {request, backendRequest}.
            out["timeouts"] = rule["timeouts"]
        moved = [f for f in _dicts(rule.get("filters")) if f.get("type") not in _RULE_FILTERS]
        if moved:
            backends = _dicts(out.get("backendRefs"))
            if not backends:
                return {}, (f"rule {i} changes response headers and has no backend to carry "
                            "them in the Linkerd flavour")
            out["filters"] = [f for f in _dicts(rule.get("filters")) if f not in moved]
            for backend in backends:
                backend["filters"] = [*_dicts(backend.get("filters")), *moved]
        if not out.get("filters"):
            out.pop("filters", None)
        rules.append(out)
    new_spec = {k: spec[k] for k in ("hostnames", "parentRefs") if k in spec}
    new_spec["rules"] = rules
    meta = {**clean["metadata"], "namespace": namespace}  # a file may leave it implicit
    return {"apiVersion": POLICY_API, "kind": "HTTPRoute", "metadata": meta,
            "spec": new_spec}, ""


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
