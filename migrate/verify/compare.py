"""Compare the two evaluators probe by probe; explain divergences with losses."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from migrate.aspects import declarations
from migrate.gcpause import no_gc_pauses
from migrate.losses import Loss
from migrate.verify.coverage import Coverage, Hits, measure
from migrate.verify.linkerd_eval import same_duration
from migrate.verify.memo import Memo
from migrate.verify.model import Outcome, Probe, probe_order
from migrate.verify.registry import EVALUATORS, PROBES, Evaluator, Settings, generate
from migrate.verify.world import World, dig
from migrate.wording import counted

# Losses that concern every Service sharing a name, in every namespace, rather than one source
# object: Consul CE has one service name space, so same-named Services of several Kubernetes
# namespaces are one Consul service whose instances, routers and intentions merge
# (mapping-consul-others.md section 1.3). Any outcome for a request to such a Service, or that
# reaches such a Service's pods, can differ because of it, so the loss explains every
# divergence of every aspect there. The loss is filed on one of the Services; its name is the
# shared name.
_NAME_WIDE = ("CONSUL_NAME_COLLISION",)
_DELETE = re.compile(r"^kubectl delete ([a-z]+)(?:\.([a-z0-9.]+))?/([a-z0-9.-]+) -n ([a-z0-9-]+)")
_ANNOTATE_NS = re.compile(
    r"^kubectl (?:annotate|label) namespace ([a-z0-9-]+) (.*?)(?: --overwrite)?$")
_PATCH = re.compile(r"^kubectl patch ([a-z]+) ([a-z0-9.-]+) -n ([a-z0-9-]+) --type=merge "
                    r"-p '(.*)'$")
_KINDS = {"deployment": "Deployment", "statefulset": "StatefulSet", "daemonset": "DaemonSet",
          "replicaset": "ReplicaSet", "job": "Job", "cronjob": "CronJob", "pod": "Pod"}
"""Workload kinds as ``kubectl patch`` names them."""


@dataclass
class Divergence:
    """One probe whose outcome differs between the meshes."""

    probe: Probe
    aspect: str
    """What differs (``migrate.aspects.ASPECTS``): backends, redirect, timeout, retries,
    authorization..."""
    source: str
    target: str
    direction: str = ""
    """For authorization: ``allow-more`` (the target admits a caller the source refused) or
    ``refuse-more``; empty for the other aspects."""
    explained_by: list[str] = field(default_factory=list)
    """Loss codes (with their objects) that account for it; empty means a conversion bug."""
    candidates: set[str] = field(default_factory=set, repr=False)
    """Source objects whose losses may explain it."""
    rule_paths: tuple[str, ...] = field(default=(), repr=False)
    """The source rules involved (the one Istio matched, the one the target rule came from):
    only losses inside them, or on the whole object, count."""
    other_rule: bool = field(default=False, repr=False)
    """The target applied a different source rule than the source did (or one where the
    source applied none, or none where it applied one)."""
    workloads: frozenset[str] = field(default=frozenset(), repr=False)
    """Workload ids the outcomes on either side name (backends, the authorizing workload)."""

    def to_json(self) -> dict[str, Any]:
        """For plan.json."""
        return {"probe": str(self.probe), "exercises": self.probe.why, "aspect": self.aspect,
                **({"direction": self.direction} if self.direction else {}),
                "source": self.source, "target": self.target,
                "explained_by": self.explained_by}


@dataclass
class Equivalence:
    """The result of comparing the two meshes on generated probes."""

    probes: int = 0
    unevaluated: int = 0
    """Probes an evaluator could not answer (damaged input, already reported)."""
    per_service: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """``ns/name`` -> (probes, divergences, unexplained)."""
    divergences: list[Divergence] = field(default_factory=list)
    source_mesh: str = "istio"
    target_mesh: str = "linkerd"
    not_evaluated: str = ""
    """Why the pair could not be evaluated at all (no evaluator for a mesh); empty when it
    was."""
    coverage: Coverage | None = None
    """Services, route rules and policies of the source the probes reached."""

    @property
    def unexplained(self) -> list[Divergence]:
        """Divergences no loss accounts for: conversion bugs."""
        return [d for d in self.divergences if not d.explained_by]

    def groups(self) -> list[tuple[str, tuple[str, ...], int, Divergence]]:
        """Divergences grouped by (aspect with its direction, codes of the explaining losses):
        each group's aspect, codes, count and first divergence. Unexplained groups come
        first, then the largest; ties by aspect and codes, so the order never depends on the
        input's."""
        found: dict[tuple[str, tuple[str, ...]], list[Divergence]] = {}
        for d in self.divergences:
            aspect = d.aspect + (f" ({d.direction})" if d.direction else "")
            codes = tuple(sorted({e.split()[0] for e in d.explained_by}))
            found.setdefault((aspect, codes), []).append(d)
        order = sorted(found.items(), key=lambda kv: (bool(kv[0][1]), -len(kv[1]), kv[0]))
        return [(aspect, why, len(ds), ds[0]) for (aspect, why), ds in order]

    def to_json(self) -> dict[str, Any]:
        """The ``equivalence`` section of plan.json."""
        return {"source": self.source_mesh, "target": self.target_mesh,
                **({"not_evaluated": self.not_evaluated} if self.not_evaluated else {}),
                "probes": self.probes, "unevaluated": self.unevaluated,
                "services": [{"service": s, "probes": p, "divergences": d, "unexplained": u}
                             for s, (p, d, u) in sorted(self.per_service.items())],
                **({"coverage": self.coverage.to_json()} if self.coverage else {}),
                "divergences": [d.to_json() for d in self.divergences],
                "unexplained": len(self.unexplained)}


