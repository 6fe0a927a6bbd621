"""The ledger: where each object read went.

Every object of the input gets one entry (plan.json ``sources``, the runbook's appendix,
``meshmigrate explain``) with a disposition:

- ``converted``: target objects (by step and manifest path) and commands carry its meaning;
- ``not-needed``: the target needs no counterpart, for a reason with a stable code
  (:data:`REASONS`);
- ``lost``: nothing carries it; the loss records it caused say why;
- ``outside``: not mesh configuration (a Kubernetes object left as it is, or a kind the
  source reader does not read);
- ``input-problem``: refused, with the problems.

``untraced`` is what an object gets when none of these holds: a meshmigrate bug (the tests
hold every corpus set and sample to none).

The ledger is computed once, from what the stages already produced: the IR (each record
keeps its origin; :attr:`MeshGraph.contributors` names the objects folded into one), the
manifests' and commands' sources, and the loss log. No writer keeps state for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from migrate.aspects import declarations
from migrate.depth import MAX_DEPTH
from migrate.dialects import kube
from migrate.dialects.base import ReadResult, TargetConfig
from migrate.dialects.fields import NOISE
from migrate.emit.manifests import step_manifests
from migrate.errors import InputProblem
from migrate.ir.graph import MeshGraph
from migrate.ir.model import DestinationPolicy, MTLSPolicy, Route, Service
from migrate.losses import Loss, ObjectRef, natural
from migrate.plan.commands import Command, render
from migrate.plan.model import Step
from migrate.sources.files import relative
from migrate.sources.model import RawObject

DISPOSITIONS = ("converted", "not-needed", "lost", "outside", "input-problem", "untraced")
"""Every disposition an entry can have, in the order the runbook counts them."""

REASONS = {
    "MTLS_AUTOMATIC": "it only asks for mesh mTLS (ISTIO_MUTUAL) to its destination, which "
                      "the target does for every meshed call without configuration",
    "SUBSETS_UNREFERENCED": "its subsets are named by no route of the input; a subset steers "
                            "only the requests a route sends to it, so none changes",
    "PROTOCOL_INFERRED": "the protocol it declares is the one the target reads from the "
                         "Service's ports (port name or appProtocol)",
    "MTLS_DEFAULT": "the mTLS mode it sets is the one the target applies with no "
                    "configuration (Linkerd: PERMISSIVE; Consul: STRICT)",
    "NO_SETTINGS": "it sets nothing (no spec): the target's defaults are the same",
    "KUBERNETES_OBJECT": "a Kubernetes object the migration leaves as it is; the mesh fields "
                         "it holds are read, and carried by the commands or objects named",
    "OTHER_KIND": "a kind the source mesh's reader does not read (counted under skipped "
                  "kinds)",
}
"""Reason code -> what it means: ``not-needed`` and ``outside`` entries name one or more
(docs/ledger.md lists them)."""


@dataclass
class Entry:
    """One object read and what became of it."""

    ref: ObjectRef
    file: str
    """The file it was read from (empty for a cluster or stdin read: see :attr:`origin`)."""
    line: int
    origin: str
    """``file``, ``stdin`` or ``cluster``."""
    disposition: str
    targets: list[tuple[str, str]] = field(default_factory=list)
    """(step id, manifest path under the plan folder) of each target object it shaped."""
    rewritten: list[tuple[str, str]] = field(default_factory=list)
    """(step id, manifest path) of the object itself as the plan rewrites it: a source mesh
    object's copy applied while both meshes run (a DestinationRule without ISTIO_MUTUAL, a
    route handed over), or metadata added to a workload. Not target objects."""
    commands: list[tuple[str, str]] = field(default_factory=list)
    """(step id, rendered command) of each command that carries its meaning."""
    losses: list[int] = field(default_factory=list)
    """Indexes into the plan's losses: those it caused."""
    reasons: list[str] = field(default_factory=list)
    """Codes of :data:`REASONS` (``not-needed`` and ``outside``)."""
    problems: list[str] = field(default_factory=list)
    """Why it was refused (``input-problem``)."""
    copies: list[str] = field(default_factory=list)
    """``file:line`` of other copies of the same object, which were not planned."""
    fields: dict[str, list[int]] | None = None
    """Source mesh objects: each field (leaf path) -> the losses that cover it (empty: it
    went where the entry's disposition says)."""

    @property
    def namespace(self) -> str:
        """The namespace the entry is listed under (a Namespace under itself)."""
        return self.ref.namespace or (self.ref.name if self.ref.kind == "Namespace" else "")

    def to_json(self) -> dict[str, Any]:
        """The entry as plan.json's ``sources`` holds it."""
        read: dict[str, Any] = {"origin": self.origin}
        if self.file:
            read["file"] = self.file
        if self.line:
            read["line"] = self.line
        out: dict[str, Any] = {
            **self.ref.to_json(), "read": read, "disposition": self.disposition,
            "targets": [{"step": s, "manifest": p} for s, p in self.targets],
            "rewritten": [{"step": s, "manifest": p} for s, p in self.rewritten],
            "commands": [{"step": s, "run": r} for s, r in self.commands],
            "losses": self.losses, "reasons": self.reasons, "problems": self.problems,
            "copies": self.copies}
        if self.fields is not None:
            out["fields"] = self.fields
        return out


