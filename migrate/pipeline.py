"""The pipeline as one call: read -> IR -> capability check -> write -> plan.

:func:`plan_migration` is what the CLI calls; tests and other tools can call it too. It never
exits the process and never prints.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator, Mapping

from migrate import ledger, mappings
from migrate.check import check_capabilities
from migrate.dialects.base import Reader, ReadResult
from migrate.depth import is_too_deep, too_deep_message
from migrate.dialects.coexist import Coexistence
from migrate.errors import InputProblem, UsageError
from migrate.gcpause import no_gc_pauses as _no_gc_pauses
from migrate.install import apply_settings
from migrate.ir.graph import MeshGraph
from migrate.ir.model import (
    AuthzPolicy,
    DestinationPolicy,
    EgressPolicy,
    ExternalService,
    MTLSPolicy,
    Opaque,
    Route,
    Service,
    Workload,
)
from migrate.losses import LossLog, ObjectRef, Severity
from migrate.plan.builder import PlanInput, assign_losses, build_steps, plaintext_hops
from migrate.plan.commands import render
from migrate.plan.model import Plan
from migrate.plan.order import exposed_hops, migration_order, override_order
from migrate.sources.files import read_files, relative
from migrate.sources.model import RawObject, SourceResult
from migrate.verify.digest import input_digest

if TYPE_CHECKING:
    from migrate.verify.compare import Equivalence
    from migrate.verify.registry import Settings


class LazyRegistry(Mapping[str, Any]):
    """Mesh name -> a class or object of that mesh's modules, imported on first lookup.

    A plan uses one reader, one writer and two meshes' coexistence: importing every mesh's
    modules up front was several per cent of a 2,000-service plan (docs/performance.md).
    Listing the names (``sorted(SOURCES)``) imports nothing.
    """

    def __init__(self, where: dict[str, str]) -> None:
        self._where = where
        """Mesh name -> ``"module:attribute"``."""
        self._loaded: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded:
            module, _, attribute = self._where[name].partition(":")
            self._loaded[name] = getattr(importlib.import_module(module), attribute)
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


SOURCES: Mapping[str, type[Reader]] = LazyRegistry({
    "istio": "migrate.dialects.istio.reader:IstioReader",
    "linkerd": "migrate.dialects.linkerd.reader:LinkerdReader",
    "consul": "migrate.dialects.consul.reader:ConsulReader"})
TARGETS: Mapping[str, type] = LazyRegistry({
    "linkerd": "migrate.dialects.linkerd.writer:LinkerdWriter",
    "istio": "migrate.dialects.istio.writer:IstioWriter",
    "consul": "migrate.dialects.consul.writer:ConsulWriter"})
COEXISTENCE: Mapping[str, Coexistence] = LazyRegistry({
    "istio": "migrate.dialects.istio.coexist:ISTIO",
    "linkerd": "migrate.dialects.linkerd.coexist:LINKERD",
    "consul": "migrate.dialects.consul.coexist:CONSUL"})
"""Each mesh's side of a coexistence window (both roles)."""
# Namespaces that belong to platforms, never to the application mesh being moved.
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "linkerd",
                               "linkerd-egress", "linkerd-viz", "linkerd-jaeger",
                               "linkerd-multicluster", "consul"})


@dataclass
class ClusterOptions:
    """How to reach a live cluster (kubectl's habits)."""

    kubeconfig: str | None = None
    context: str | None = None
    namespaces: list[str] = field(default_factory=list)
    """Only these namespaces; empty means all."""
    timeout: float = 30.0
    progress: Callable[[str, int], None] | None = None
    """Called with (resource, objects so far) while reading."""