ObjectKey = tuple[str, str, str, str]
"""(lower-case kind, API group, namespace, name): how ``kubectl delete kind.group/name -n ns``
addresses an object."""


def object_key(body: dict[str, Any]) -> ObjectKey:
    """The key of a manifest."""
    api = str(body.get("apiVersion", ""))
    return (str(body.get("kind", "")).lower(), api.split("/")[0] if "/" in api else "",
            str(dig(body, "metadata", "namespace", default="")),
            str(dig(body, "metadata", "name", default="")))


class ClusterState:
    """What a plan's steps leave in the cluster, applied one step at a time: the objects the
    steps applied, the namespace labels and annotations their commands set or removed, the
    workload patches they made (the injection annotations a move sets), and the objects their
    ``kubectl delete`` commands removed (the source's too)."""

    def __init__(self) -> None:
        self.objects: dict[ObjectKey, dict[str, Any]] = {}
        self.annotations: dict[str, dict[str, str]] = {}
        """Namespace -> labels and annotations the commands set."""
        self.patches: dict[tuple[str, str, str], dict[str, Any]] = {}
        """(kind, namespace, name) -> the workload's merge patches, merged."""
        self.deleted: set[ObjectKey] = set()
        self.deleted_in: dict[str, set[ObjectKey]] = {}
        """Namespace -> keys of ``deleted`` there (a step asks about its namespaces only)."""
        self._by_ns: dict[str, set[ObjectKey]] = {}
        """Namespace -> keys of the objects present there (``""``: cluster-scoped)."""

    def apply(self, manifests: Iterable[dict[str, Any]], commands: Iterable[str]) -> set[str]:
        """Apply one step; returns the namespaces it touched (``""``: a cluster-scoped one)."""
        touched: set[str] = set()
        for body in manifests:
            key = object_key(body)
            self.objects[key] = body
            self._by_ns.setdefault(key[2], set()).add(key)
            self.deleted.discard(key)
            self.deleted_in.get(key[2], set()).discard(key)
            touched.add(key[2])
        for command in commands:
            command = command.split("  #")[0].strip()
            m = _DELETE.match(command)
            if m:
                kind, group, name, ns = m.groups()
                key = (kind, group or "", ns, name)
                self.objects.pop(key, None)
                self._by_ns.get(ns, set()).discard(key)
                self.deleted.add(key)
                self.deleted_in.setdefault(ns, set()).add(key)
                touched.add(ns)
                continue
            m = _PATCH.match(command)
            if m and m.group(1) in _KINDS:
                kind, name, ns, text = m.groups()
                try:
                    patch = json.loads(text)
                except ValueError:
                    continue
                if isinstance(patch, dict):
                    key = (_KINDS[kind], ns, name)
                    self.patches[key] = _merge(self.patches.get(key, {}), patch)
                    touched.add(ns)
                continue
            m = _ANNOTATE_NS.match(command)
            if m:
                ns, pairs = m.groups()
                touched.add(ns)
                for pair in pairs.split():
                    if pair.endswith("-"):
                        # Only what the target's evaluator reads matters, and a removal
                        # concerns the source mesh's own keys; the source world keeps them.
                        self.annotations.setdefault(ns, {}).pop(pair[:-1], None)
                    elif "=" in pair:
                        k, v = pair.split("=", 1)
                        self.annotations.setdefault(ns, {})[k] = v
        return touched

    def patched(self, namespaces: set[str] | None = None) -> list[dict[str, Any]]:
        """The workload patches as partial objects ``World.patch_workload`` merges."""
        return [{"apiVersion": "apps/v1", "kind": kind,
                 "metadata": {"name": name, "namespace": ns}, **patch}
                for (kind, ns, name), patch in sorted(self.patches.items())
                if namespaces is None or ns in namespaces]

    def namespaces(self) -> set[str]:
        """The namespaces holding applied objects (``""``: cluster-scoped ones)."""
        return {ns for ns, keys in self._by_ns.items() if keys}

    def target_objects(self, namespaces: set[str] | None = None) -> list[dict[str, Any]]:
        """Applied objects still present (of these namespaces and cluster-scoped ones).

        With namespaces, only their objects are looked at: the coexistence check asks this at
        every step, and sorting the whole state each time made it quadratic."""
        if namespaces is None:
            return [self.objects[k] for k in sorted(self.objects)]
        keys = [k for ns in namespaces | {""} for k in self._by_ns.get(ns, ())]
        return [self.objects[k] for k in sorted(keys)]