def credit_contributors(target: TargetConfig, graph: MeshGraph) -> None:
    """Name on every manifest the objects folded into the ones it was written from
    (:meth:`MeshGraph.contribute`), so its ``meshmigrate.io/source`` names each of them."""
    _subset_contributions(graph)
    if not graph.contributors:
        return
    buckets = [target.prerequisites] + [
        ms for bucket in (target.routing, target.policy_staged, target.policy_enforced,
                          target.remove_at_enforce, target.routing_final,
                          target.remove_at_cleanup) for ms in bucket.values()]
    for manifests in buckets:
        for m in manifests:
            extra = {o for ref in m.sources for o in graph.contributors.get(ref, ())}
            if extra - set(m.sources):
                m.sources = tuple(sorted(set(m.sources) | extra))


@dataclass(frozen=True)
class Listed:
    """An object read, as the ledger needs it once the bodies may be gone."""

    ref: ObjectRef
    source: str
    line: int
    problems: tuple[str, ...] | None = None
    """Why it was refused; None when it was planned."""
    copy: bool = False
    """Another copy of the same object was planned instead."""


def listing(read: ReadResult) -> list[Listed]:
    """Every object the reader saw: refused, planned, and copies not planned."""
    out: list[Listed] = []
    seen: set[int] = set()
    for raw, problems in read.refused:
        seen.add(id(raw))
        out.append(Listed(raw.ref, raw.source, raw.line, tuple(problems)))
    out += [Listed(raw.ref, raw.source, raw.line) for raw in read.objects
            if id(raw) not in seen]  # an object of an unknown version is read and refused
    out += [Listed(raw.ref, raw.source, raw.line, copy=True) for raw in read.copies]
    out += [Listed(raw.ref, raw.source, raw.line) for raw in read.set_aside]
    return out


def _subset_contributions(graph: MeshGraph) -> None:
    """A route that sends requests to a subset is read together with the destination policy
    (DestinationRule) that defines the subset."""
    defined = {(dp.service, s.name): dp.origin.ref for dp in graph.of(DestinationPolicy)
               if dp.service is not None for s in dp.subsets}
    for route in graph.of(Route):
        for rule in route.rules:
            for b in rule.backends:
                ref = defined.get((b.service, b.subset)) if b.subset else None
                if ref is not None:
                    graph.contribute(route.origin.ref, ref)


def name_command_sources(steps: list[Step], target: TargetConfig,
                         objects: Iterable[Listed]) -> None:
    """Name on each step command the source objects whose meaning it carries.

    The coexistence code builds commands for a namespace or a workload without knowing the
    objects behind them; what a command touches says it: a namespace annotation the writer
    set from source objects (``TargetConfig.namespace_sources``) names them, any other
    label or annotation of a namespace names the Namespace object (its injection state), and
    a restart or patch of a workload names the workload.
    """
    namespaces: set[str] = set()
    workloads: dict[tuple[str, str, str], ObjectRef] = {}
    for listed in objects:
        if listed.problems is not None or listed.copy:
            continue
        ref = listed.ref
        if ref.kind == "Namespace":
            namespaces.add(ref.name)
        elif ref.kind in kube.POD_TEMPLATE:
            workloads[(ref.kind.lower(), ref.namespace, ref.name)] = ref
    for step in steps:
        step.commands = [_with_sources(c, target, namespaces, workloads)
                         for c in step.commands]


