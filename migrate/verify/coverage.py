"""What the equivalence check covered: every Service a mesh configuration touches, every
rule of every route and every authorization policy of the source, covered / total, with
what was not covered and why (issue 14 item 4).

A route rule is covered when some probe's source outcome was decided by it; a policy when it
decided some probe on the source side; a Service when some probe was addressed to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from migrate.verify.istio_eval import _host_key
from migrate.verify.model import Probe
from migrate.verify.probes import ANONYMOUS, DEFAULT_CLIENT, UNKNOWN
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
    """Covered / total of one kind of item, and the items not covered with why; of those,
    how many cannot be probed at all (no Service in the input, a route the mesh ignores, a
    rule an earlier one shadows, a condition no request carries)."""

    total: int = 0
    covered: int = 0
    missed: list[tuple[str, str]] = field(default_factory=list)
    unprobeable: set[str] = field(default_factory=set)
    """Items of ``missed`` that no request could reach."""

    def miss(self, item: str, why: str, probeable: bool) -> None:
        """Record an item not covered, and whether a request could have reached it."""
        self.missed.append((item, why))
        if not probeable:
            self.unprobeable.add(item)

    @property
    def probeable_missed(self) -> list[tuple[str, str]]:
        """Items a request could reach that none did: gaps of the probe generator."""
        return [(i, w) for i, w in self.missed if i not in self.unprobeable]

    def to_json(self) -> dict[str, Any]:
        """For plan.json."""
        return {"covered": self.covered, "total": self.total,
                "cannot_be_probed": len(self.unprobeable),
                "not_covered": [{"item": i, "why": w,
                                 **({"cannot_be_probed": True} if i in self.unprobeable
                                    else {})} for i, w in self.missed]}

    def text(self, name: str) -> str:
        """``route rules 3/4 (1 cannot be probed)``."""
        extra = f" ({len(self.unprobeable)} cannot be probed)" if self.unprobeable else ""
        return f"{name} {self.covered}/{self.total}{extra}"


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


_CONDITIONS = ("when", "requestPrincipals", "notRequestPrincipals", "ipBlocks",
               "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks")
_CONDITIONED = ("it needs what no generated request carries (a JWT, a source address or a "
                "`when` condition): the evaluator takes it as never matching")
_NO_TARGET = ("its policy applies to no pod the probes reach (no Service with a selector in "
              "front of its pods in the input, or its pods are not in the mesh)")
_GAP = "no generated request matched it"


def authz_rules(mesh: str, objects: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The source's authorization rules as (object, rule path, why no request can match it,
    empty when one can): an Istio AuthorizationPolicy's ``spec.rules[i]``, a Consul
    intention's sources (``spec.sources[i]``) and their L7 permissions
    (``spec.sources[i].permissions[j]``), a Linkerd AuthorizationPolicy or
    ServerAuthorization (one rule each: ``spec``).""" 
    out: list[tuple[str, str, str]] = []
    for obj in objects:
        if not isinstance(obj, dict):
            continue
        kind, group = obj.get("kind"), str(obj.get("apiVersion", "")).split("/")[0]
        try:
            if mesh == "istio" and group == "security.istio.io" and \
                    kind == "AuthorizationPolicy":
                for i, rule in enumerate(dig(obj, "spec", "rules", default=[]) or []):
                    froms = [f.get("source") or {} for f in (rule or {}).get("from") or []
                             if isinstance(f, dict)]
                    blocked = bool((rule or {}).get("when")) or (froms and all(
                        any(k in src for k in _CONDITIONS) for src in froms))
                    out.append((_ref(obj), f"spec.rules[{i}]", _CONDITIONED if blocked else ""))
            elif mesh == "linkerd" and group == "policy.linkerd.io" and kind in (
                    "AuthorizationPolicy", "ServerAuthorization"):
                out.append((_ref(obj), "spec", ""))  # one rule each
            elif mesh == "consul" and group == "consul.hashicorp.com" and \
                    kind == "ServiceIntentions":
                jwt = bool(dig(obj, "spec", "jwt", default=None))
                for i, source in enumerate(dig(obj, "spec", "sources", default=[]) or []):
                    perms = (source or {}).get("permissions") or []
                    if not perms:
                        out.append((_ref(obj), f"spec.sources[{i}]", _CONDITIONED if jwt else ""))
                    out += [(_ref(obj), f"spec.sources[{i}].permissions[{j}]",
                             _CONDITIONED if jwt or (isinstance(perm, dict) and perm.get("jwt"))
                             else "") for j, perm in enumerate(perms)]
        except (TypeError, AttributeError, ValueError, KeyError):
            continue  # damaged: reported by the reader
    return out


