"""Operations a reviewer expects to be told about besides the objects a plan writes (issue 16):
the target's trust anchor, Pod Security Admission and the CNI plugin, what else lives in the
namespace the cleanup deletes, and the TLS secrets and CORS the old ingress served.

Each mesh says what is its own through its :class:`~migrate.dialects.coexist.Coexistence`
(``trust_manual``, ``CNI_PLUGIN``, ``CNI_DAEMONSETS``, ``OWN_PREFIXES``,
``ingress_manual_extra``); this module only finds the evidence in the input and puts each
sentence on the step it concerns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from migrate.ir.model import Namespace, Workload
from migrate.plan.commands import run
from migrate.plan.model import Step

if TYPE_CHECKING:
    from migrate.plan.builder import PlanInput

POD_SECURITY_ENFORCE = "pod-security.kubernetes.io/enforce"
# fact: kubernetes.pod-security-capabilities
_REFUSES_NET_ADMIN = frozenset({"baseline", "restricted"})


def add_operations(p: PlanInput, steps: list[Step]) -> None:
    """Add the operations notes to the prerequisites, ingress and cleanup steps."""
    prerequisites, cleanup = steps[0], steps[-1]
    prerequisites.manual += p.target_side.trust_manual()
    for step in steps:
        if step.kind == "ingress":
            step.manual += p.source.ingress_manual_extra(p.read.raw)
    cleanup.manual += install_namespace_neighbours(p, cleanup)


def cni_reason(p: PlanInput) -> str:
    """Why the target must be installed with its CNI plugin, as a sentence for the
    prerequisites step (``""``: no evidence in the input, or the target has no plugin)."""
    plugin = p.target_side.CNI_PLUGIN
    restricted, cni = restricted_namespaces(p), source_cni(p)
    if not plugin or not (restricted or cni):
        return ""
    why = (f"namespace(s) {', '.join(restricted)} enforce Pod Security baseline or restricted, "
           "which refuses the NET_ADMIN and NET_RAW capabilities of the init container "
           f"{p.target_side.TITLE} would otherwise inject") if restricted else (
        f"{p.source.TITLE} runs its CNI plugin (DaemonSet {cni}), so pods may not be allowed "
        f"the NET_ADMIN and NET_RAW capabilities of {p.target_side.TITLE}'s init container")
    return f" Installs {plugin}: {why}."


def restricted_namespaces(p: PlanInput) -> list[str]:
    """Migrated namespaces whose Pod Security level refuses the NET_ADMIN/NET_RAW an injected
    init container needs (the ``enforce`` label; a cluster-wide default is not in the input)."""
    moved = {ns for group in p.groups for ns in group}
    return sorted(n.name for n in p.graph.of(Namespace)
                  if n.name in moved and dict(n.labels).get(POD_SECURITY_ENFORCE) in _REFUSES_NET_ADMIN)


def source_cni(p: PlanInput) -> str:
    """The source mesh's CNI DaemonSet when the input shows one (its pods then run without the
    capabilities the target's init container needs), else ``""``."""
    names = p.source.CNI_DAEMONSETS
    found = sorted(f"{w.namespace}/{w.name}" for w in p.graph.of(Workload)
                   if w.kind == "DaemonSet" and w.name in names)
    return found[0] if found else ""


def install_namespace_neighbours(p: PlanInput, cleanup: Step) -> list[str]:
    """When the input shows workloads in the source's control-plane namespace that are not the
    mesh's own, the cleanup must not delete that namespace: its delete command is taken out and
    a sentence names what lives there."""
    src = p.source
    others = sorted(f"{w.kind} {w.name}" for w in p.graph.of(Workload)
                    if w.namespace == src.CONTROL_NAMESPACE
                    and not w.name.startswith(src.OWN_PREFIXES))
    delete = src.delete_control_namespace()
    if delete is None or delete not in cleanup.commands:
        return []
    if not others:
        # The input may not show what lives there: the person looks before the uninstall (after
        # it, the mesh's own objects are gone and the list cannot tell them from the others).
        first = src.uninstall_commands()[0]
        at = cleanup.commands.index(first) if first in cleanup.commands else \
            cleanup.commands.index(delete)
        cleanup.commands.insert(at, run(
            "kubectl", "get", "deployments,statefulsets,daemonsets,jobs,services,configmaps,"
            "secrets", "-n", src.CONTROL_NAMESPACE,
            note=f"only {src.TITLE}'s own ({', '.join(p + '*' for p in src.OWN_PREFIXES)}, its "
            "CA and config); anything else is deleted with the namespace: move it first"))
        return []
    cleanup.commands.remove(delete)
    return [f"Namespace {src.CONTROL_NAMESPACE} also runs {', '.join(others)}, which are not "
            f"{src.TITLE}'s: the plan does not delete the namespace. Once the uninstall is done, "
            f"check `kubectl get all -n {src.CONTROL_NAMESPACE}` shows only that software, and "
            "move it or delete the namespace yourself."]
