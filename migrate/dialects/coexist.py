"""What the planner needs from each mesh while two meshes run side by side.

Every mesh has one :class:`Coexistence` subclass (in ``migrate/dialects/<mesh>/coexist.py``)
that plays either role of a move:

- as the **source**: which of its objects it owns, how a namespace leaves it (and comes back
  on rollback), what must be neutralized before anything moves, which objects configure a
  namespace's own proxies (deleted when it moves), how the mesh is removed at the end;
- as the **target**: how it is installed, how a namespace joins it, how staged policy is
  made to enforce, what a reviewer checks after each step, how ingress is replaced.

The planner (``migrate/plan/builder.py``) only orders and assembles; every command and every
mesh-specific sentence comes from here. The facts behind each mesh's answers are in
docs/coexistence.md with their sources.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from migrate.ir.model import FeatureUse, Namespace, Workload
from migrate.losses import ObjectRef
from migrate.plan.commands import Command, json_arg, pipe, run
from migrate.sources.model import RawObject

if TYPE_CHECKING:
    from migrate.dialects.base import Manifest

ROLLOUT_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


@dataclass(frozen=True)
class Neutralized:
    """A source object rewritten before any namespace moves, with why."""

    body: dict[str, Any]
    original: RawObject
    opened: str = ""
    """The field path of a restriction the rewrite lifts for the whole migration (reported
    as ``PLAN_EGRESS_OPEN``), empty when it lifts none."""


@dataclass(frozen=True)
class RouteHandover:
    """Source routes taken out of a GAMMA target's sight before any namespace moves."""

    replaced: list[tuple[RawObject, dict[str, Any]]]
    """(original, the copy in a flavour only the source mesh reads): the copy is applied, the
    original deleted; later steps delete the copy where they would have deleted the original."""
    deleted: list[RawObject]
    """Routes the source mesh ignores (so they do nothing) that the target would apply."""
    kept: list[tuple[ObjectRef, str]]
    """Routes both meshes keep applying during the overlap, with why they cannot move."""


def json_pointer(key: str) -> str:
    """A map key as one JSON-pointer segment (RFC 6901 escapes)."""
    return key.replace("~", "~0").replace("/", "~1")


def template_path(kind: str) -> str:
    """JSON pointer of a workload's pod-template metadata."""
    return "/spec/jobTemplate/spec/template/metadata" if kind == "CronJob" else \
        "/spec/template/metadata"


def remove_template_keys(w: Workload, section: str, keys: list[str]) -> list[Command]:
    """``kubectl patch`` commands removing pod-template labels or annotations a workload has."""
    if w.kind == "Pod":
        return []
    held = dict(w.pod_labels if section == "labels" else w.pod_annotations)
    return [patch_json(w, [{"op": "remove",
                            "path": f"{template_path(w.kind)}/{section}/{json_pointer(key)}"}])
            for key in keys if key in held]


def patch_json(w: Workload, operations: list[dict[str, Any]]) -> Command:
    """``kubectl patch`` of a workload with a JSON patch (RFC 6902)."""
    return run("kubectl", "patch", w.kind.lower(), w.name, "-n", w.namespace, "--type=json",
               "-p", json_arg(operations))


def set_template_annotation(w: Workload, key: str, value: str,
                            section: str = "annotations") -> Command:
    """A ``kubectl patch`` command setting one pod-template annotation (or, with ``section``
    ``labels``, one label) with a merge patch."""
    body: dict[str, Any] = {"metadata": {section: {key: value}}}
    for level in (("spec", "template") if w.kind != "CronJob" else
                  ("spec", "jobTemplate", "spec", "template"))[::-1]:
        body = {level: body}
    return run("kubectl", "patch", w.kind.lower(), w.name, "-n", w.namespace, "--type=merge",
               "-p", json_arg(body))


def pods_with_containers(ns: str | None) -> tuple[str, ...]:
    """``kubectl get pods`` printing each pod's name, its containers and its init containers
    (where a native sidecar runs), one pod a line, for a ``grep`` on a proxy's name; every
    namespace's pods (``namespace/name``) when ``ns`` is None."""
    where = ("-n", ns) if ns is not None else ("-A",)
    name = "{.metadata.name}" if ns is not None else "{.metadata.namespace}/{.metadata.name}"
    return ("kubectl", "get", "pods", *where, "-o",
            f'jsonpath={{range .items[*]}}{name}{{": "}}{{.spec.containers[*].name}}'
            '{" "}{.spec.initContainers[*].name}{"\\n"}{end}')