@dataclass
class PlanOptions:
    """What a person chose on the command line."""

    source: str
    target: str
    paths: list[str]
    target_version: str = ""
    order: list[str] = field(default_factory=list)
    trust_domain: str = "cluster.local"
    root_namespace: str = "istio-system"
    """Istio's root namespace, where mesh-wide Istio objects live: read from when Istio is the
    source (other sources use their control plane's namespace), written to when it is the
    target."""
    linkerd_default_policy: str = "all-unauthenticated"
    """Linkerd's cluster-wide default inbound policy (an install setting) when it is the source."""
    istio_outbound_policy: str = "ALLOW_ANY"
    """Istio as the source: the mesh config's ``outboundTrafficPolicy.mode`` (install setting)."""
    consul_default_intention: str = "deny"
    """What Consul does with traffic no intention matches (ACL default policy) as the source."""
    consul_inject_default: bool = False
    """Consul as the source: Helm ``connectInject.default`` (pods without the annotation are
    injected)."""
    consul_allow_namespaces: tuple[str, ...] = ("*",)
    """Consul as the source: Helm ``connectInject.k8sAllowNamespaces`` (the injector touches
    no other namespace, whatever the pod annotation says)."""
    consul_deny_namespaces: tuple[str, ...] = ()
    """Consul as the source: Helm ``connectInject.k8sDenyNamespaces``."""
    istio_routes: str = "virtualservice"
    """Istio as the target: ``virtualservice`` or ``gateway-api`` (HTTPRoutes)."""
    staging: str = "strict"
    """Linkerd as the target: ``strict`` staged policy, or ``audit`` (admits every request
    from the move to the enforce step; for operators who accept that knowingly)."""
    stdin: IO[bytes] | None = None
    cluster: ClusterOptions | None = None
    """Read this cluster when ``paths`` is empty."""
    verify: bool = True
    """Run the equivalence check on the plan's final state."""
    explicit: frozenset[str] = frozenset()
    """Settings given on the command line: the input's install configuration does not override
    them (:func:`migrate.install.apply_settings`)."""
    keep_objects: bool = True
    """Keep every object read in ``PlanResult.read.objects`` (the checks need them all), and
    each object's field ledger in ``PlanResult.read.accounted`` (False drops the ledgers,
    which nothing in a plan reads). With False and ``verify`` off, the bodies the plan itself
    does not use are let go once the reader is done: only the source mesh's own objects
    (restored on rollback) stay, packed (:meth:`RawObject.packed`). Most of an input is
    Deployments and Services, so this is most of its memory (docs/performance.md)."""
    stage: Callable[[str], None] | None = None
    """Called with the name of each long stage as it starts (the CLI's progress line)."""


@dataclass
class PlanResult:
    """The plan plus everything needed to report on it."""

    plan: Plan
    losses: LossLog
    problems: list[InputProblem]
    read: ReadResult
    notes: list[str] = field(default_factory=list)
    """Things said while reading (e.g. a LIST restarted after its continue token expired)."""


def check_source(source: str) -> None:
    """Refuse a source mesh that has no reader, with a hint."""
    check_pair(source, next(t for t in sorted(TARGETS) if t != source))


def check_pair(source: str, target: str) -> None:
    """Refuse meshes or directions that do not exist yet, with a hint."""
    import difflib

    if source == target:
        raise UsageError(f"--from and --to are both {source}: nothing to migrate")
    for role, name, known in (("source", source, SOURCES), ("target", target, TARGETS)):
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" Did you mean {close[0]}?" if close else ""
            raise UsageError(f"unknown {role} mesh {name!r}: supported {role}s are "
                             f"{', '.join(sorted(known))}.{hint}")


def root_namespace(options: PlanOptions) -> str:
    """The source's mesh-wide namespace: Istio's root namespace, else the control plane's."""
    return options.root_namespace if options.source == "istio" else \
        COEXISTENCE[options.source].CONTROL_NAMESPACE


def make_reader(options: PlanOptions, losses: LossLog, problems: list[InputProblem]) -> Reader:
    """The source mesh's reader with the settings it takes."""
    settings: dict[str, dict[str, Any]] = {
        "istio": {"root_namespace": options.root_namespace,
                  "outbound_policy": options.istio_outbound_policy},
        "linkerd": {"cluster_default_policy": options.linkerd_default_policy,
                    "trust_domain": options.trust_domain},
        "consul": {"default_intention": options.consul_default_intention,
                   "trust_domain": options.trust_domain,
                   "inject_default": options.consul_inject_default,
                   "allow_namespaces": options.consul_allow_namespaces,
                   "deny_namespaces": options.consul_deny_namespaces},
    }
    return SOURCES[options.source](losses, problems,  # type: ignore[call-arg]
                                   **settings.get(options.source, {}))