def _merge(old: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) applied to ``old``."""
    out = dict(old)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def final_state(steps: Iterable[tuple[list[dict[str, Any]], list[str]]]) -> tuple[
        list[dict[str, Any]], dict[str, dict[str, str]]]:
    """Target objects and namespace labels and annotations once every step ran.

    ``steps`` gives, in order, each step's applied manifests and its commands; ``kubectl
    delete``, ``kubectl annotate|label namespace`` and ``kubectl patch`` (of a workload)
    commands are applied to the state; the workload patches are returned among the objects.
    """
    state = ClusterState()
    for manifests, commands in steps:
        state.apply(manifests, commands)
    return state.target_objects() + state.patched(), state.annotations


def target_world(source: list[dict[str, Any]], target: list[dict[str, Any]],
                 namespace_annotations: dict[str, dict[str, str]], *,
                 base: World | None = None, deleted: Iterable[ObjectKey] = ()) -> World:
    """The Kubernetes side once the target manifests are applied: the source's Services and
    workloads, with the target's Services added, its workload patches (labels, annotations)
    merged and the namespace annotations its commands set.

    ``base``: the source's world, already read (``source`` is then not read again), less
    the objects ``deleted`` names."""
    world = base.copy(deleted) if base is not None else World(source)
    for body in target:
        if not isinstance(body, dict):
            continue
        try:
            if body.get("kind") == "Service" and body.get("apiVersion") == "v1":
                world.add_service(body)
            else:
                world.patch_workload(body)
        except (TypeError, AttributeError, ValueError, KeyError):
            continue  # a damaged manifest (a tampered plan folder) changes nothing here
    for ns, extra in namespace_annotations.items():
        world.namespaces[ns] = {**world.namespaces.get(ns, {}), **extra}
    return world


def compare(source: list[dict[str, Any]], target: list[dict[str, Any]],
            namespace_annotations: dict[str, dict[str, str]], losses: Iterable[Loss],
            trust_domain: str = "cluster.local", root_namespace: str = "istio-system", *,
            source_mesh: str = "istio", target_mesh: str = "linkerd",
            settings: Settings | None = None) -> Equivalence:
    """Evaluate generated probes on both sides and list where they differ.

    ``source`` holds the source mesh's own manifests (and the cluster's Services and
    workloads), ``target`` the emitted manifests once every step ran. A pair with no evaluator
    on one side gives an Equivalence whose ``not_evaluated`` says so.

    Runs without the collector's full passes (``gcpause``): the check makes hundreds of
    thousands of small objects over a heap that holds the whole plan, and the passes walked
    all of it again and again (about two thirds of the check at 2,000 services).
    """
    with no_gc_pauses():
        return _compare(source, target, namespace_annotations, losses, trust_domain,
                        root_namespace, source_mesh=source_mesh, target_mesh=target_mesh,
                        settings=settings)


def _compare(source: list[dict[str, Any]], target: list[dict[str, Any]],
             namespace_annotations: dict[str, dict[str, str]], losses: Iterable[Loss],
             trust_domain: str, root_namespace: str, *, source_mesh: str, target_mesh: str,
             settings: Settings | None) -> Equivalence:
    result = Equivalence(source_mesh=source_mesh, target_mesh=target_mesh)
    missing = [m for m in (source_mesh, target_mesh) if m not in EVALUATORS]
    if source_mesh not in PROBES and source_mesh not in missing:
        missing.append(source_mesh)
    if missing:
        result.not_evaluated = (f"no evaluator for {', '.join(sorted(set(missing)))} (known: "
                                f"{', '.join(sorted(EVALUATORS))})")
        return result
    settings = settings or Settings(trust_domain=trust_domain, root_namespace=root_namespace)
    world = World(source)
    # Memo: the probes of one request sent by several clients are routed once per side.
    src_eval = Memo(EVALUATORS[source_mesh](source, world, settings), keep_allowed=False)
    tgt_eval = Memo(EVALUATORS[target_mesh](target, target_world(source, target,
                                                                 namespace_annotations),
                                            settings), keep_allowed=False)
    by_object: dict[str, list[Loss]] = {}
    by_name: dict[str, list[str]] = {}  # shared Service name -> its name-wide losses
    for loss in losses:
        by_object.setdefault(str(loss.object), []).append(loss)
        if loss.code in _NAME_WIDE and loss.object.kind == "Service":
            by_name.setdefault(loss.object.name, []).append(
                f"{loss.code} {loss.object} {loss.path}")
    named = _workloads_named(world, by_name)
    bodies = {f"{o.get('kind')}/{dig(o, 'metadata', 'namespace', default='default')}/"
              f"{dig(o, 'metadata', 'name')}": o for o in source if isinstance(o, dict)}
    probed: set[tuple[str, str]] = set()
    hits = Hits()
    origins = _origins(target)

    def run(probe: Probe) -> None:
        key = f"{probe.namespace}/{probe.service}"
        probed.add((probe.namespace, probe.service))
        try:
            found = _diverge(probe, src_eval, tgt_eval, hits, origins)
        except (TypeError, AttributeError, ValueError, KeyError, IndexError):
            result.unevaluated += 1
            return
        for d in found:
            d.explained_by = sorted(set(_explain(d, by_object, bodies))
                                    | _explain_by_name(d, by_name, named))
        p, dv, u = result.per_service.get(key, (0, 0, 0))
        result.per_service[key] = (p + 1, dv + len(found),
                                   u + sum(1 for d in found if not d.explained_by))
        result.divergences.extend(found)
        result.probes += 1

    probes = generate(source_mesh, source, world)
    for probe in probes:
        run(probe)
    # A route rule no probe reached is probed alone; the probes that reach it are compared
    # too (every rule a request can reach gets one).
    extra: list[Probe] = []
    result.coverage = measure(source_mesh, source, world, probed, hits, src_eval, extra)
    for probe in sorted(set(extra) - set(probes), key=probe_order):
        run(probe)
    return result


def same_retries(src: Outcome, tgt: Outcome) -> bool:
    """Whether two outcomes retry alike. A mesh's implicit default retries (``detail ==
    "default"``: Istio's transport-level retries) count as equal to no retries on the other
    side, which has no such default, and to nothing else: configured retries (on status codes,
    say) are not the default's even at the same count; configured retries must match
    exactly."""
    # The default retries no status code, so it is not a configured policy of 2 attempts.
    # fact: istio.default-retry
    if src.retries == tgt.retries and (src.detail == "default") == (tgt.detail == "default"):
        return True
    if src.detail == "default" and tgt.detail != "default" and tgt.retries == 0:
        return True
    return tgt.detail == "default" and src.detail != "default" and src.retries == 0


def _origins(target: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Emitted object (``Kind/ns/name``) -> the source objects it was written from, as the
    writers record them in ``meshmigrate.io/source``."""
    out: dict[str, set[str]] = {}
    for body in target:
        if isinstance(body, dict):
            named = str(dig(body, "metadata", "annotations", "meshmigrate.io/source",
                            default="") or "")
            if named:
                key = (f"{body.get('kind')}/{dig(body, 'metadata', 'namespace', default='default')}"
                       f"/{dig(body, 'metadata', 'name', default='')}")
                out.setdefault(key, set()).update(n for n in named.split(",") if n)
    return out