class Coexistence(ABC):
    """One mesh's answers to the planner, as a source and as a target."""

    MESH: ClassVar[str]
    TITLE: ClassVar[str]
    """The mesh's name as a person writes it (``Istio``)."""
    CONTROL_NAMESPACE: ClassVar[str]
    """Where the control plane runs; never migrated as an application namespace."""
    GROUP_SUFFIXES: ClassVar[tuple[str, ...]]
    """API groups (by suffix) whose objects belong to this mesh."""
    INBOUND_KINDS: ClassVar[frozenset[str]] = frozenset()
    """Source kinds that configure a namespace's own proxies: deleted when it moves."""
    PROXY_CONTAINER: ClassVar[str]
    INGRESS: ClassVar[str]
    """The mesh's ingress, as a sentence names it (``the Istio ingress gateway``)."""
    STAGED_POLICY: ClassVar[str] = ""
    """How this mesh's staged (not yet enforcing) policy behaves, for step summaries."""
    ENFORCED_POLICY: ClassVar[str] = ""
    """What changes when its policy enforces."""
    KEEP_OUT: ClassVar[tuple[str, str, str] | None] = None
    """Target role: the pod-template (section, key, value) that keeps one pod out of this mesh
    when its namespace joins, for workloads the source mesh did not inject either (None: the
    mesh injects pod by pod, so such a pod is simply not joined)."""
    CNI_DAEMONSETS: ClassVar[tuple[str, ...]] = ()
    """Source role: the names of the mesh's CNI plugin DaemonSet (its pods then run without
    the NET_ADMIN init container), as its installers name it."""
    OWN_PREFIXES: ClassVar[tuple[str, ...]] = ()
    """Source role: name prefixes of the workloads the mesh's install puts in
    :attr:`CONTROL_NAMESPACE`; anything else there is other software the cleanup must not
    delete with the namespace."""
    INGRESS_MESH_ONLY: ClassVar[bool] = False
    """Source role: its ingress reaches only backends inside this mesh, so the ingress moves
    before the first of its backends leaves (and the backends still here admit the new
    ingress's plaintext until they move)."""
    READS_MESH_GATEWAY_ROUTES: ClassVar[bool] = False
    """Target role: its proxies apply ``gateway.networking.k8s.io`` routes with a Service
    parent (GAMMA), whoever wrote them."""

    # -- source role -------------------------------------------------------------------------
    def owns(self, ref: ObjectRef) -> bool:
        """Whether an object belongs to one of this mesh's own API groups."""
        group = ref.api_version.split("/")[0] if "/" in ref.api_version else ""
        return bool(group) and group.endswith(self.GROUP_SUFFIXES)

    def delete_command(self, ref: ObjectRef) -> Command:
        """Delete one source object (idempotent), naming its group to avoid ambiguity."""
        group = ref.api_version.split("/")[0] if "/" in ref.api_version else ""
        what = f"{ref.kind.lower()}.{group}/{ref.name}" if group else \
            f"{ref.kind.lower()}/{ref.name}"
        ns = ("-n", ref.namespace) if ref.namespace else ()
        return run("kubectl", "delete", what, *ns, "--ignore-not-found")

    def neutralize(self, raw: dict[ObjectRef, RawObject]) -> list[Neutralized]:
        """Source objects to rewrite before any namespace moves (default: none)."""
        return []

    def neutralize_summary(self, count: int) -> str:
        """Why the prerequisites step rewrites ``count`` objects."""
        return ""

    def hand_over_mesh_routes(self, raw: dict[ObjectRef, RawObject]) -> RouteHandover:
        """For a target that reads Gateway API mesh routes: this mesh's Service-parented
        routes to move out of its sight before any namespace moves (default: none)."""
        return RouteHandover([], [], [])

    def mesh_wide_refs(self, refs: list[ObjectRef]) -> list[ObjectRef]:
        """Objects (of the control namespace) a reviewer must check at every move."""
        return []

    def pinning_refs(self, raw: dict[ObjectRef, RawObject],
                     services: set[tuple[str, str]]) -> list[ObjectRef]:
        """Source objects that keep this mesh's callers sending a Service's traffic into the
        mesh after its last pod left it (default: none). The move step deletes them before
        the pods restart when callers on this mesh remain."""
        return []

    def rejected(self, raw: dict[ObjectRef, RawObject]) -> set[ObjectRef]:
        """Objects of this mesh's input it never applied, which a rollback must not create
        again (default: none)."""
        return set()

    def ingress_refs(self, raw: dict[ObjectRef, RawObject]) -> list[ObjectRef]:
        """Objects of this mesh's ingress outside its own API groups, retired with it at the
        ingress step (default: none)."""
        return []

    def ingress_identities(self, raw: dict[ObjectRef, RawObject]) -> set[str]:
        """The names this mesh's ingress is authorized as (default: none)."""
        return set()

    def waiting_permissive(self, raw: dict[ObjectRef, RawObject],
                           services: set[tuple[str, str]]) -> tuple[list[Command],
                                                                    list[dict[str, Any]]]:
        """Commands (and new objects) that let pods still waiting inside a move step admit the
        plaintext of neighbours that already moved (default: none)."""
        return [], []

    @abstractmethod
    def leave_commands(self, ns: str, record: Namespace | None,
                       workloads: list[Workload]) -> list[Command]:
        """Commands that stop this mesh injecting a namespace's pods (on restart)."""

    @abstractmethod
    def rejoin_commands(self, ns: str, record: Namespace | None,
                        workloads: list[Workload]) -> list[Command]:
        """Rollback of :meth:`leave_commands`."""

    def verify_left(self, ns: str) -> list[Command]:
        """Checks that no pod of the namespace still runs this mesh's proxy."""
        return [pipe(pods_with_containers(ns), ("grep", self.PROXY_CONTAINER),
                     note="expect no output")]

    def verify_left_everywhere(self) -> list[Command]:
        """Before the uninstall: no pod in any namespace (those the plan never read too)
        still runs this mesh's proxy."""
        # The control namespace's own pods (istio-system's gateways run an istio-proxy
        # container too) go with the uninstall: only the others must have left.
        return [pipe(pods_with_containers(None), ("grep", "-v", f"^{self.CONTROL_NAMESPACE}/"),
                     ("grep", self.PROXY_CONTAINER),
                     note=f"expect no output; stop here if a pod outside "
                     f"{self.CONTROL_NAMESPACE} still runs {self.TITLE}'s proxy (an ingress "
                     "gateway elsewhere too: retire it first)")]

    def enforced_policy(self, enforced: Sequence[Manifest]) -> str:
        """What enforcing changes, for the enforce step's summary (``enforced``: the manifests
        it applies); :attr:`ENFORCED_POLICY` unless the mesh words it per step."""
        return self.ENFORCED_POLICY

    def extension_uninstall(self, features: Sequence[FeatureUse]) -> list[Command]:
        """Commands removing the mesh's extensions the input shows in use (``features``: the
        source graph's feature uses), run before :meth:`uninstall_commands` (default: none)."""
        return []

    def extension_reinstall(self, features: Sequence[FeatureUse]) -> list[Command | str]:
        """Rollback of :meth:`extension_uninstall` (default: none)."""
        return []

    @abstractmethod
    def uninstall_commands(self) -> list[Command]:
        """Remove the mesh once nothing uses it."""

    def delete_control_namespace(self) -> Command | None:
        """The uninstall's command deleting :attr:`CONTROL_NAMESPACE` (None: the uninstall
        itself removes it); the planner drops it when other software lives there."""
        return None

    def ingress_manual_extra(self, raw: dict[ObjectRef, RawObject]) -> list[str]:
        """Source role: what the old ingress serves that the new one needs besides listeners
        and routes (TLS secrets, CORS), named from the input."""
        return []

    @abstractmethod
    def reinstall_commands(self) -> list[Command]:
        """Rollback of the uninstall (the person fills in the placeholders)."""

    # -- target role -------------------------------------------------------------------------
    @abstractmethod
    def install_commands(self, experimental: bool, version: str,
                         cni: bool = False) -> list[Command]:
        """Install the mesh beside the source (and a Gateway API bundle both accept); with
        ``cni``, through its CNI plugin, so injected pods need no NET_ADMIN init container."""

    def trust_manual(self) -> list[str]:
        """Target role: the decision about the mesh's trust anchor to take before installing
        (its lifetime and who rotates it)."""
        return []

    CNI_PLUGIN: ClassVar[str] = ""
    """Target role: the mesh's CNI plugin as a sentence names it, with the page that documents
    it (empty: the mesh has none, and :meth:`install_commands` ignores ``cni``)."""

    @abstractmethod
    def install_verify(self) -> list[Command]:
        """Checks after installing."""

    @abstractmethod
    def install_rollback(self) -> list[Command]:
        """Rollback of the install."""

    @abstractmethod
    def join_commands(self, ns: str, annotations: dict[str, str],
                      workloads: list[Workload]) -> list[Command]:
        """Let the mesh inject a namespace's pods (takes effect on restart)."""

    @abstractmethod
    def unjoin_commands(self, ns: str, annotations: dict[str, str],
                        workloads: list[Workload]) -> list[Command]:
        """Rollback of :meth:`join_commands`."""

    def keep_out_commands(self, workloads: list[Workload]) -> list[Command]:
        """Keep workloads the source mesh did not inject out of this mesh too: their
        namespace joins, and without this they would get a proxy (and start enforcing the
        namespace's policies) for the first time."""
        if self.KEEP_OUT is None:
            return []
        section, key, value = self.KEEP_OUT
        return [set_template_annotation(w, key, value, section) for w in workloads
                if w.kind != "Pod"]

    def keep_out_rollback(self, workloads: list[Workload]) -> list[Command]:
        """Rollback of :meth:`keep_out_commands`."""
        if self.KEEP_OUT is None:
            return []
        section, key, _ = self.KEEP_OUT
        return [patch_json(w, [{"op": "remove", "path": f"{template_path(w.kind)}/{section}/"
                                f"{json_pointer(key)}"}]) for w in workloads if w.kind != "Pod"]

    def join_manual(self, ns: str, workloads: list[Workload]) -> list[str]:
        """What a person must check by hand before a namespace joins (default: nothing)."""
        return []

    def identity_manual(self, w: Workload, services: list[str]) -> list[str]:
        """Target role: what a workload (selected by ``services``) needs before it joins for
        this mesh to give it the identity its policies name (default: nothing)."""
        return []

    def enforce_commands(self, ns: str, annotations: dict[str, str]) -> list[Command]:
        """Set a namespace's final default policy."""
        if not annotations:
            return []
        values = [f"{k}={v}" for k, v in sorted(annotations.items())]
        return [run("kubectl", "annotate", "namespace", ns, *values, "--overwrite")]

    @abstractmethod
    def verify_joined(self, ns: str, workloads: list[str], policy: bool) -> list[Command]:
        """Checks after a namespace's pods restarted under this mesh."""

    @abstractmethod
    def verify_enforced(self, ns: str, workloads: list[str],
                        enforced: Sequence[Manifest] = ()) -> list[Command]:
        """Checks after policy starts refusing requests (``workloads`` as ``kind/name``;
        ``enforced``: the manifests the enforce step applies in ``ns``, so a check names only
        objects the plan wrote)."""

    @abstractmethod
    def ingress_manual(self, source: Coexistence) -> list[str]:
        """The manual work of replacing ``source``'s ingress with this mesh's."""

    @abstractmethod
    def ingress_verify(self) -> list[Command]:
        """Checks after the ingress moved."""

    def cleanup_summary(self, source: Coexistence) -> str:
        """What the cleanup step does, in the target's words."""
        return (f"{source.TITLE} is no longer in the data path. The remaining {source.TITLE} "
                f"objects are deleted and {source.TITLE} is uninstalled.")

    @abstractmethod
    def cleanup_verify(self) -> list[Command]:
        """Checks after the source mesh is gone."""
