"""Linkerd's older outbound model: ServiceProfiles and SMI TrafficSplits.

Semantics (mapping-istio-linkerd.md section 1.1, ServiceProfile and TrafficSplit rows; linkerd
website 2-edge/reference/service-profiles.md):
- a ServiceProfile named ``<service>.<namespace>.svc.<cluster domain>`` in the Service's
  namespace switches that Service into "profile mode": HTTPRoutes, and annotation-based retries
  and timeouts, are ignored for it;
- its ``routes`` are tried in order and the first whose ``condition`` matches (``method``,
  ``pathRegex`` matched against the whole path, ``all``, ``any``, ``not``) gives the request its
  ``timeout`` (no default: linkerd/website#1733, controller/api/destination/profile_translator.go)
  and, with ``isRetryable``, retries bounded by the profile's retry budget, not by a count;
  a request matching no route still goes to the Service, with neither;
- ``dstOverrides`` (authority, weight as a Kubernetes quantity) split traffic; the linkerd-smi
  adaptor writes a TrafficSplit into the apex Service's profile as ``dstOverrides``
  (linkerd-smi@v0.2.7 pkg/adaptor/controller.go), so a TrafficSplit alone also means profile mode.
"""

from __future__ import annotations

from typing import Any

from migrate.verify.gateway import full
from migrate.verify.model import BUDGET_RETRIES, Outcome, Probe
from migrate.verify.world import World, dig, unique

_SUFFIX = {"m": 0.001, "": 1.0, "k": 1000.0}


def quantity(value: Any) -> float:
    """A Kubernetes quantity as a weight (``500m`` is 0.5); a bad value weighs nothing."""
    text = str(value).strip()
    unit = text[-1] if text and text[-1] in "mk" else ""
    try:
        return float(text[:-1] if unit else text) * _SUFFIX[unit]
    except ValueError:
        return 0.0


def condition_matches(cond: Any, probe: Probe) -> bool:
    """A ServiceProfile request match against a probe (a damaged condition matches nothing)."""
    if not isinstance(cond, dict) or not cond:
        return False
    path = probe.path.partition("?")[0]
    checks: list[bool] = []
    if "method" in cond:
        checks.append(str(cond["method"]).upper() == probe.method)
    if "pathRegex" in cond:
        checks.append(full(str(cond["pathRegex"]), path))
    if "all" in cond:
        checks.append(all(condition_matches(c, probe) for c in cond["all"] or []))
    if "any" in cond:
        checks.append(any(condition_matches(c, probe) for c in cond["any"] or []))
    if "not" in cond:
        checks.append(not condition_matches(cond["not"], probe))
    return bool(checks) and all(checks)


class Profiles:
    """ServiceProfiles and TrafficSplits by the Service they describe."""

    def __init__(self, manifests: list[dict[str, Any]], world: World,
                 cluster_domain: str = "cluster.local", deduplicated: bool = False) -> None:
        """``deduplicated``: the manifests already passed through ``unique``."""
        self.world = world
        self.domain = cluster_domain
        self.profiles: dict[tuple[str, str], dict[str, Any]] = {}
        self.splits: dict[tuple[str, str], dict[str, Any]] = {}
        # Only the two kinds read here are sorted (a cluster state holds thousands of others).
        by_name = sorted((m for m in (manifests if deduplicated else unique(manifests))
                          if m.get("kind") in ("ServiceProfile", "TrafficSplit")),
                         key=lambda o: str(dig(o, "metadata", "name", default="")))
        for m in by_name:
            kind, api = m.get("kind"), str(m.get("apiVersion", ""))
            ns = str(dig(m, "metadata", "namespace", default="default"))
            if kind == "ServiceProfile" and api.startswith("linkerd.io/"):
                name = str(dig(m, "metadata", "name", default=""))
                suffix = f".{ns}.svc.{self.domain}"
                if name.endswith(suffix):  # a profile for a Service in its own namespace
                    self.profiles.setdefault((ns, name[:-len(suffix)]), m)
            elif kind == "TrafficSplit" and api.startswith("split.smi-spec.io/"):
                apex = str(dig(m, "spec", "service", default="")).split(".")[0]
                if apex:
                    self.splits.setdefault((ns, apex), m)

    def route(self, probe: Probe) -> Outcome | None:
        """The outcome in profile mode, or None when the Service has neither object."""
        key = (probe.namespace, probe.service)
        profile, split = self.profiles.get(key), self.splits.get(key)
        if profile is None and split is None:
            return None
        sources = tuple(_ref(o) for o in (profile, split) if o is not None)
        backends = self._overrides(profile, probe) if profile is not None else None
        if not backends and split is not None:
            backends = self._split(split, probe)
        if not backends:
            svc = self.world.services.get(key)
            name = self.world.backend(key[0], dict(svc.selector)) if svc else ""
            backends = ((name or f"Service/{key[0]}/{key[1]}", 1.0),)
        for index, route in enumerate(dig(profile, "spec", "routes", default=[])
                                      if profile is not None else []):
            if isinstance(route, dict) and condition_matches(route.get("condition"), probe):
                return Outcome("routed", backends, timeout=str(route.get("timeout") or ""),
                               retries=BUDGET_RETRIES if route.get("isRetryable") is True else 0,
                               sources=sources, rule_path=f"spec.routes[{index}]")
        return Outcome("routed", backends, sources=sources)

    def _overrides(self, profile: dict[str, Any], probe: Probe
                   ) -> tuple[tuple[str, float], ...]:
        pairs = []
        for o in dig(profile, "spec", "dstOverrides", default=[]):
            if isinstance(o, dict):
                host = str(o.get("authority", "")).rsplit(":", 1)[0].split(".")
                ns = host[1] if len(host) > 1 else probe.namespace
                pairs.append((ns, host[0], quantity(o.get("weight", 0))))
        return self._shares(pairs)

    def _split(self, split: dict[str, Any], probe: Probe) -> tuple[tuple[str, float], ...]:
        return self._shares([(probe.namespace, str(b.get("service", "")).split(".")[0],
                              quantity(b.get("weight", 0)))
                             for b in dig(split, "spec", "backends", default=[])
                             if isinstance(b, dict)])

    def _shares(self, pairs: list[tuple[str, str, float]]) -> tuple[tuple[str, float], ...]:
        total = sum(w for _, _, w in pairs)
        if total <= 0:
            return ()
        out: dict[str, float] = {}
        for ns, name, weight in pairs:
            svc = self.world.services.get((ns, name))
            backend = (self.world.backend(ns, dict(svc.selector)) if svc else "") or \
                f"Service/{ns}/{name}"
            out[backend] = out.get(backend, 0.0) + weight / total
        return tuple(sorted((k, round(v, 4)) for k, v in out.items() if v > 0))


def _ref(obj: dict[str, Any]) -> str:
    return (f"{obj.get('kind')}/{dig(obj, 'metadata', 'namespace', default='default')}/"
            f"{dig(obj, 'metadata', 'name', default='')}")