def _diverge(probe: Probe, src_eval: Evaluator, tgt_eval: Evaluator,
             hits: Hits | None = None,
             origins: dict[str, set[str]] | None = None) -> list[Divergence]:
    """Every aspect in which the two meshes treat the probe differently. ``hits`` collects
    the source rules ((object, rule path)) and policies that decided it, and where it was
    asked for authorization, for coverage; ``origins`` maps emitted objects to their source
    objects (``_origins``)."""
    hits = hits if hits is not None else Hits()
    src, tgt = src_eval.route(probe), tgt_eval.route(probe)
    if src.rule_path:
        hits.rules.update((ref, src.rule_path) for ref in src.sources)
    out: list[Divergence] = []
    candidates = set(src.sources) | set(tgt.sources)
    if "redirect" in (src.status, tgt.status) and \
            (src.status, src.detail) != (tgt.status, tgt.detail):
        out.append(_div(probe, "redirect", src, tgt, candidates))
    elif (src.status, src.backends) != (tgt.status, tgt.backends):
        out.append(_div(probe, "backends", src, tgt, candidates))
    if src.status == tgt.status == "routed":
        if not same_duration(src.timeout, tgt.timeout):
            out.append(_div(probe, "timeout", src, tgt, candidates))
        if not same_retries(src, tgt):
            out.append(_div(probe, "retries", src, tgt, candidates))
        if src.mirror != tgt.mirror:
            out.append(_div(probe, "mirror", src, tgt, candidates))
        for aspect in ("rewrite", "request_headers", "response_headers", "fault"):
            if getattr(src, aspect) != getattr(tgt, aspect):
                out.append(_div(probe, aspect, src, tgt, candidates))
    if probe.why == "authorization":
        backends = [b for b, _ in src.backends] if src.status == "routed" else []
        if hasattr(src_eval, "world"):
            # Every pod the Service selects, not only those this request is routed to: pods
            # are reached at their own addresses too (a route answering itself, 404 or a
            # redirect; a subset only a header match leads to), so each one's proxy
            # authorization counts for every caller.
            svc = src_eval.world.services.get((probe.namespace, probe.service))
            selected = list(src_eval.world.select(probe.namespace, dict(svc.selector))) \
                if svc else []
            backends = list(dict.fromkeys(backends + selected))
        for backend in backends:
            for wid in backend.split("+"):
                if not wid or wid.startswith(("Service/", "pods/")):
                    continue
                a, a_src = src_eval.allowed(probe, wid, probe.port)
                hits.policies.update(a_src)
                hits.asked.setdefault((wid, probe.port), []).append(probe)
                b, b_src = tgt_eval.allowed(probe, wid, probe.port)
                if a != b:
                    # Only the source objects that decided (the policy that refused, the
                    # ALLOW policies of which one admitted or none did, the mTLS mode), the
                    # ones the target's deciding objects were written from, and the namespace
                    # and workload whose defaults apply when none decided, can hold a loss
                    # that explains the difference.
                    info = src_eval.world.workload(wid) if hasattr(src_eval, "world") else None
                    scope = set(a_src) | {wid} | (
                        {f"Namespace/{info.namespace}"} if info is not None else set())
                    for ref in b_src:
                        scope |= (origins or {}).get(ref, set())
                    out.append(Divergence(
                        probe, "authorization", f"{'allowed' if a else 'denied'} at {wid}",
                        f"{'allowed' if b else 'denied'} at {wid}",
                        direction="allow-more" if b else "refuse-more",
                        candidates=scope, workloads=frozenset({wid})))
    return out