def _with_sources(command: Command, target: TargetConfig, namespaces: set[str],
                  workloads: dict[tuple[str, str, str], ObjectRef]) -> Command:
    if len(command.pipeline) != 1 or command.pipeline[0][:1] != ("kubectl",):
        return command
    argv = command.pipeline[0]
    verb = argv[1] if len(argv) > 1 else ""
    refs: set[str] = set()
    if verb in ("label", "annotate") and argv[2:3] == ("namespace",) and len(argv) > 3:
        ns = argv[3]
        for word in argv[4:]:
            if word.startswith("-"):
                continue
            key = word.split("=", 1)[0].removesuffix("-")
            named = target.namespace_sources.get((ns, key))
            if named:
                refs.update(r.source_id for r in named)
            elif ns in namespaces:
                refs.add(ObjectRef("Namespace", "", ns, "v1").source_id)
    elif verb in ("rollout", "patch"):
        words = [w for w in argv[2:] if not w.startswith("-")]
        ns = argv[argv.index("-n") + 1] if "-n" in argv[:-1] else "default"
        if verb == "rollout" and words[:1] == ["restart"] and len(words) > 1:
            kind, _, name = words[1].partition("/")
        elif verb == "patch" and len(words) > 1:
            kind, name = words[0], words[1]
        else:
            return command
        found = workloads.get((kind, ns, name))
        if found is not None:
            refs.add(found.source_id)
    if not refs:
        return command
    return Command(command.pipeline, command.note,
                   tuple(sorted(set(command.sources) | refs)))


def build_ledger(steps: list[Step], losses: list[Loss], read: ReadResult, target_mesh: str,
                 listed: list[Listed], unreadable: list[InputProblem]) -> list[Entry]:
    """One entry per object read (and per document that could not be read), sorted by
    namespace, kind and name. ``read.raw`` holds the source mesh's objects (their fields are
    listed); ``listed`` every object (:func:`listing`)."""
    graph = read.graph
    resolve = _resolver(listed)
    targets: dict[ObjectRef, list[tuple[str, str]]] = {}
    rewritten: dict[ObjectRef, list[tuple[str, str]]] = {}
    commands: dict[str, list[tuple[str, str]]] = {}
    for step in steps:
        folder = f"steps/{step.id}/"
        for name, m in step_manifests(step).items():
            for ref in set(m.sources):
                ref = resolve(ref)
                copy = (m.kind, m.namespace, m.name, _group(m.api_version)) == (
                    ref.kind, ref.namespace, ref.name, _group(ref.api_version))
                (rewritten if copy else targets).setdefault(ref, []).append(
                    (step.id, folder + name))
        for c in step.commands:
            for sid in c.sources:
                commands.setdefault(sid, []).append((step.id, render(c)))
    caused: dict[ObjectRef, list[int]] = {}
    for i, loss in enumerate(losses):
        caused.setdefault(resolve(loss.object), []).append(i)
    paths = {i: loss.path for i, loss in enumerate(losses)}
    for svc in graph.of(Service):
        if svc.protocol_origin is not None:
            # The declaring object caused what the target does not infer of the protocol.
            for i in caused.get(svc.origin.ref, ()):
                if losses[i].code == "SERVICE_PROTOCOL":
                    caused.setdefault(svc.protocol_origin.ref, []).append(i)
                    paths[i] = svc.protocol_origin.path
    inherited: dict[ObjectRef, set[int]] = {}
    for primary, others in graph.contributors.items():
        for other in others:
            # Folded into ``primary``: what became of it became of them.
            inherited.setdefault(other, set()).update(caused.get(primary, ()))
    copies: dict[ObjectRef, list[str]] = {}
    for item in listed:
        if item.copy:
            copies.setdefault(item.ref, []).append(_where(item.source, item.line))
    entries: list[Entry] = []
    for item in listed:
        if item.copy:
            continue
        ref = item.ref
        entry = _entry(item)
        entry.copies = sorted(copies.get(ref, []))
        if item.problems is not None:
            entry.disposition, entry.problems = "input-problem", list(item.problems)
            entries.append(entry)
            continue
        entry.targets = sorted(set(targets.get(ref, [])))
        entry.rewritten = sorted(set(rewritten.get(ref, [])))
        entry.commands = sorted(set(commands.get(ref.source_id, [])))
        own = set(caused.get(ref, []))
        # Folded into objects that were lost: their losses say what became of it too.
        entry.losses = sorted(own if entry.targets or entry.commands else
                              own | inherited.get(ref, set()))
        raw = read.raw.get(ref)
        if entry.targets or entry.commands:
            entry.disposition = "converted"
        elif raw is not None and (reasons := not_needed(raw, graph, target_mesh)):
            # What it asked for holds in the target without it (its losses are still listed:
            # a DestinationRule's ISTIO_MUTUAL is reported for the coexistence window).
            entry.disposition, entry.reasons = "not-needed", reasons
        elif entry.losses:
            entry.disposition = "lost"
        elif raw is not None:
            entry.disposition = "untraced"
        else:
            entry.disposition = "outside"
            entry.reasons = ["KUBERNETES_OBJECT" if _core(ref) else "OTHER_KIND"]
        if raw is not None:
            # A loss that holds only for a window of steps (a staging twin) is no field's fate.
            lasting = {i for i in own if not declarations()[losses[i].code].windowed}
            entry.fields = _fields(raw, entry, lasting, paths)
        entries.append(entry)
    for problem in unreadable:
        entries.append(Entry(ObjectRef("", "", "", ""), problem.source, problem.line or 0,
                             "file", "input-problem", problems=[problem.message]))
    entries.sort(key=lambda e: (e.namespace, e.ref.kind, e.ref.name, e.ref.api_version,
                                e.file, e.line))
    return entries


