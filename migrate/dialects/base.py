"""What every mesh dialect shares: the reader skeleton (dispatch by kind, duplicate
handling, field accounting) and the writer's output record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from migrate.dialects import kube
from migrate.dialects.fields import Fields
from migrate.errors import InputProblem
from migrate.install import InstallSetting
from migrate.ir.graph import MeshGraph
from migrate.ir.model import Workload
from migrate.losses import LossLog, ObjectRef, Severity
from migrate.names import labels_problems, metadata_problems, shown
from migrate.packing import pack, unpack
from migrate.plan.commands import Command
from migrate.sources.files import relative
from migrate.sources.model import RawObject, SourceResult

KindHandler = Callable[[Any, Fields, MeshGraph], None]


class Manifest:
    """One object a writer emits, with the source objects it came from.

    The body is kept packed (:mod:`migrate.packing`, about a quarter of the dicts' size) and
    each read of :attr:`body` returns a new copy: a plan holds every manifest of every step
    until it is written, and as dicts they were the largest part of its peak memory
    (docs/performance.md). What the planner asks of every manifest (API version, kind,
    name, namespace) is kept unpacked.
    """

    __slots__ = ("_packed", "sources", "patch", "api_version", "kind", "name", "namespace")

    def __init__(self, body: dict[str, Any], sources: tuple[ObjectRef, ...],
                 patch: bool = False) -> None:
        meta = body["metadata"]
        self._packed = pack(body)
        self.sources = sources
        self.patch = patch
        """True when the body only adds metadata to an object the cluster already has
        (applied server-side, it merges); rolling back removes what it added, never the
        object."""
        self.api_version = str(body.get("apiVersion", ""))
        """``apiVersion`` of the emitted object."""
        self.kind = str(body["kind"])
        """``kind`` of the emitted object."""
        self.name = str(meta["name"])
        """``metadata.name`` of the emitted object."""
        self.namespace = str(meta.get("namespace", ""))
        """``metadata.namespace`` (empty for cluster-scoped objects)."""

    @property
    def body(self) -> dict[str, Any]:
        """The emitted object: a new copy at each read (changing it changes nothing here)."""
        return unpack(self._packed)  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Manifest):
            return NotImplemented
        return (self.body, self.sources, self.patch) == (other.body, other.sources, other.patch)

    __hash__ = None  # type: ignore[assignment]  # equal by content, which is mutable data

    def __repr__(self) -> str:
        return f"Manifest(body={self.body!r}, sources={self.sources!r}, patch={self.patch!r})"


@dataclass
class ReadResult:
    """The IR plus what the reader saw: accounted field paths and skipped kinds."""

    graph: MeshGraph
    accounted: dict[ObjectRef, set[str]] = field(default_factory=dict)
    """Each source-mesh object's field ledger (empty when the reader's ``keep_ledgers`` is
    off: only tests and tools that audit the accounting read them)."""
    read: dict[str, int] = field(default_factory=dict)
    """``Kind`` -> number of objects modelled or reported."""
    skipped: dict[str, int] = field(default_factory=dict)
    raw: dict[ObjectRef, RawObject] = field(default_factory=dict)
    """The source mesh's own objects as read (for rollback copies and neutralizing)."""
    objects: list[RawObject] = field(default_factory=list)
    """Every object planned from, one per identity (duplicates resolved)."""
    refused: list[tuple[RawObject, list[str]]] = field(default_factory=list)
    """Objects not planned because of an input problem, with the problems."""
    copies: list[RawObject] = field(default_factory=list)
    """Copies of an object another copy was planned from (see :meth:`Reader._unique`)."""
    set_aside: list[RawObject] = field(default_factory=list)
    """Objects read but kept out of planning by the mesh's reader (e.g. a Linkerd mirror of
    another cluster's Service), each reported by a loss: listed in the ledger, never planned
    or evaluated."""


