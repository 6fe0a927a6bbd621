"""DENY policies that the converted allow-list already enforces.

Linkerd authorization is allow-list only, so the capability check reports every DENY policy
(``AUTHZ_DENY``: what it refused is no longer refused). That is false where each workload the
DENY selects also has ALLOW policies and no request the DENY refuses matches any of their
rules: the Linkerd Servers written from those ALLOW policies (``accessPolicy: deny``, an
inbound route per path/method rule, 404 for requests no route matches) refuse it too. Such a
DENY is reported as ``AUTHZ_DENY_SUBSUMED`` (info) instead.

The test is conservative: a pattern overlap it cannot rule out keeps ``AUTHZ_DENY``. The
DENY's own sources and conditions are ignored (they only narrow what it refuses); ALLOW rules
the writer leaves out (``inexpressible``) admit nothing on Linkerd and are skipped; the probe
routes the writer adds (GET on probe paths from any network) count as ALLOW rules.
"""

from __future__ import annotations

from migrate.ir.graph import MeshGraph, selects
from migrate.ir.model import AuthzOperation, AuthzPolicy, Workload
from migrate.losses import LossLog, Severity


def _path_overlap(a: str, b: str) -> bool:
    """Whether two Istio path patterns (exact, ``p*``, ``*s``, ``*``) can match one path."""
    if a == "*" or b == "*":
        return True
    a_pre, b_pre = a.endswith("*"), b.endswith("*")
    a_suf, b_suf = a.startswith("*"), b.startswith("*")
    if (a_pre and b_suf) or (a_suf and b_pre):
        return True  # "p" + "s" matches both
    if a_pre and b_pre:
        return a[:-1].startswith(b[:-1]) or b[:-1].startswith(a[:-1])
    if a_suf and b_suf:
        return a[1:].endswith(b[1:]) or b[1:].endswith(a[1:])
    if a_pre or b_pre:
        exact, prefix = (b, a[:-1]) if a_pre else (a, b[:-1])
        return exact.startswith(prefix)
    if a_suf or b_suf:
        exact, suffix = (b, a[1:]) if a_suf else (a, b[1:])
        return exact.endswith(suffix)
    return a == b


def _widened(path: str) -> str:
    """An ALLOW path as broad as its Linkerd form: a prefix ending in ``/`` becomes a
    PathPrefix, which also matches the path without the slash."""
    if path.endswith("/*") and len(path) > 2:
        return path[:-2] + "*"
    return path


def _disjoint(deny: AuthzOperation, allow: AuthzOperation) -> bool:
    if deny.methods and allow.methods and not set(deny.methods) & set(allow.methods):
        return True
    if deny.paths and allow.paths:
        return not any(_path_overlap(d, _widened(a)) for d in deny.paths for a in allow.paths)
    return False


def _allow_ops(graph: MeshGraph, w: Workload, allows: list[AuthzPolicy]) -> list[AuthzOperation]:
    ops: list[AuthzOperation] = []
    for policy in allows:
        for rule in policy.rules:
            if rule.inexpressible:
                continue  # left out by the writer: it admits nothing on Linkerd
            ops += list(rule.operations) or [AuthzOperation()]
    probe_paths = tuple(sorted({p.path for p in w.probes}))
    if probe_paths:
        ops.append(AuthzOperation(methods=("GET",), paths=probe_paths))
    return ops


def _subsumed(graph: MeshGraph, deny: AuthzPolicy, policies: list[AuthzPolicy]) -> list[str]:
    """The ALLOW policies that make up for the DENY on every workload it selects, or []."""
    selected = [w for w in graph.in_namespace(Workload, deny.namespace)
                if selects(deny.selector, w.pod_labels) and graph.in_mesh(w)]
    if not selected:
        return []
    used: set[str] = set()
    deny_ops = [op for rule in deny.rules for op in (rule.operations or (AuthzOperation(),))]
    if not deny_ops:
        return []  # a DENY without rules refuses nothing; nothing to say
    for w in selected:
        allows = [p for p in policies if p.action == "ALLOW" and p.namespace == w.namespace
                  and selects(p.selector, w.pod_labels)]
        if not allows:
            return []
        ops = _allow_ops(graph, w, allows)
        if not all(_disjoint(d, a) for d in deny_ops for a in ops):
            return []
        used.update(f"{p.namespace}/{p.name}" for p in allows)
    return sorted(used)


def report_subsumed_denies(graph: MeshGraph, losses: LossLog) -> None:
    """Replace ``AUTHZ_DENY`` with ``AUTHZ_DENY_SUBSUMED`` for each DENY the allow-list
    enforces."""
    policies = graph.of(AuthzPolicy)
    if any(p.mesh_wide for p in policies):
        return  # root-namespace policies apply everywhere: not judged here
    for deny in policies:
        if deny.action != "DENY":
            continue
        allows = _subsumed(graph, deny, policies)
        if not allows:
            continue
        ref = deny.origin.ref
        if not losses.withdraw(ref, "spec.action", only=frozenset({"AUTHZ_DENY"})):
            continue  # no AUTHZ_DENY was reported
        losses.report(
            "AUTHZ_DENY_SUBSUMED", Severity.INFO, "authz.deny", ref, "spec.action",
            "Linkerd has no deny rules, but nothing this policy refused is admitted on "
            "Linkerd either: the workloads it selects have ALLOW policies ("
            + ", ".join(allows) + ") whose converted rules admit none of its paths or "
            "methods, and their Servers refuse every other request",
            "None now; if those ALLOW policies are widened later, re-check the requests this "
            "policy refused.")