def _div(probe: Probe, aspect: str, src: Outcome, tgt: Outcome,
         candidates: set[str]) -> Divergence:
    workloads = frozenset(w for backend, _ in src.backends + tgt.backends
                          for w in backend.split("+") if w)
    return Divergence(probe, aspect, src.summary(), tgt.summary(), candidates=candidates,
                      rule_paths=tuple(p for p in (src.rule_path, tgt.origin_path) if p),
                      other_rule=src.rule_path != tgt.origin_path, workloads=workloads)


def _workloads_named(world: World, by_name: dict[str, list[str]]) -> dict[str, set[str]]:
    """Workload id -> the shared names (keys of ``by_name``) of the Services selecting it."""
    out: dict[str, set[str]] = {}
    if not by_name:
        return out
    for (ns, name), svc in sorted(world.services.items()):
        if name in by_name:
            for wid in world.select(ns, dict(svc.selector)):
                out.setdefault(wid, set()).add(name)
    return out


def _explain_by_name(d: Divergence, by_name: dict[str, list[str]],
                     named: dict[str, set[str]]) -> set[str]:
    """Name-wide losses (``_NAME_WIDE``) for a divergence whose request is addressed to a
    Service of a shared name, or whose outcome names a pod of one."""
    names = {d.probe.service} & set(by_name)
    for wid in d.workloads:
        names |= named.get(wid, set())
    declared = declarations()
    return {text for name in names for text in by_name[name]
            if text.split()[0] in declared and not declared[text.split()[0]].windowed and
            declared[text.split()[0]].covers(d.aspect, d.direction,
                                             d.probe.client.authenticated)}