def _fields(raw: RawObject, entry: Entry, own: set[int], paths: dict[int, str]
            ) -> dict[str, list[int]]:
    """Each field of a source mesh object -> the losses that cover it: those of its own on
    the field or an ancestor; for an object nothing carries (``lost``), a field none of them
    names is covered by all of its losses, which together say why the object is gone."""
    out = {}
    body = raw.body
    nodes = set(_nodes(body)) if own else set()
    # A loss may name a field in the target's vocabulary (``spec.sources[0].principals[0]`` of
    # a Consul intention): it speaks for the deepest field of the object its path names.
    where = {i: _existing(paths[i], nodes) for i in own}
    # Sorted: the input's key order is no part of the object (any order gives the same plan).
    for path in sorted(leaves(body), key=natural):
        found = [i for i in sorted(own) if covers(where[i], path)]
        out[path] = found or (entry.losses if entry.disposition == "lost" else [])
    return out


def _resolver(listed: list[Listed]) -> Any:
    """A function giving the object read that a reference names: itself when it is one, else
    the one object read of that kind, namespace and name (a writer or planner may name a
    Namespace without the API version it was read at)."""
    known = {item.ref for item in listed}
    by_id: dict[str, list[ObjectRef]] = {}
    for ref in known:
        by_id.setdefault(ref.source_id, []).append(ref)

    def resolve(ref: ObjectRef) -> ObjectRef:
        if ref in known:
            return ref
        found = by_id.get(ref.source_id, [])
        return found[0] if len(found) == 1 else ref

    return resolve


def _nodes(value: Any, path: str = "", depth: int = MAX_DEPTH) -> Iterator[str]:
    """Every field path of an object, mappings and lists included (bookkeeping too)."""
    if path:
        yield path
    if depth <= 0:
        return
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _nodes(child, f"{path}.{key}" if path else str(key), depth - 1)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _nodes(child, f"{path}[{i}]", depth - 1)


def _existing(path: str, nodes: set[str]) -> str:
    """``path`` cut back to the deepest field the object has (itself when it has it)."""
    while path and path not in nodes:
        cut = max(path.rfind("."), path.rfind("["))
        if cut <= 0:
            return path  # names nothing of the object: covers only itself
        path = path[:cut]
    return path