@dataclass
class Hits:
    """What the probes reached on the source side, gathered while comparing."""

    rules: set[tuple[str, str]] = field(default_factory=set)
    """(object, rule path) of the route rules that decided a probe."""
    policies: set[str] = field(default_factory=set)
    """Policies that decided a probe."""
    asked: dict[tuple[str, int], list[Probe]] = field(default_factory=dict)
    """(workload, port) -> the authorization probes evaluated there."""


@dataclass
class Coverage:
    """Covered / total Services, route rules, policies, authorization rules and policy
    targets."""

    services: Tally = field(default_factory=Tally)
    route_rules: Tally = field(default_factory=Tally)
    policies: Tally = field(default_factory=Tally)
    authorization_rules: Tally = field(default_factory=Tally)
    policy_targets: Tally = field(default_factory=Tally)

    def tallies(self) -> list[tuple[str, Tally]]:
        """(singular name, tally) in report order."""
        return [("service", self.services), ("route rule", self.route_rules),
                ("policy", self.policies), ("authorization rule", self.authorization_rules),
                ("policy target", self.policy_targets)]

    def to_json(self) -> dict[str, Any]:
        """The ``coverage`` member of plan.json's equivalence section."""
        return {"services": self.services.to_json(),
                "route_rules": self.route_rules.to_json(),
                "policies": self.policies.to_json(),
                "authorization_rules": self.authorization_rules.to_json(),
                "policy_targets": self.policy_targets.to_json()}

    def summary(self) -> str:
        """``services 10/12, route rules 8/9 (1 cannot be probed), policies 3/4, ...``."""
        return ", ".join(t.text(name + "s" if name != "policy" else "policies")
                         for name, t in self.tallies())

    def complete(self) -> bool:
        """Whether every item a request could reach was reached."""
        return not any(t.probeable_missed for _, t in self.tallies())


def rule_probes(mesh: str, obj: dict[str, Any], path: str, world: World) -> list[Probe]:
    """The probes the mesh's routing generator makes for one rule alone: the object with
    that rule as its only one (so a rule an earlier one shadows still gets its requests)."""
    from migrate.verify.registry import PROBES

    key, _, index = path.rpartition("[")
    field_name = key.split(".")[-1]
    rules = dig(obj, "spec", field_name, default=[])
    i = int(index.rstrip("]"))
    if not isinstance(rules, list) or i >= len(rules):
        return []
    alone = {**obj, "spec": {**obj["spec"], field_name: [rules[i]]}}
    return [p for p in PROBES[mesh][0]([alone], world)]


def measure(mesh: str, objects: list[dict[str, Any]], world: World, probed: set[tuple[str, str]],
            hits: Hits, evaluator: Any = None, extra: list[Probe] | None = None) -> Coverage:
    """Coverage of a source configuration by the probes evaluated on it.

    With the source ``evaluator``, a route rule no probe reached is probed alone
    (``rule_probes``): the probes that reach it are appended to ``extra`` (the caller
    compares them too) and count; the others tell why it cannot be reached (its route is
    ignored, an earlier rule decides its requests). Authorization rules and policy targets
    are matched against the authorization probes evaluated at each workload."""
    rules, policies = inventory(mesh, objects)
    bodies = {_ref(o): o for o in objects if isinstance(o, dict)}
    out = Coverage()
    for ref, path, hosts in sorted(rules):
        out.route_rules.total += 1
        if (ref, path) in hits.rules:
            out.route_rules.covered += 1
            continue
        if not any(h in world.services for h in hosts):
            out.route_rules.miss(f"{ref} {path}", _NO_SERVICE, False)
            continue
        found = _probe_alone(mesh, bodies.get(ref), ref, path, world, evaluator, extra)
        if found is None:
            out.route_rules.covered += 1
            hits.rules.add((ref, path))
        else:
            out.route_rules.miss(f"{ref} {path}", *found)
    authz = authz_rules(mesh, objects)
    reached: set[str] = set()
    matched: set[tuple[str, str]] = set()
    pending = {(ref, path): why for ref, path, why in authz}
    rules_of: dict[str, set[tuple[str, str]]] = {}
    for ref, path in pending:
        rules_of.setdefault(ref, set()).add((ref, path))
    if evaluator is not None and hasattr(evaluator, "targets"):
        for (wid, port), asked in sorted(hits.asked.items()):
            here = _ask(evaluator.targets, asked[0], wid)
            reached |= here
            # The rules of the policies applying here not matched yet: once none is left,
            # the other probes asked here cannot add one.
            todo = {r for ref in here for r in rules_of.get(ref, ())} - matched
            for probe in asked:
                if not todo or not hasattr(evaluator, "authorization_rules"):
                    break
                found = _ask(evaluator.authorization_rules, probe, wid, port)
                matched |= found
                todo -= found
    for ref, _ in sorted(set(policies)):
        out.policies.total += 1
        out.policy_targets.total += 1
        # Exercised: it decided a probe, or one of its rules matched one (a rule that
        # admits, under an earlier one that decided, still got its request).
        if ref in hits.policies or any(r == ref for r, _ in matched):
            out.policies.covered += 1
        else:
            # A request can reach it when its target was reached and it has a rule some
            # request can match (an Istio rule needing a JWT decides no probe).
            own = [why for r, _, why in authz if r == ref]
            out.policies.miss(ref, _NO_POD, ref in reached and not (own and all(own)))
        if ref in reached or evaluator is None and ref in hits.policies:
            out.policy_targets.covered += 1
        else:
            out.policy_targets.miss(ref, _NO_TARGET, False)
    for (ref, path), why in sorted(pending.items()):
        out.authorization_rules.total += 1
        if (ref, path) in matched:
            out.authorization_rules.covered += 1
        elif ref not in reached:
            out.authorization_rules.miss(f"{ref} {path}", _NO_TARGET, False)
        else:
            out.authorization_rules.miss(f"{ref} {path}", why or _GAP, not why)
    touched = {ns for _, ns in policies} | {h[0] for _, _, hosts in rules for h in hosts}
    for (ns, name), svc in sorted(world.services.items()):
        if ns not in touched or not svc.selector:
            continue
        out.services.total += 1
        if (ns, name) in probed:
            out.services.covered += 1
        elif svc.ports and extra is not None:
            # No route names it and no policy selects it, but its namespace is configured
            # (mTLS and authorization defaults): a plain request and the unknown and
            # unauthenticated callers check those defaults there.
            out.services.covered += 1
            port = svc.ports[0][0]
            extra += [Probe(ns, name, port, "/", "GET", (), client, why)
                      for client, why in ((DEFAULT_CLIENT, "baseline"),
                                          (UNKNOWN, "authorization"),
                                          (ANONYMOUS, "authorization"))]
        else:
            out.services.miss(f"Service/{ns}/{name}", _UNTOUCHED if svc.ports else
                              "it has no port to send a request to", not svc.ports)
    return out