def _explain(d: Divergence, by_object: dict[str, list[Loss]],
             bodies: dict[str, dict[str, Any]]) -> list[str]:
    """The losses on the objects that decided the probe whose declared aspect (and, for
    authorization, direction) matches the divergence (mappings/aspects.yaml). When the two
    meshes applied different rules, a loss that changes which rule a request hits (aspect
    ``match``) explains any routing aspect."""
    declared = declarations()
    # The rule lists the rule paths point into (``spec.http[``, ``spec.routes[``...).
    roots = {p[:p.index("[") + 1] for p in d.rule_paths if "[" in p}
    found = []
    for ref in sorted(d.candidates):
        for loss in by_object.get(ref, []):
            can = declared.get(loss.code)
            if can is None or can.windowed or not (can.covers(d.aspect, d.direction,
                                              d.probe.client.authenticated) or
                    (d.other_rule and d.aspect != "authorization" and can.covers("match"))):
                continue
            if loss.code == "ROUTE_PREFIX_SEGMENT" and not _prefix_differs(
                    bodies.get(ref), loss.path, d.probe.path):
                continue  # only requests where raw and segment prefixes disagree
            if loss.code == "AUTHZ_PROBE_ROUTE" and not _probe_path(loss.message, d.probe):
                continue  # it admits GETs of the kubelet's probe paths, nothing else
            if loss.code == "CONSUL_AUTHZ_NAMESPACE" and not _unlisted(loss.message, d.probe):
                continue  # it explains callers of the namespace it could not list, only
            if loss.code == "ROUTE_RETRY_CONDITION" and d.aspect == "retries" and \
                    _RETRIED_STILL.search(loss.message) and _NOT_RETRIED not in loss.message:
                # Some conditions were kept, so the rule is retried as often as before (the
                # writer keeps the count): a different count is not this loss's doing.
                continue
            named = _RULES_NAMED.search(loss.message)
            if named and d.rule_paths and not any(
                    _within(p, rule.strip()) for p in d.rule_paths
                    for rule in named.group(1).split(",")):
                continue  # a loss filed on the rule list names the rules it concerns
            if any(loss.path.startswith(root) for root in roots) and \
                    not any(_within(loss.path, p) for p in d.rule_paths):
                continue  # a loss on another rule does not explain this rule's outcome
            found.append(f"{loss.code} {loss.object} {loss.path}")
    return sorted(set(found))