def make_writer(options: PlanOptions, losses: LossLog, table: mappings.CapabilityTable,
                version: str) -> Any:
    """The target mesh's writer with the settings it takes."""
    extra: dict[str, Any] = {"routes_api": options.istio_routes,
                             "istio_root_namespace": options.root_namespace} \
        if options.target == "istio" else {}
    if options.staging != "strict":
        if options.target != "linkerd":
            raise UsageError(f"--staging {options.staging} is for --to linkerd (its Servers' "
                             f"audit access policy); {options.target} has no audit form")
        extra["staging"] = options.staging
    return TARGETS[options.target](losses, table, version, trust_domain=options.trust_domain,
                                   root_namespace=root_namespace(options), **extra)


def plan_migration(options: PlanOptions) -> PlanResult:
    """Read the input and build the whole plan."""
    with _no_gc_pauses():
        return _plan_migration(options)


def _plan_migration(options: PlanOptions) -> PlanResult:
    check_pair(options.source, options.target)
    table = mappings.table(options.target)
    version = options.target_version or table.default_version
    if table.versions and version not in table.versions:
        raise UsageError(f"unknown {options.target} version {version!r}: choose one of "
                         f"{', '.join(table.versions)}")
    stage = options.stage or (lambda name: None)
    losses = LossLog()
    notes: list[str] = []
    stage("reading the input")
    source = read_source(options, losses, notes)
    stage("mapping to " + options.target)
    problems = [InputProblem(relative(pr.source), pr.line, pr.column, pr.message)
                for pr in source.problems]
    unreadable = list(problems)  # documents with no object to name (the ledger lists them)
    settings = apply_settings(options, SOURCES[options.source].install_settings(source.objects),
                              SOURCES[options.source].SETTINGS)
    root = root_namespace(options)
    reader = make_reader(options, losses, problems)
    reader.keep_ledgers = options.keep_objects
    read = reader.read(source)
    if options.paths:
        require_source_mesh(options.source, reader, read, source, problems)
    digest = input_digest(o.body for o in source.objects)
    listed = ledger.listing(read)
    if not options.verify and not options.keep_objects:
        # The source lists every object read; only the source mesh's own objects stay (for
        # rollback copies), packed: as dicts they were a sixth of a plan's peak memory.
        del source
        read.raw = {ref: raw.packed() for ref, raw in read.raw.items()}
        read.objects = [read.raw[o.ref] for o in read.objects if o.ref in read.raw]
    graph = read.graph
    check_capabilities(graph, table, version, losses)
    namespaces, outside = _namespaces(graph, root)
    target = make_writer(options, losses, table, version).write(graph, namespaces)
    ledger.credit_contributors(target, graph)
    deps = graph.namespace_dependencies(namespaces)
    ingress = graph.ingress_namespaces() & set(namespaces)
    computed = migration_order(deps, ingress)
    groups = override_order(options.order, computed) if options.order else computed
    unknown = [ns for ns in options.order if ns not in namespaces]
    if unknown:
        raise UsageError(f"--order names namespaces that are not migrated: {', '.join(unknown)} "
                         f"(migrated: {', '.join(namespaces)})")
    cost = exposed_hops(deps, groups) if options.order else []
    for hop in cost:
        losses.report(
            "PLAN_ORDER_OVERRIDE", Severity.MANUAL, "plan",
            ObjectRef("Namespace", "", str(hop["callee"]), "v1"), "metadata.name",
            f"{hop['caller']} moves {hop['groups_exposed']} group(s) before its callee "
            f"{hop['callee']}: for those steps {hop['callee']} (still on {options.source}) gets "
            "plaintext calls with no peer identity; STRICT mTLS resets them and identity-based "
            "authorization refuses them",
            f"Before {hop['caller']} moves, set {hop['callee']}'s PeerAuthentication to "
            "PERMISSIVE and add the caller pods' CIDRs (ipBlocks) to its identity-based rules, "
            "or keep the computed order.")
    stage("planning the steps")
    pin = PlanInput(graph, read, target, losses, groups, deps, ingress, root,
                    COEXISTENCE[options.source], COEXISTENCE[options.target], version)
    steps = build_steps(pin)
    ledger.name_command_sources(steps, target, listed)
    plaintext_hops(pin, steps)
    assign_losses(pin, steps)
    plan = Plan(
        source=options.source, source_version="", target=options.target, target_version=version,
        groups=groups,
        dependencies=[(a, b, list(deps.edges[a, b]["reasons"])) for a, b in sorted(deps.edges)],
        ingress_namespaces=sorted(ingress), order_overridden=bool(options.order),
        override_cost=cost, steps=steps, losses=list(losses), outside=outside,
        input_problems=[str(p) for p in problems],
        skipped=dict(sorted(read.skipped.items())), settings=settings, input_digest=digest,
        staged_policy=COEXISTENCE[options.target].STAGED_POLICY)
    plan.ledger = ledger.build_ledger(steps, plan.losses, read, options.target, listed,
                                      unreadable)
    if options.verify:
        stage("checking equivalence")
        plan.equivalence = verify_plan(read.objects, plan, options)
        stage("checking coexistence")
        plan.coexistence = check_coexistence(read.objects, plan, options)
    return PlanResult(plan, losses, problems, read, notes)


