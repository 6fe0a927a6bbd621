"""The check proves it is strict (issue 14 item 5): behaviour-changing mutations of the
emitted manifests of every sample, for every target, must each give a divergence no loss
explains. The score per operator is recorded in docs/verify-mutation.md.

A mutator only makes a mutant where the change must be observable: weights swapped only when
they differ, a path changed only on a match the probes exercise, and so on. A mutant the check
does not catch is a gap in the check or a neutral mutant (a bug in the mutator, fixed here).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from migrate.pipeline import PlanOptions, plan_migration
from migrate.verify.compare import compare, final_state
from tests.conftest import SAMPLES
from tests.helpers import texts

Body = dict[str, Any]
Mutant = tuple[str, list[Body]]


def _each(target: list[Body], kind: str) -> Iterator[tuple[int, Body]]:
    for i, body in enumerate(target):
        if body.get("kind") == kind:
            yield i, body


def _mutant(target: list[Body], index: int, change: Callable[[Body], None]) -> list[Body]:
    out = list(target)
    out[index] = copy.deepcopy(target[index])
    change(out[index])
    return out


def swap_weights(target: list[Body]) -> Iterator[Mutant]:
    """Reverse the weights of a rule whose backends have unequal weights."""
    for i, body in enumerate(target):
        kind = body.get("kind")
        rules = body.get("spec", {}).get("rules" if kind == "HTTPRoute" else "http") or []
        for j, rule in enumerate(rules):
            refs = rule.get("backendRefs" if kind == "HTTPRoute" else "route") or []
            weights = [r.get("weight", 1) for r in refs]
            if kind in ("HTTPRoute", "VirtualService") and len(set(weights)) > 1:
                def change(b: Body, j: int = j, w: list[Any] = weights) -> None:
                    key = "rules" if b["kind"] == "HTTPRoute" else "http"
                    field = "backendRefs" if b["kind"] == "HTTPRoute" else "route"
                    for ref, weight in zip(b["spec"][key][j][field], reversed(w)):
                        ref["weight"] = weight
                yield f"{kind}/{body['metadata']['name']} rule {j}", _mutant(target, i, change)
    for i, body in _each(target, "ServiceSplitter"):
        splits = body["spec"].get("splits") or []
        weights = [s.get("weight", 0) for s in splits]
        if len(set(weights)) > 1:
            def flip(b: Body, w: list[Any] = weights) -> None:
                for s, weight in zip(b["spec"]["splits"], reversed(w)):
                    s["weight"] = weight
            yield f"ServiceSplitter/{body['metadata']['name']}", _mutant(target, i, flip)


def change_timeout(target: list[Body]) -> Iterator[Mutant]:
    """Set a rule's timeout to another value."""
    for i, body in _each(target, "HTTPRoute"):
        for j, rule in enumerate(body["spec"].get("rules") or []):
            if (rule.get("timeouts") or {}).get("request"):
                def change(b: Body, j: int = j) -> None:
                    b["spec"]["rules"][j]["timeouts"]["request"] = "17s"
                yield f"HTTPRoute/{body['metadata']['name']} rule {j}", _mutant(target, i, change)
    for i, body in _each(target, "VirtualService"):
        for j, rule in enumerate(body["spec"].get("http") or []):
            if rule.get("timeout"):
                def vs(b: Body, j: int = j) -> None:
                    b["spec"]["http"][j]["timeout"] = "17s"
                yield f"VirtualService/{body['metadata']['name']} rule {j}", _mutant(
                    target, i, vs)
    for i, body in _each(target, "ServiceRouter"):
        for j, route in enumerate(body["spec"].get("routes") or []):
            if (route.get("destination") or {}).get("requestTimeout"):
                def sr(b: Body, j: int = j) -> None:
                    b["spec"]["routes"][j]["destination"]["requestTimeout"] = "17s"
                yield f"ServiceRouter/{body['metadata']['name']} route {j}", _mutant(
                    target, i, sr)


def drop_identity(target: list[Body]) -> Iterator[Mutant]:
    """Remove the identities an authorization admits, or name another one."""
    for i, body in _each(target, "MeshTLSAuthentication"):
        def other(b: Body) -> None:
            b["spec"] = {"identities": ["nobody.mutant.serviceaccount.identity.linkerd."
                                        "cluster.local"]}
        yield f"MeshTLSAuthentication/{body['metadata']['name']}", _mutant(target, i, other)
    for i, body in _each(target, "AuthorizationPolicy"):
        if not body["apiVersion"].startswith("security.istio.io") or \
                body["spec"].get("action", "ALLOW") != "ALLOW":
            continue
        if any(f.get("source", {}).get("principals") for r in body["spec"].get("rules") or []
               for f in r.get("from") or []):
            def swap(b: Body) -> None:
                for r in b["spec"].get("rules") or []:
                    for f in r.get("from") or []:
                        if f.get("source", {}).get("principals"):
                            f["source"]["principals"] = ["cluster.local/ns/mutant/sa/nobody"]
            yield f"AuthorizationPolicy/{body['metadata']['name']}", _mutant(target, i, swap)
    for i, body in _each(target, "ServiceIntentions"):
        if any((s.get("action") == "allow" or s.get("permissions")) and s.get("name") != "*"
               for s in body["spec"].get("sources") or []):
            def rename(b: Body) -> None:
                for s in b["spec"]["sources"]:
                    if s.get("name") != "*":
                        s["name"] = "mutant-nobody"
            yield f"ServiceIntentions/{body['metadata']['name']}", _mutant(target, i, rename)