def _prefix_differs(body: dict[str, Any] | None, path: str, request: str) -> bool:
    """Whether Istio's raw prefix and Gateway API's segment prefix disagree on a request."""
    from migrate.dialects.fields import split_path

    match = dig(body, *split_path(path), default=None) if body else None
    # Istio's loss path ends at the StringMatch ({prefix: ...}); Consul's at the pathPrefix
    # string itself. Unread, the loss would explain every request of the rule.
    prefix = str(match.get("prefix", "")) if isinstance(match, dict) else (
        match if isinstance(match, str) else "")
    if not prefix:
        return True  # cannot tell: keep the loss as an explanation
    request = request.partition("?")[0]
    base = prefix.rstrip("/")
    raw = request.startswith(prefix)
    segment = request == base or request.startswith(base + "/") or base == ""
    return raw != segment


# The writer's message lists the services, or says "(none: ...)" when the namespace holds
# none (write_intentions._namespace); both forms must parse, or the loss explains every caller.
_NAMESPACE_LISTED = re.compile(r"namespace (\S+) became the Consul services ([^;]*);")


def _unlisted(message: str, probe: Probe) -> bool:
    """Whether the probe's caller is of the namespace a CONSUL_AUTHZ_NAMESPACE loss is about
    and not among the Consul services that namespace became (a listed caller was kept; a
    caller of another namespace is not this loss's business). True when the message cannot
    be read, to keep the loss."""
    m = _NAMESPACE_LISTED.search(message)
    if not m:
        return True
    listed = set() if m.group(2).startswith("(none") else {
        n.strip() for n in m.group(2).split(",")}
    return m.group(1) == probe.client.namespace and probe.client.service_account not in listed


# route_policy.policy_annotations: the lost conditions, and whether any condition was kept.
_RETRIED_STILL = re.compile(r"^retry conditions \S+ have no Linkerd form")
_NOT_RETRIED = "this rule is no longer retried"
_RULES_NAMED = re.compile(r"\(rules without retries: ([^)]*)\)")
_PROBE_PATHS = re.compile(r"probe paths \(([^)]*)\)")


def _probe_path(message: str, probe: Probe) -> bool:
    """Whether a probe is a GET of a path an AUTHZ_PROBE_ROUTE loss names."""
    m = _PROBE_PATHS.search(message)
    paths = {p.strip() for p in m.group(1).split(",")} if m else set()
    return probe.method == "GET" and probe.path.partition("?")[0] in paths


def _within(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[")


def render_text(result: Equivalence) -> str:
    """The report ``meshmigrate verify`` prints."""
    lines = [f"{'service':<40} {'probes':>7} {'diverge':>8} {'unexplained':>12}"]
    for svc, (p, d, u) in sorted(result.per_service.items()):
        lines.append(f"{svc:<40} {p:>7} {d:>8} {u:>12}")
    for d in result.divergences:
        why = "; ".join(d.explained_by) or "NOTHING: a conversion bug"
        aspect = d.aspect + (f", {d.direction}" if d.direction else "")
        lines += [f"- {d.probe}  [{aspect}]", f"    source: {d.source}",
                  f"    target: {d.target}", f"    explained by: {why}"]
    lines.append(f"{counted(result.probes, 'probe')}, "
                 f"{counted(len(result.divergences), 'divergence')}, "
                 f"{len(result.unexplained)} unexplained"
                 + (f", {result.unevaluated} not evaluated" if result.unevaluated else ""))
    return "\n".join(lines) + "\n"