def _entry(item: Listed) -> Entry:
    if item.source == "cluster":
        return Entry(item.ref, "", 0, "cluster", "")
    if item.source == "<stdin>":
        return Entry(item.ref, "", item.line, "stdin", "")
    return Entry(item.ref, relative(item.source), item.line, "file", "")


def _where(source: str, line: int) -> str:
    return f"{relative(source)}:{line}" if line else relative(source)


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def _core(ref: ObjectRef) -> bool:
    group = _group(ref.api_version)
    return (group, ref.kind) in kube.HANDLERS and ref.api_version.rsplit("/", 1)[-1] in \
        kube.VERSIONS.get(group, ())


# Meshes that encrypt and authenticate every call between meshed pods with no configuration.
# fact: linkerd.automatic-mtls
# fact: consul.mtls-strict-default
_AUTOMATIC_MTLS = frozenset({"linkerd", "consul"})
# The mTLS mode each target applies with no configuration.
# fact: linkerd.default-inbound-policy
# fact: consul.mtls-strict-default
_DEFAULT_MODE = {"linkerd": "PERMISSIVE", "consul": "STRICT"}


def not_needed(raw: RawObject, graph: MeshGraph, target_mesh: str) -> list[str]:
    """The reasons a source mesh object that shaped nothing and lost nothing needs no
    counterpart; empty when none explains every record read from it (then it is untraced)."""
    ref = raw.ref
    spec = raw.body.get("spec")
    if spec in (None, {}, []):
        return ["NO_SETTINGS"]
    reasons: set[str] = set()
    explained = False
    for dp in graph.of(DestinationPolicy):
        if dp.origin.ref != ref:
            continue
        if dp.outlier is not None:
            return []
        if dp.tls_mode == "ISTIO_MUTUAL" and target_mesh in _AUTOMATIC_MTLS:
            reasons.add("MTLS_AUTOMATIC")
        elif dp.tls_mode:
            return []
        if dp.subsets:
            if dp.service is None or _subset_routed(graph, dp):
                return []
            reasons.add("SUBSETS_UNREFERENCED")
        explained = True
    for mtls in graph.of(MTLSPolicy):
        if mtls.origin.ref != ref:
            continue
        if mtls.port_modes or mtls.mode != _DEFAULT_MODE.get(target_mesh):
            return []
        reasons.add("MTLS_DEFAULT")
        explained = True
    for svc in graph.of(Service):
        if svc.protocol_origin is not None and svc.protocol_origin.ref == ref:
            reasons.add("PROTOCOL_INFERRED")
            explained = True
    return sorted(reasons) if explained else []


def _subset_routed(graph: MeshGraph, dp: DestinationPolicy) -> bool:
    """Whether a route of the input sends requests to one of ``dp``'s subsets."""
    wanted = {s.name for s in dp.subsets}
    return any(b.service == dp.service and b.subset in wanted
               for route in graph.of(Route) for rule in route.rules for b in rule.backends)


def leaves(value: Any, path: str = "", depth: int = MAX_DEPTH) -> Iterator[str]:
    """Every non-empty leaf field of an object, written the way losses write paths, without
    Kubernetes bookkeeping (:data:`~migrate.dialects.fields.NOISE`)."""
    if path in NOISE:
        return
    if isinstance(value, dict) and value and depth > 0:
        for key, child in value.items():
            # Annotation keys hold dots and slashes: kept whole, as readers name them.
            yield from leaves(child, f"{path}.{key}" if path else str(key), depth - 1)
    elif isinstance(value, list) and value and depth > 0:
        for i, child in enumerate(value):
            yield from leaves(child, f"{path}[{i}]", depth - 1)
    elif value not in (None, {}, []):
        yield path


def covers(loss_path: str, path: str) -> bool:
    """Whether a loss at ``loss_path`` speaks for the field at ``path``: the same field, or
    one of its ancestors (``spec`` covers ``spec.http[0].route``)."""
    return path == loss_path or path.startswith(loss_path + ".") or \
        path.startswith(loss_path + "[")


def by_namespace(entries: list[Entry]) -> dict[str, list[Entry]]:
    """Entries grouped by the namespace they are listed under (``""``: cluster-wide)."""
    out: dict[str, list[Entry]] = {}
    for entry in entries:
        out.setdefault(entry.namespace, []).append(entry)
    return out
