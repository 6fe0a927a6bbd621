"""What the equivalence check covered: every Service a mesh configuration touches, every
rule of every route and every authorization policy of the source, covered / total, with
what was not covered and why (issue 14 item 4).

A route rule is covered when some probe's source outcome was decided by it; a policy when it
decided some probe on the source side; a Service when some probe was addressed to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from migrate.verify.istio_eval import _host_key
from migrate.verify.world import World, dig

_NOT_REACHED = ("no generated request was decided by it: an earlier rule or another route "
                "for the same host takes every request it matches, or its match has no sample "
                "(a regular expression the generator cannot fill)")
_NO_SERVICE = "the Service it routes is not in the input, so no request could be generated"
_NO_POD = ("no probe was decided by it: no Service with a selector in front of its pods in "
           "the input, its pods are not in the mesh, or another policy decided first")
_UNTOUCHED = "no route names it and no policy selects its pods, so no probe was generated"


@dataclass
class Tally:
    """Covered / total of one kind of item, and the items not covered with why."""

    total: int = 0
    covered: int = 0
    missed: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """For plan.json."""
        return {"covered": self.covered, "total": self.total,
                "not_covered": [{"item": i, "why": w} for i, w in self.missed]}


def _ref(obj: dict[str, Any]) -> str:
    return (f"{obj.get('kind')}/{dig(obj, 'metadata', 'namespace', default='default')}/"
            f"{dig(obj, 'metadata', 'name', default='')}")


def _service_parent(route: dict[str, Any]) -> list[tuple[str, str]]:
    ns = str(dig(route, "metadata", "namespace", default="default"))
    return [(str(p.get("namespace", ns)), str(p.get("name")))
            for p in dig(route, "spec", "parentRefs", default=[]) or []
            if isinstance(p, dict) and p.get("kind") == "Service"]


def inventory(mesh: str, objects: list[dict[str, Any]]
              ) -> tuple[list[tuple[str, str, list[tuple[str, str]]]], list[tuple[str, str]]]:
    """The source's route rules, as (object, rule path, Services it routes), and its
    authorization policies, as (object, namespace)."""
    rules: list[tuple[str, str, list[tuple[str, str]]]] = []
    policies: list[tuple[str, str]] = []
    for obj in objects:
        if not isinstance(obj, dict):
            continue
        kind, api = obj.get("kind"), str(obj.get("apiVersion", ""))
        group = api.split("/")[0]
        ns = str(dig(obj, "metadata", "namespace", default="default"))
        ref = _ref(obj)
        try:
            if kind in ("HTTPRoute", "GRPCRoute") and group in (
                    "gateway.networking.k8s.io", "policy.linkerd.io"):
                parents = _service_parent(obj)
                # Istio reads only gateway.networking.k8s.io routes; Consul reads neither.
                if parents and (mesh == "linkerd" or (
                        mesh == "istio" and group == "gateway.networking.k8s.io")):
                    rules += [(ref, f"spec.rules[{i}]", parents)
                              for i in range(len(dig(obj, "spec", "rules", default=[]) or []))]
            elif mesh == "istio" and group == "networking.istio.io" and \
                    kind == "VirtualService":
                gateways = dig(obj, "spec", "gateways", default=[]) or []
                if gateways and "mesh" not in gateways:
                    continue
                hosts = [_host_key(str(h), ns) for h in dig(obj, "spec", "hosts", default=[])]
                rules += [(ref, f"spec.http[{i}]", [h for h in hosts if h])
                          for i in range(len(dig(obj, "spec", "http", default=[]) or []))]
            elif mesh == "istio" and group == "security.istio.io" and \
                    kind == "AuthorizationPolicy":
                policies.append((ref, ns))
            elif mesh == "linkerd" and group == "linkerd.io" and kind == "ServiceProfile":
                name = str(dig(obj, "metadata", "name", default="")).split(".")
                host = [(name[1], name[0])] if len(name) > 1 else []
                rules += [(ref, f"spec.routes[{i}]", host)
                          for i in range(len(dig(obj, "spec", "routes", default=[]) or []))]
            elif mesh == "linkerd" and group == "policy.linkerd.io" and kind in (
                    "AuthorizationPolicy", "ServerAuthorization"):
                policies.append((ref, ns))
            elif mesh == "consul" and group == "consul.hashicorp.com":
                if kind == "ServiceRouter":
                    host = [(ns, str(dig(obj, "metadata", "name", default="")))]
                    rules += [(ref, f"spec.routes[{i}]", host)
                              for i in range(len(dig(obj, "spec", "routes", default=[])
                                                 or []))]
                elif kind == "ServiceIntentions":
                    policies.append((ref, ns))
        except (TypeError, AttributeError, ValueError, KeyError):
            continue  # damaged: reported by the reader
    return rules, policies


@dataclass
class Coverage:
    """Covered / total Services, route rules and policies."""

    services: Tally = field(default_factory=Tally)
    route_rules: Tally = field(default_factory=Tally)
    policies: Tally = field(default_factory=Tally)

    def to_json(self) -> dict[str, Any]:
        """The ``coverage`` member of plan.json's equivalence section."""
        return {"services": self.services.to_json(),
                "route_rules": self.route_rules.to_json(),
                "policies": self.policies.to_json()}

    def summary(self) -> str:
        """``services 10/12, route rules 8/9, policies 3/4``."""
        return ", ".join(f"{name} {t.covered}/{t.total}" for name, t in (
            ("services", self.services), ("route rules", self.route_rules),
            ("policies", self.policies)))


def measure(mesh: str, objects: list[dict[str, Any]], world: World,
            probed: set[tuple[str, str]], rules_hit: set[tuple[str, str]],
            policies_hit: set[str]) -> Coverage:
    """Coverage of a source configuration by the probes evaluated on it."""
    rules, policies = inventory(mesh, objects)
    out = Coverage()
    for ref, path, hosts in sorted(rules):
        out.route_rules.total += 1
        if (ref, path) in rules_hit:
            out.route_rules.covered += 1
        else:
            known = any(h in world.services for h in hosts)
            out.route_rules.missed.append((f"{ref} {path}",
                                           _NOT_REACHED if known else _NO_SERVICE))
    for ref, _ in sorted(set(policies)):
        out.policies.total += 1
        if ref in policies_hit:
            out.policies.covered += 1
        else:
            out.policies.missed.append((ref, _NO_POD))
    touched = {ns for _, ns in policies} | {h[0] for _, _, hosts in rules for h in hosts}
    for (ns, name), svc in sorted(world.services.items()):
        if ns not in touched or not svc.selector:
            continue
        out.services.total += 1
        if (ns, name) in probed:
            out.services.covered += 1
        else:
            out.services.missed.append((f"Service/{ns}/{name}", _UNTOUCHED))
    return out