class Reader:
    """Base reader: subclasses declare ``MESH``, ``GROUPS`` and ``HANDLERS``."""

    MESH: ClassVar[str]
    GROUPS: ClassVar[dict[str, frozenset[str]]]
    """API group -> versions this reader understands."""
    HANDLERS: ClassVar[dict[tuple[str, str], KindHandler]]
    """(group, kind) -> the function that reads it: ``handler(reader, fields, graph)``."""
    MESH_GROUPS: ClassVar[tuple[str, ...]]
    """The groups whose presence means the mesh is installed (cluster exit code 7,
    ``--from auto``, and the evidence :meth:`found_mesh` looks for in files)."""

    def __init__(self, losses: LossLog, problems: list[InputProblem]) -> None:
        self.losses = losses
        self.problems = problems
        self.keep_ledgers = True
        """Keep each object's field ledger in ``ReadResult.accounted``. Every ledger is
        used up once its object's unaccounted fields are reported; a plan kept one per
        source-mesh object (several MB at 2,000 services) for no reader but tests."""

    def read(self, source: SourceResult) -> ReadResult:
        """Turn raw objects into a :class:`MeshGraph`; report what cannot be used."""
        graph = MeshGraph(self.MESH)
        result = ReadResult(graph, skipped=dict(source.skipped))
        valid = []
        for raw in source.objects:
            before = len(self.problems)
            if self._valid(raw):
                valid.append(raw)
            else:
                result.refused.append((raw, [p.message for p in self.problems[before:]]))
        objects = self._unique(valid)
        result.objects = objects
        if len(objects) < len(valid):
            kept = {id(raw) for raw in objects}
            result.copies = [raw for raw in valid if id(raw) not in kept]
        for raw in objects:
            # RawObject's group, version and kind, from its ref (made once per object) rather
            # than from the body at each use.
            kind, api = raw.ref.kind, raw.ref.api_version
            group = api.split("/", 1)[0] if "/" in api else ""
            version = api.rsplit("/", 1)[-1]
            if (group, kind) in kube.HANDLERS and version in kube.VERSIONS.get(group, ()):
                self._report_repeated_keys(raw)
                f = Fields(raw, self.losses, self.MESH)
                self._guarded(kube.HANDLERS[(group, kind)], f, graph)
                for use in f.uses:
                    graph.use(use)
                result.read[kind] = result.read.get(kind, 0) + 1
                continue
            handler = self.HANDLERS.get((group, kind))
            if handler is None:
                key = f"{raw.api_version}/{kind}"
                result.skipped[key] = result.skipped.get(key, 0) + 1
                continue
            if version not in self.GROUPS[group]:
                known = ", ".join(sorted(self.GROUPS[group]))
                problem = InputProblem(
                    raw.source, raw.line or None, None,
                    f"{kind} {raw.ref.namespace}/{raw.ref.name}: unknown apiVersion "
                    f"{raw.api_version} (known versions of {group}: {known}); object not planned")
                self.problems.append(problem)
                result.refused.append((raw, [problem.message]))
                continue
            self._report_repeated_keys(raw)
            f = Fields(raw, self.losses, self.MESH)
            self._guarded(handler, f, graph)
            for use in f.uses:
                graph.use(use)
            f.report_unaccounted()
            if self.keep_ledgers:
                result.accounted[f.ref] = f.accounted
            result.raw[f.ref] = raw
            result.read[kind] = result.read.get(kind, 0) + 1
        self.finish(graph)
        graph.link()
        return result

    SETTINGS: ClassVar[tuple[str, ...]] = ()
    """The :class:`~migrate.pipeline.PlanOptions` fields that are this mesh's install
    settings as a source (recorded in the plan with where each value came from)."""

    INSTALL_CONFIGMAPS: ClassVar[tuple[tuple[str, str], ...]] = ()
    """(namespace, name) of the ConfigMaps the mesh's install keeps its settings in, fetched
    by name when the source is a cluster (a file input holds them when it was dumped with
    them)."""

    @classmethod
    def install_settings(cls, objects: list[RawObject]) -> list[InstallSetting]:
        """Settings this mesh's install configuration in the input gives (default: none)."""
        return []

    def found_mesh(self, result: ReadResult) -> bool:
        """Whether the input shows this mesh at all: one of its own objects, or a namespace or
        workload its injection markers put in the mesh.

        A plan whose input shows no source mesh would still end in that mesh's uninstall, so
        file input without this evidence is refused (pipeline.require_source_mesh).
        """
        if self.has_own_objects(result):
            return True
        graph = result.graph
        return any(ns.injection != "none" for ns in graph.namespaces_declared()) or any(
            w.injection not in ("none", "inherit") for w in graph.of(Workload))

    def has_own_objects(self, result: ReadResult) -> bool:
        """Whether the input holds objects of this mesh's own groups (``MESH_GROUPS``):
        Gateway API routes are read by several meshes, so they are no evidence."""
        return any(ref.api_version.split("/")[0] in self.MESH_GROUPS for ref in result.raw)

    def core_extras(self, f: Fields, graph: MeshGraph) -> None:
        """Called by ``kube`` after a Namespace, Service or workload is read, so a dialect can
        read its own annotations there (Linkerd keeps config on them). No-op by default."""

    def finish(self, graph: MeshGraph) -> None:
        """Called once every object is read, before edges are derived: a dialect whose objects
        refer to each other by name resolves those references here. No-op by default."""

    def _guarded(self, handler: KindHandler, f: Fields, graph: MeshGraph) -> None:
        """Run a handler; a value shape it did not expect is reported on the object."""
        try:
            handler(self, f, graph)
        except (TypeError, AttributeError, ValueError, KeyError, IndexError) as exc:
            self.losses.report(
                "OBJECT_UNREADABLE", Severity.MANUAL, "input", f.ref, "spec",
                f"{f.ref.kind} could not be read ({type(exc).__name__}: {exc}); not converted",
                "Check the object against its schema and convert it by hand.")
            f.uses.clear()
            f.accounted.add("spec")

    def _valid(self, raw: RawObject) -> bool:
        """Whether an object this reader plans has a name, namespace, labels and annotation
        keys the API server would accept; if not, each bad value is an input problem and the
        object is not planned (such values would otherwise reach the plan's commands, and
        no cluster could hold the object anyway). Annotation values are never refused."""
        kind, api = raw.ref.kind, raw.ref.api_version
        group = api.split("/", 1)[0] if "/" in api else ""
        if (group, kind) not in kube.HANDLERS and (group, kind) not in self.HANDLERS:
            return True  # only counted as skipped
        body = raw.body
        problems = metadata_problems(kind, api, body.get("metadata"), bool(raw.ref.namespace))
        spec = body.get("spec")
        template = spec.get("template") if isinstance(spec, dict) else None
        if kind == "CronJob" and isinstance(spec, dict):
            job = spec.get("jobTemplate")
            job_spec = job.get("spec") if isinstance(job, dict) else None
            template = job_spec.get("template") if isinstance(job_spec, dict) else None
            path = "spec.jobTemplate.spec.template.metadata"
        else:
            path = "spec.template.metadata"
        if group in kube.VERSIONS and isinstance(template, dict):
            problems += labels_problems(path, template.get("metadata"))
        ref = f"{raw.ref.namespace}/{raw.ref.name}" if raw.ref.namespace else raw.ref.name
        ref = ref if ref.isprintable() and len(ref) <= 160 else shown(ref, 160)
        for where, what in problems:
            self.problems.append(InputProblem(
                relative(raw.source), raw.line or None, None,
                f"{kind} {ref}: {where}: {what} (the API server would refuse it); object not "
                "planned"))
        return not problems

    def _report_repeated_keys(self, raw: RawObject) -> None:
        """A loss for each key the object's document set twice: planned with the last value,
        as the API server keeps it (see ``INPUT_DUPLICATE_KEY`` in losscodes.py)."""
        for repeated in raw.repeated_keys:
            where = f"{relative(raw.source)}:{repeated.line}" if repeated.line else \
                relative(raw.source)
            self.losses.report(
                "INPUT_DUPLICATE_KEY", Severity.MANUAL, "input", raw.ref, repeated.path,
                f"{where}: {repeated.message}; planned with the last value, as the API server "
                "keeps it",
                "Keep one of the values in the source file (the cluster holds only the last) "
                "and re-run.")

    def _unique(self, objects: list[RawObject]) -> list[RawObject]:
        """One object per identity; duplicates resolved deterministically and reported.

        Like ``kubectl apply -f`` over the same inputs, the definition from the file read
        last wins. Within one file the choice must not depend on document order (the
        output is promised to be identical for any order), so the content decides.
        """
        file_rank: dict[str, int] = {}
        for raw in objects:
            file_rank.setdefault(raw.source, len(file_rank))
        groups: dict[tuple[str, str, str, str], list[RawObject]] = {}
        for raw in objects:
            ref = raw.ref
            groups.setdefault((raw.group, ref.kind, ref.namespace, ref.name), []).append(raw)
        unique: list[RawObject] = []
        for key in sorted(groups):
            copies = groups[key]
            if len(copies) == 1:
                unique.append(copies[0])
                continue
            canon = {id(c): json.dumps(c.body, sort_keys=True, default=str) for c in copies}
            winner = max(copies, key=lambda c: (file_rank[c.source], canon[id(c)]))
            distinct = {canon[id(c)] for c in copies}
            unique.append(winner)
            if len(distinct) > 1:
                files = sorted({relative(c.source) for c in copies})
                ref = winner.ref
                self.losses.report(
                    "INPUT_DUPLICATE", Severity.MANUAL, "input", ref, "metadata.name",
                    f"{ref.kind} {ref.namespace}/{ref.name} is defined {len(copies)} times with "
                    f"different content (in {', '.join(files)}); planned from "
                    f"{relative(winner.source)}",
                    "Keep one definition per object (a cluster holds only one) and re-run.")
        return unique