def open_access(target: list[Body]) -> Iterator[Mutant]:
    """Open an access policy: a Server to everyone, a deny intention flipped to allow. (An
    mTLS mode is not an access policy: where ALLOW policies name identities, PERMISSIVE
    changes nothing, so it would make neutral mutants.)"""
    for i, body in _each(target, "Server"):
        if body["spec"].get("accessPolicy", "deny") != "all-unauthenticated":
            def open_(b: Body) -> None:
                b["spec"]["accessPolicy"] = "all-unauthenticated"
            yield f"Server/{body['metadata']['name']}", _mutant(target, i, open_)
    for i, body in _each(target, "ServiceIntentions"):
        if any(s.get("action") == "deny" for s in body["spec"].get("sources") or []):
            def flip(b: Body) -> None:
                for s in b["spec"]["sources"]:
                    if s.get("action") == "deny":
                        s["action"] = "allow"
            yield f"ServiceIntentions/{body['metadata']['name']}", _mutant(target, i, flip)


def _does_something(body: Body) -> bool:
    """Whether a route does more than send everything to one backend as it is (deleting
    one that only does that, where the backend is the Service's own pods, is neutral)."""
    spec = body.get("spec") or {}
    if body.get("kind") == "ServiceSplitter":
        return len(spec.get("splits") or []) > 1
    if any(k.startswith(("timeout.linkerd.io", "retry.linkerd.io"))
           for k in (body["metadata"].get("annotations") or {})):
        return True
    rules = spec.get("rules") or spec.get("http") or spec.get("routes") or []
    return len(rules) > 1 or any(
        len(r.get("backendRefs") or r.get("route") or []) > 1 or
        any(k in r for k in ("timeouts", "timeout", "retries", "filters", "redirect",
                             "rewrite", "headers", "fault", "mirror"))
        or any(k in (r.get("destination") or {}) for k in (
            "requestTimeout", "numRetries", "prefixRewrite", "requestHeaders"))
        for r in rules if isinstance(r, dict))


def delete_route(target: list[Body]) -> Iterator[Mutant]:
    """Delete a route manifest that does more than send every request to one backend."""
    for i, body in enumerate(target):
        if body.get("kind") in ("HTTPRoute", "VirtualService", "ServiceRouter",
                                "ServiceSplitter") and _does_something(body):
            yield f"{body['kind']}/{body['metadata']['name']}", target[:i] + target[i + 1:]


OPERATORS = {"swap-weights": swap_weights, "change-timeout": change_timeout,
             "drop-identity": drop_identity, "open-access": open_access,
             "delete-route": delete_route}
CASES = [(mesh, path.name, target) for mesh in ("istio", "linkerd", "consul")
         for path in sorted((SAMPLES / mesh).iterdir()) if path.is_dir()
         for target in ("istio", "linkerd", "consul") if target != mesh]


def run_case(mesh: str, name: str, target: str) -> dict[str, tuple[int, list[str]]]:
    """Operator -> (mutants made, mutants the check did not catch)."""
    result = plan_migration(PlanOptions(mesh, target, [str(SAMPLES / mesh / name)]))
    state, annotations = final_state(([m.body for m in s.manifests], texts(s.commands))
                                      for s in result.plan.steps)
    source = [o.body for o in result.read.objects]
    out = {}
    for op, make in OPERATORS.items():
        made, missed = 0, []
        for label, mutant in make(state):
            made += 1
            eq = compare(source, mutant, annotations, result.plan.losses, source_mesh=mesh,
                         target_mesh=target)
            if not eq.unexplained:
                missed.append(label)
        out[op] = (made, missed)
    return out


@pytest.mark.parametrize("mesh,name,target", CASES, ids=[f"{m}-{n}-to-{t}" for m, n, t in CASES])
def test_every_mutant_of_a_sample_plan_is_caught(mesh: str, name: str, target: str):
    scores = run_case(mesh, name, target)
    assert sum(made for made, _ in scores.values()) > 0
    survivors = {op: missed for op, (_, missed) in scores.items() if missed}
    assert survivors == {}


if __name__ == "__main__":  # python -m tests.test_verify_mutation: the table in the docs
    totals: dict[str, list[int]] = {op: [0, 0] for op in OPERATORS}
    for case in CASES:
        for op, (made, missed) in run_case(*case).items():
            totals[op][0] += made
            totals[op][1] += made - len(missed)
            for label in missed:
                print("survived:", *case, op, label)
    for op, (made, caught) in totals.items():
        print(f"| {op} | {made} | {caught} | {caught / made:.0%} |" if made else
              f"| {op} | 0 | 0 | - |")
    _ = Path