def _decided(evaluator: Any, probe: Probe) -> set[tuple[str, str]]:
    """The (object, rule path) pairs that decided a probe's routing."""
    try:
        outcome = evaluator.route(probe)
    except (TypeError, AttributeError, ValueError, KeyError, IndexError):
        return set()
    return {(ref, outcome.rule_path) for ref in outcome.sources} if outcome.rule_path else set()


def _ask(question: Any, *args: Any) -> set[Any]:
    """An evaluator's answer for coverage; damaged input (reported already) answers nothing."""
    try:
        return set(question(*args))
    except (TypeError, AttributeError, ValueError, KeyError, IndexError):
        return set()


def _probe_alone(mesh: str, obj: dict[str, Any] | None, ref: str, path: str, world: World,
                 evaluator: Any, extra: list[Probe] | None) -> tuple[str, bool] | None:
    """None when the rule's own probes reach it (they go to ``extra``); else why not, and
    whether a request could."""
    if obj is None or evaluator is None:
        return _NOT_REACHED, True
    try:
        probes = rule_probes(mesh, obj, path, world)
    except (TypeError, AttributeError, ValueError, KeyError, IndexError):
        return _NOT_REACHED, True
    others: set[str] = set()
    deciders: set[str] = set()
    ignored = False
    for probe in probes:
        try:
            outcome = evaluator.route(probe)
        except (TypeError, AttributeError, ValueError, KeyError, IndexError):
            continue
        if ref in outcome.sources and outcome.rule_path == path:
            if extra is not None:
                # Named after the rule they were made for (made from the object alone, the
                # generator numbered it 0).
                extra += [replace(p, why=f"{ref} {path}") for p in probes
                          if (ref, path) in _decided(evaluator, p)]
            return None
        if ref in outcome.sources and outcome.rule_path:
            others.add(outcome.rule_path)
        elif ref not in outcome.sources:
            ignored = True
            deciders |= set(outcome.sources)
    if others:
        return (f"unreachable: the requests made for it alone are decided by "
                f"{', '.join(sorted(others))} of the same object first", False)
    if ignored and probes and deciders:
        return (f"another object for the same Service decides its requests "
                f"({', '.join(sorted(deciders))})", False)
    if ignored and probes:
        return (f"{mesh} ignores it: none of its requests is decided by it (Linkerd ignores "
                "a route using a filter it does not support)", False)
    return _NOT_REACHED if probes else _NO_SAMPLE, True


_NO_SAMPLE = ("no request could be made for it: its match has no sample the generator can "
              "fill (a regular expression)")