@dataclass
class TargetConfig:
    """Everything a writer produced, sorted into the phases the planner stages.

    Keys of the per-namespace dicts are the namespaces the objects live in.
    """

    target: str
    prerequisites: list[Manifest] = field(default_factory=list)
    """Cluster-wide changes before any namespace moves (e.g. source config neutralized)."""
    routing: dict[str, list[Manifest]] = field(default_factory=dict)
    """Routing config, inert for the source mesh: applied when the namespace is prepared."""
    policy_staged: dict[str, list[Manifest]] = field(default_factory=dict)
    """Authorization in audit form: applied when the namespace is prepared."""
    policy_enforced: dict[str, list[Manifest]] = field(default_factory=dict)
    """The same policy enforcing: applied once the namespace's last source caller moved."""
    remove_at_enforce: dict[str, list[Manifest]] = field(default_factory=dict)
    """Staging-only objects deleted when the namespace enforces."""
    staging_grantees: dict[tuple[str, str, str], frozenset[str] | None] = field(
        default_factory=dict)
    """Staging-only grants (kind, namespace, name) made for callers still on the source mesh
    -> the namespaces those callers run in (None: any namespace). The planner applies one only
    while one of its namespaces is still on the source mesh, and deletes it at the step that
    moves the last of them (migrate/plan/staging.py)."""
    staging_mode: str = "strict"
    """``strict`` (staged policy refuses all the source refused but the identity check of
    plaintext callers) or ``audit`` (``--staging audit``: staged policy admits everything)."""
    staging_admits: str = ""
    """What such a grant admits besides the callers it is for (empty: nothing more); the
    planner reports it with the grant's step window (``PLAN_STAGING_OPEN``)."""
    routing_final: dict[str, list[Manifest]] = field(default_factory=dict)
    """Routing in its long-term form, applied at cleanup (replacing ``routing`` objects)."""
    remove_at_cleanup: dict[str, list[Manifest]] = field(default_factory=dict)
    """Coexistence-only objects deleted at cleanup."""
    namespace_staged: dict[str, dict[str, str]] = field(default_factory=dict)
    """Namespace annotations set when the namespace switches (besides injection)."""
    namespace_final: dict[str, dict[str, str]] = field(default_factory=dict)
    """Namespace annotations set when the namespace enforces."""
    namespace_sources: dict[tuple[str, str], tuple[ObjectRef, ...]] = field(
        default_factory=dict)
    """(namespace, annotation) of ``namespace_staged`` / ``namespace_final`` -> the source
    objects whose meaning the annotation carries (named on the commands that set it)."""
    workload_staged: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    """namespace -> ``Kind/name`` of a workload -> pod-template annotations the move step
    sets before the workload restarts, and its rollback removes."""
    neutralized: list[ObjectRef] = field(default_factory=list)
    """Source objects the prerequisites step replaced."""
    install_extra: list[Command] = field(default_factory=list)
    """Commands the prerequisites step runs after the target's install, for install settings
    the written configuration needs (e.g. Consul's terminating gateway)."""

    def add(self, bucket: dict[str, list[Manifest]], manifest: Manifest) -> None:
        """Append a manifest to a per-namespace bucket."""
        bucket.setdefault(manifest.namespace, []).append(manifest)