# API groups of meshes and mesh-adjacent projects, so that a refusal can say what the input
# holds instead; a registered source's own groups come from its reader's MESH_GROUPS.
OTHER_MESH_GROUPS = {
    "kuma.io": "Kuma / Kong Mesh", "appmesh.k8s.aws": "AWS App Mesh",
    "split.smi-spec.io": "SMI (Open Service Mesh, Traefik Mesh)",
    "access.smi-spec.io": "SMI (Open Service Mesh, Traefik Mesh)",
    "specs.smi-spec.io": "SMI (Open Service Mesh, Traefik Mesh)",
    "policy.openservicemesh.io": "Open Service Mesh", "config.openservicemesh.io":
    "Open Service Mesh", "cilium.io": "Cilium", "traefik.containo.us": "Traefik",
    "traefik.io": "Traefik"}


def require_source_mesh(mesh: str, reader: Reader, read: ReadResult, source: SourceResult,
                        problems: list[InputProblem]) -> None:
    """Refuse file input that shows nothing of the source mesh.

    Such an input would still plan the source's uninstall and CRD deletion at cleanup, for a
    mesh the plan never read (a wrong ``--from``, an empty folder, the wrong dump). A cluster
    read is refused earlier for the same reason (``MeshNotFound``: none of its API groups).

    Raises:
        UsageError: with what the input holds instead and the supported sources.
    """
    if reader.found_mesh(read):
        return
    groups: dict[str, int] = {}
    for raw in source.objects:
        groups[raw.group] = groups.get(raw.group, 0) + 1
    others = sorted(name for name, cls in SOURCES.items()
                    if name != mesh and set(groups) & set(cls.MESH_GROUPS))
    found = [f"{g} ({n} object{'s' if n != 1 else ''}"
             + (f", {OTHER_MESH_GROUPS[g]}" if g in OTHER_MESH_GROUPS else "") + ")"
             for g, n in sorted(groups.items()) if g]
    core = groups.get("", 0)
    if core:
        found.append(f"{core} core Kubernetes object{'s' if core != 1 else ''}")
    holds = "; found " + ", ".join(found) if found else "; the input holds no objects"
    if problems:
        # The documents' own problems are the likely cause: the error is all a person sees.
        shown = "; ".join(str(p) for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        holds += f"; {len(problems)} document(s) could not be read: {shown}{more}"
    hint = f" Did you mean --from {others[0]}?" if len(others) == 1 else \
        (f" It holds {' and '.join(others)} configuration." if others else "")
    raise UsageError(
        f"no {mesh} configuration in the input (none of its objects, and no namespace or "
        f"workload marked for {mesh} injection){holds}.{hint} Supported sources are "
        f"{', '.join(sorted(SOURCES))}; a plan never uninstalls a mesh it did not read.")


def verify_settings(options: PlanOptions) -> Settings:
    """Mesh-wide facts the evaluators need that no manifest holds."""
    # The checks' modules are imported when a check runs: `plan --no-verify` needs none.
    from migrate.verify.registry import Settings

    return Settings(trust_domain=options.trust_domain, root_namespace=options.root_namespace,
                    linkerd_default_policy=options.linkerd_default_policy,
                    consul_default_allow=options.consul_default_intention == "allow",
                    consul_inject_default=options.consul_inject_default)


def verify_plan(objects: list[RawObject], plan: Plan, options: PlanOptions) -> Equivalence:
    """Compare the source with the plan's final state on generated probes."""
    from migrate.emit.manifests import annotated
    from migrate.verify.compare import compare, final_state

    # With the source annotation, as the files carry it: the check maps the target's deciding
    # objects back to the source objects they were written from (and `verify` on the written
    # plan sees the same).
    target, annotations = final_state(
        ([annotated(m) for m in s.manifests], [render(c) for c in s.commands])
        for s in plan.steps)
    return compare([o.body for o in objects], target, annotations, plan.losses,
                   source_mesh=options.source, target_mesh=options.target,
                   settings=verify_settings(options))


def check_coexistence(objects: list[RawObject], plan: Plan,
                      options: PlanOptions) -> list[dict[str, Any]]:
    """Each step's mixed state evaluated for the calls between namespaces."""
    from migrate.verify.coexist import coexistence

    moved: list[str] = []
    steps = []
    for step in plan.steps:
        if step.kind == "move":
            moved = moved + step.namespaces
        steps.append(([m.body for m in step.manifests], [render(c) for c in step.commands],
                      list(moved)))
    with _no_gc_pauses():  # as for the equivalence check (verify/compare.py)
        result = coexistence(steps, [o.body for o in objects],
                             [(a, b) for a, b, _ in plan.dependencies],
                             source_mesh=options.source, target_mesh=options.target,
                             settings=verify_settings(options),
                             source_groups=COEXISTENCE[options.source].GROUP_SUFFIXES,
                             losses=plan.losses)
    for record, step in zip(result, plan.steps):
        record["step"] = step.number  # the runbook's numbering (00 is the prerequisites)
    return result


def read_source(options: PlanOptions, losses: LossLog, notes: list[str]) -> SourceResult:
    """Objects from the files named, or else from the cluster."""
    if options.paths:
        return read_files(options.paths, options.stdin)
    if options.cluster is None:
        raise UsageError("no input: give -f PATH (files, folders, or - for stdin) or read a "
                         "cluster")
    return read_cluster_source(options.source, options.cluster, losses, notes)


def read_cluster_source(mesh: str, cluster: ClusterOptions, losses: LossLog,
                        notes: list[str]) -> SourceResult:
    """Read what the mesh's reader needs from a live cluster (imports kubernetes now)."""
    from migrate.dialects import kube
    from migrate.sources.cluster import Cluster, read_cluster, read_named_configmaps

    reader = SOURCES[mesh]
    client = Cluster(cluster.kubeconfig, cluster.context, cluster.timeout)
    progress = cluster.progress or (lambda resource, count: None)
    result = read_cluster(
        client, [*kube.HANDLERS, *reader.HANDLERS], {**kube.VERSIONS, **reader.GROUPS},
        reader.MESH_GROUPS, cluster.namespaces,
        lambda resource, count: progress(resource.resource, count))
    notes.extend(result.restarts)
    configs, refused = read_named_configmaps(client, reader.INSTALL_CONFIGMAPS)
    result.source.objects.extend(configs)
    for namespace, name in refused:
        losses.report(
            "CLUSTER_FORBIDDEN", Severity.MANUAL, "input",
            ObjectRef("ConfigMap", namespace, name, "v1"), "get",
            f"cannot get ConfigMap {namespace}/{name} (403 Forbidden): the install settings "
            "it holds come from flags and defaults in this plan",
            f'Grant get on apiGroups [""], resources ["configmaps"], resourceNames '
            f'["{name}"] (meshmigrate rbac prints the whole read-only ClusterRole), or give '
            "the settings as flags, then re-run.")
    _refuse_too_deep(result.source)
    for denied in result.forbidden:
        r = denied.resource
        losses.report(
            "CLUSTER_FORBIDDEN", Severity.MANUAL, "input",
            ObjectRef(r.kind, "", "*", r.api_version), "list",
            f"cannot list {r.resource} (403 Forbidden): its objects are not in this plan",
            f'Grant get and list on apiGroups ["{r.group}"], resources ["{r.plural}"] '
            "(meshmigrate rbac prints the whole read-only ClusterRole), then re-run.")
    return result.source


def _refuse_too_deep(source: SourceResult) -> None:
    """Objects a cluster serves nested deeper than a file may hold become input problems.

    The API server accepts 10,000 levels (Go's JSON limit); every later stage walks objects
    recursively, so the limit files have (:mod:`migrate.depth`) holds for a cluster too.
    """
    kept = []
    for raw in source.objects:
        if is_too_deep(raw.body):
            ref = raw.ref
            source.problems.append(InputProblem(
                raw.source, None, None, f"{ref.kind} {ref.namespace}/{ref.name}: "
                f"{too_deep_message()}"))
        else:
            kept.append(raw)
    source.objects[:] = kept


def detect_mesh(options: PlanOptions) -> tuple[str, str]:
    """The source mesh found in the input (``--from auto``) and what showed it.

    Raises:
        UsageError: no supported mesh, or more than one, was found.
    """
    groups: set[str] = set()
    injected: set[str] = set()
    if options.paths:
        objects = read_files(options.paths, options.stdin).objects
        groups = {o.group for o in objects}
        injected = {o.ref.name for o in objects if o.kind == "Namespace" and _istio_labels(o.body)}
    elif options.cluster is not None:
        from migrate.sources.cluster import Cluster

        client = Cluster(options.cluster.kubeconfig, options.cluster.context,
                         options.cluster.timeout)
        groups = {g["name"] for g in client.get("/apis").get("groups", [])}
        namespaces = client.get("/api/v1/namespaces").get("items") or []
        injected = {n["metadata"]["name"] for n in namespaces if _istio_labels(n)}
    found = sorted(mesh for mesh, reader in SOURCES.items()
                   if groups & set(reader.MESH_GROUPS))
    if len(found) != 1:
        raise UsageError("--from auto: " + (f"found several meshes ({', '.join(found)}); "
                                            "choose one" if found else
                                            "no supported mesh's API groups were found"))
    shown = sorted(groups & set(SOURCES[found[0]].MESH_GROUPS))
    evidence = f"API groups {', '.join(shown)}"
    if injected:
        evidence += f"; injection labels on {len(injected)} namespace(s)"
    return found[0], evidence


def _namespaces(graph: MeshGraph, root: str) -> tuple[list[str], list[str]]:
    """Namespaces to migrate, and namespaces seen but left alone (no mesh in them)."""
    seen: set[str] = set()
    meshed: set[str] = set()
    for w in graph.of(Workload):
        seen.add(w.namespace)
        if graph.in_mesh(w):
            meshed.add(w.namespace)
    for cls in (Route, DestinationPolicy, MTLSPolicy, AuthzPolicy):
        for rec in graph.of(cls):
            seen.add(rec.namespace)  # type: ignore[attr-defined]
            meshed.add(rec.namespace)  # type: ignore[attr-defined]
    for svc in graph.of(Service):
        seen.add(svc.key.namespace)
    for cls in (Opaque, ExternalService, EgressPolicy):
        for rec in graph.of(cls):
            seen.add(rec.namespace)  # type: ignore[attr-defined]
    for ns in graph.namespaces_declared():
        seen.add(ns.name)
        if ns.injection != "none":
            meshed.add(ns.name)
    meshed -= SYSTEM_NAMESPACES | {root}
    return sorted(meshed), sorted(seen - meshed - SYSTEM_NAMESPACES - {root})


def _istio_labels(body: dict[str, object]) -> bool:
    meta = body.get("metadata")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return isinstance(labels, dict) and bool(
        labels.get("istio-injection") == "enabled" or labels.get("istio.io/rev")
        or labels.get("istio.io/dataplane-mode") == "ambient")


def verify_against_plan(options: PlanOptions, plan_dir: str,
                        coexistence_out: list[dict[str, Any]] | None = None) -> Equivalence:
    """Compare a source (files or cluster) with a plan folder written earlier.

    With ``coexistence_out``, the coexistence check of the plan's steps (with the requests
    the source refused, explained by the plan's losses) is appended to it too.
    """
    import json
    from pathlib import Path

    import yaml

    from migrate.errors import SourceError
    from migrate.losses import Loss
    from migrate.sources.model import RawObject as _Raw
    from migrate.verify.compare import compare, final_state
    from migrate.verify.world import dig

    root = Path(plan_dir)
    try:
        document = json.loads((root / "plan.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SourceError(f"{root / 'plan.json'}: not a meshmigrate plan ({exc})") from None
    recorded_mesh = str(dig(document, "source", "mesh", default=""))
    if recorded_mesh != options.source:
        made_from = recorded_mesh or "an unknown mesh"
        raise UsageError(f"{root / 'plan.json'}: the plan was made from {made_from}, not "
                         f"{options.source}: give --from {recorded_mesh}")
    losses = LossLog()
    notes: list[str] = []
    source = read_source(options, losses, notes)
    apply_settings(options, SOURCES[options.source].install_settings(source.objects),
                   SOURCES[options.source].SETTINGS)
    planned = str(dig(document, "source", "input_digest", default=""))
    found = input_digest(o.body for o in source.objects)
    if planned != found:
        raise UsageError(
            f"{root / 'plan.json'}: the input is not the one the plan was made from (plan: "
            f"{planned or 'no input digest recorded'}; input: {found}); verify the plan "
            "against the files or cluster it was planned from, or plan again")
    reader = make_reader(options, losses, [])
    objects: list[_Raw] = reader.read(source).objects
    steps = []
    for step in document.get("steps", []):
        manifests = []
        for rel in step.get("manifests", []):
            manifests.extend(d for d in yaml.safe_load_all((root / rel).read_text()) if d)
        # Each command is {"run", "argv", "note"}; a plan written before commands were data
        # holds the text itself.
        steps.append((manifests, [c.get("run", "") if isinstance(c, dict) else str(c)
                                  for c in step.get("commands", [])]))
    target, annotations = final_state(steps)
    recorded = [Loss(x["code"], Severity(x["severity"]), x["feature"],
                     ObjectRef(x["object"]["kind"], x["object"]["namespace"],
                               x["object"]["name"], x["object"]["apiVersion"]),
                     x["path"], x["message"], x["action"]) for x in document.get("losses", [])]
    target_mesh = str(document.get("target", {}).get("mesh", "linkerd"))
    if coexistence_out is not None:
        from migrate.verify.coexist import coexistence

        moved: list[str] = []
        mixed = []
        for step, (manifests, commands) in zip(document.get("steps", []), steps):
            if step.get("kind") == "move":
                moved = moved + [str(ns) for ns in step.get("namespaces", [])]
            mixed.append((manifests, commands, list(moved)))
        deps = [(str(d.get("caller")), str(d.get("callee")))
                for d in dig(document, "order", "dependencies", default=[])
                if isinstance(d, dict)]
        checked = coexistence(
            mixed, [o.body for o in objects], deps, source_mesh=options.source,
            target_mesh=target_mesh, settings=verify_settings(options), losses=recorded,
            source_groups=COEXISTENCE[options.source].GROUP_SUFFIXES)
        for number, record in enumerate(checked):
            record["step"] = number  # the runbook's numbering (00 is the prerequisites)
        coexistence_out.extend(checked)
    return compare([o.body for o in objects], target, annotations, recorded,
                   source_mesh=options.source, target_mesh=target_mesh,
                   settings=verify_settings(options))
