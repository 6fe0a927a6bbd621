"""Wrong types anywhere in real objects never crash the planner: each damaged object is
reported (a loss or an input problem) and every other object is still planned."""

from __future__ import annotations

import copy
import io
import random
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrate.pipeline import PlanOptions, plan_migration
from tests.conftest import SAMPLES

DOCS = [d for p in sorted((SAMPLES / "istio" / "bookinfo").glob("*.yaml"))
        for d in yaml.safe_load_all(p.read_text()) if d]
DOCS += yaml.safe_load((SAMPLES / "istio" / "shop" / "dump.yaml").read_text())["items"]
JUNK = st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.none(),
                 st.lists(st.integers(), max_size=2),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths(v, prefix + (i,))
    return out


def damage(doc: dict[str, Any], where: tuple, junk: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    target = doc
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = junk
    return doc


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=10_000), st.lists(JUNK, min_size=1, max_size=3))
def test_damaged_objects_are_reported_and_the_rest_planned(seed: int, junk: list[Any]):
    rng = random.Random(seed)
    docs = list(DOCS)
    damaged = set()
    for value in junk:
        i = rng.randrange(len(docs))
        candidates = [p for p in paths(docs[i]) if p[0] in ("spec", "metadata")]
        if not candidates:
            continue
        docs[i] = damage(docs[i], rng.choice(candidates), value)
        damaged.add(i)
    text = yaml.safe_dump_all(docs)
    result = plan_migration(PlanOptions("istio", "linkerd", ["-"],
                                        stdin=io.BytesIO(text.encode())))
    # The untouched objects are still planned: the reviews routing survives unless damaged.
    untouched = {(d["kind"], d["metadata"]["name"]) for i, d in enumerate(docs)
                 if i not in damaged}
    needed = {("VirtualService", "reviews"), ("DestinationRule", "reviews"),
              ("Service", "reviews")}
    if needed <= untouched:
        assert any(m.kind == "HTTPRoute" and m.name.startswith("reviews")
                   for s in result.plan.steps for m in s.manifests)
    assert result.plan.steps[-1].kind == "cleanup"


def _items(mesh: str) -> list[dict[str, Any]]:
    return yaml.safe_load((SAMPLES / mesh / "shop" / "dump.yaml").read_text())["items"]


FUZZ_PAIRS = [("istio", "consul"), ("linkerd", "istio"), ("linkerd", "consul"),
              ("consul", "istio"), ("consul", "linkerd")]


@pytest.mark.parametrize(("source", "target"), FUZZ_PAIRS)
def test_damaged_objects_of_every_source_never_crash_a_plan(source: str, target: str):
    """Junk anywhere under spec or metadata of any source's objects, to any target: the
    plan completes: a cleanup step last, and namespaces still moved."""
    docs = _items(source)

    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.integers(min_value=0, max_value=10_000), st.lists(JUNK, min_size=1, max_size=3))
    def run(seed: int, junk: list[Any]) -> None:
        rng = random.Random(seed)
        damaged = list(docs)
        for value in junk:
            i = rng.randrange(len(damaged))
            candidates = [p for p in paths(damaged[i]) if p[0] in ("spec", "metadata")]
            if candidates:
                damaged[i] = damage(damaged[i], rng.choice(candidates), value)
        text = yaml.safe_dump_all(damaged)
        result = plan_migration(PlanOptions(source, target, ["-"],
                                            stdin=io.BytesIO(text.encode())))
        assert result.plan.steps[-1].kind == "cleanup"
        assert any(s.kind == "move" for s in result.plan.steps)

    run()
