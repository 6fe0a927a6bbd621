"""What the speed and memory work on large plans relies on (docs/performance.md): one copy of
each source object, rollback copies made when they are written, bodies kept packed (source
objects and manifests read back as written, their identity unpacked), the field ledger's shared
entries, objects let go after reading, plan.json written piece by piece, and the fast paths
that must give the same answers as the general ones."""

from __future__ import annotations

import copy
import datetime
import gc
import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate.dialects.base import Manifest
from migrate.dialects.fields import NOISE, Fields
from migrate.dialects.istio.coexist import neutralize_mesh_tls
from migrate.emit.manifests import (
    file_name,
    manifest_file_name,
    source_file_name,
    step_file_names,
    step_files,
    write_steps,
)
from migrate.emit.planjson import dump_plan, write_plan
from migrate.ir.graph import selects
from migrate.losses import LossLog, ObjectRef, Severity
from migrate.names import k8s_name
from migrate.packing import pack, unpack
from migrate.pipeline import PlanOptions, _no_gc_pauses, plan_migration
from migrate.plan.model import restorable
from migrate.sources.files import MAX_OBJECT_CHARS, _has_oversized_document
from migrate.sources.model import RawObject, strip_noise
from migrate.yamlio import split_documents
from tests.conftest import SAMPLES

BOOKINFO = SAMPLES / "istio" / "bookinfo"
SHOP = SAMPLES / "istio" / "shop"


def _dr(name: str, mode: str) -> RawObject:
    return RawObject({
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": "shop", "uid": "u-1",
                     "resourceVersion": "7"},
        "spec": {"host": name, "trafficPolicy": {"tls": {"mode": mode}}},
        "status": {"conditions": []},
    }, "dr.yaml", 1)


# -- one copy of each source object ---------------------------------------------------------
def test_rollback_keeps_the_source_object_and_copies_it_when_written():
    result = plan_migration(PlanOptions("istio", "linkerd", [str(BOOKINFO)]))
    kept = {id(raw) for raw in result.read.raw.values()}
    steps = [s for s in result.plan.steps if s.rollback_sources]
    assert steps, "bookinfo has rollback copies"
    for step in steps:
        # The step points at the reader's objects: no second copy is kept in the plan.
        assert all(id(obj) in kept for obj in step.rollback_sources)
        assert step.rollback_manifests == [strip_noise(o.body) for o in step.rollback_sources]
        written = {name: body for name, body in step_files(step).items()
                   if name.startswith("rollback/")}
        assert list(written.values()) == sorted(step.rollback_manifests,
                                                key=lambda b: _file_key(written, b))
        # Rollback file names come from what the holders keep unpacked, as from the bodies.
        assert step_file_names(step)[1] == sorted(written)
    # The rewritten DestinationRule is a copy: the source keeps ISTIO_MUTUAL for the rollback.
    first = result.plan.steps[0]
    [original] = first.rollback_sources
    assert original.body["spec"]["trafficPolicy"]["tls"]["mode"] == "ISTIO_MUTUAL"
    assert "tls" not in first.manifests[0].body["spec"].get("trafficPolicy", {})


def test_packed_source_object_reads_back_as_read_and_keeps_its_identity():
    raw = RawObject({**_dr("reviews", "ISTIO_MUTUAL").body,
                     "metadata": {"name": "reviews", "creationTimestamp":
                                  datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc)}},
                    "dr.yaml", 3)
    packed = raw.packed()
    assert packed.body == raw.body and packed.body is not packed.body  # a new copy each time
    assert (packed.ref, packed.source, packed.line, packed.written_namespace) == \
        (raw.ref, "dr.yaml", 3, "")
    assert raw.ref.namespace == "default"  # as Kubernetes names it
    # The rollback copy is restored into that namespace (restorable), and named after it.
    assert source_file_name(packed) == file_name(restorable(raw)) == \
        "default/destinationrule.networking.istio.io_reviews.yaml"
    assert packed.packed() is packed and packed == raw
    packed.body["spec"]["host"] = "changed"
    assert packed.body["spec"]["host"] == "reviews"


def test_packing_takes_plain_data_fast_and_anything_else_by_pickle():
    plain = {"a": [1, "x", None, True, 2.5, {"b": []}]}
    dated = {"since": datetime.date(2024, 1, 2), "raw": b"\x00\x01"}
    assert unpack(pack(plain)) == plain and pack(plain)[:1] != b"\x00"
    assert unpack(pack(dated)) == dated and pack(dated)[:1] == b"\x00"


def test_source_values_that_are_not_plain_data_plan_and_write(tmp_path: Path):
    """A YAML date in a source object the plan rewrites (a mesh-TLS DestinationRule) ends up
    in a manifest and a rollback copy: both are packed, unpacked and written."""
    src = tmp_path / "in.yaml"
    src.write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: "
        "{istio-injection: enabled}}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
        "spec: {selector: {app: web}, ports: [{name: http, port: 80}]}\n---\n"
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        "metadata: {name: web, namespace: shop, labels: {since: 2024-01-02}}\n"
        "spec: {host: web, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}\n")
    result = plan_migration(PlanOptions("istio", "linkerd", [str(src)], verify=False,
                                        keep_objects=False))
    first = result.plan.steps[0]
    assert first.manifests[0].body["metadata"]["labels"]["since"] == datetime.date(2024, 1, 2)
    write_steps(result.plan, tmp_path / "out")
    written = sorted((tmp_path / "out" / "steps" / first.id).rglob("destinationrule*.yaml"))
    assert [p.relative_to(tmp_path / "out" / "steps" / first.id).as_posix() for p in written] \
        == ["rollback/shop/destinationrule.networking.istio.io_web.yaml",
            "shop/destinationrule.networking.istio.io_web.yaml"]
    assert all("since: 2024-01-02" in p.read_text() for p in written)


def test_manifest_keeps_its_body_packed_and_its_identity_unpacked():
    body = {"apiVersion": "policy.linkerd.io/v1beta3", "kind": "Server",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"a": "b"}},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "port": 8080}}
    ref = ObjectRef("Service", "shop", "web", "v1")
    m = Manifest(body, (ref,))
    assert m.body == body and m.body is not m.body
    assert (m.api_version, m.kind, m.name, m.namespace, m.patch) == \
        ("policy.linkerd.io/v1beta3", "Server", "web", "shop", False)
    assert manifest_file_name(m) == file_name(body) == source_file_name(m)
    body["spec"]["port"] = 9090  # the writer's dict changing later does not change the manifest
    assert m.body["spec"]["port"] == 8080 and m != Manifest(body, (ref,))
    cluster = Manifest({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}, ())
    assert cluster.namespace == ""
    assert manifest_file_name(cluster) == "_cluster/namespace_x.yaml"


def _file_key(written: dict[str, Any], body: dict[str, Any]) -> str:
    return next(name for name, b in written.items() if b == body)


def test_only_mesh_tls_destination_rules_are_copied_and_the_source_stays_as_read():
    mutual, simple = _dr("reviews", "ISTIO_MUTUAL"), _dr("ratings", "SIMPLE")
    before = copy.deepcopy([mutual.body, simple.body])
    out = neutralize_mesh_tls({mutual.ref: mutual, simple.ref: simple})
    assert [(obj.ref.name, "tls" in body["spec"].get("trafficPolicy", {}))
            for body, obj in out] == [("reviews", False)]
    [(body, _)] = out
    assert "uid" not in body["metadata"] and "status" not in body  # server-set fields gone
    assert [mutual.body, simple.body] == before


def test_plan_without_checks_lets_go_of_objects_it_does_not_use(tmp_path: Path):
    kept = plan_migration(PlanOptions("istio", "linkerd", [str(SHOP)], verify=False))
    slim = plan_migration(PlanOptions("istio", "linkerd", [str(SHOP)], verify=False,
                                      keep_objects=False))
    assert any(o.ref not in kept.read.raw for o in kept.read.objects), "shop has Deployments"
    assert [o.ref for o in slim.read.objects] == \
        [o.ref for o in kept.read.objects if o.ref in kept.read.raw]
    assert kept.read.accounted and not slim.read.accounted  # field ledgers are let go too
    # The plan is the same either way.
    assert dump_plan(slim.plan) == dump_plan(kept.plan)
    assert [step_files(s) for s in slim.plan.steps] == [step_files(s) for s in kept.plan.steps]
    # With the checks on, every object stays: they are evaluated.
    checked = plan_migration(PlanOptions("istio", "linkerd", [str(SHOP)], keep_objects=False))
    assert len(checked.read.objects) == len(kept.read.objects)


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_write_runbook_writes_the_text_render_runbook_returns(tmp_path: Path, batch: int,
                                                              monkeypatch: pytest.MonkeyPatch):
    from migrate.emit import runbook

    monkeypatch.setattr(runbook, "_BATCH", batch)
    plan = plan_migration(PlanOptions("istio", "linkerd", [str(BOOKINFO)])).plan
    runbook.write_runbook(plan, tmp_path / "RUNBOOK.md")
    text = runbook.render_runbook(plan)
    assert text.count("\n") > 100
    assert (tmp_path / "RUNBOOK.md").read_text(encoding="utf-8") == text


def test_write_plan_writes_the_bytes_dump_plan_returns(tmp_path: Path):
    plan = plan_migration(PlanOptions("istio", "linkerd", [str(BOOKINFO)])).plan
    write_plan(plan, tmp_path / "plan.json")
    assert (tmp_path / "plan.json").read_bytes() == dump_plan(plan).encode("utf-8")



def test_plan_json_encoder_writes_what_json_dumps_writes():
    import math
    import random

    from migrate.emit.planjson import _indented

    rnd = random.Random(5)

    def value(depth):
        if depth > 4 or rnd.random() < 0.4:
            return rnd.choice(["s", "ü\t\"\u2028", 3, -1, 0.1, -0.0, math.inf, math.nan, None,
                               True, False, "", [], {}, ["x", "y\n"], ("t",), 10**30])
        if rnd.random() < 0.5:
            return [value(depth + 1) for _ in range(rnd.randint(0, 4))]
        return {rnd.choice(["k", "ñ", 1, 2.5, True, None]): value(depth + 1)
                for _ in range(rnd.randint(0, 4))}

    for _ in range(2000):
        v = value(0)
        for level in (0, 2):
            assert _indented(v, level) == json.dumps(v, indent=2, ensure_ascii=False).replace(
                "\n", "\n" + "  " * level)


def test_write_plan_batches_join_into_the_bytes_dump_plan_returns(tmp_path: Path):
    import dataclasses

    plan = plan_migration(PlanOptions("istio", "linkerd", [str(BOOKINFO)])).plan
    for count in (0, 1, 999, 1000, 1001, 2500):  # losses are written 1,000 at a time
        losses = (plan.losses * (count // max(len(plan.losses), 1) + 1))[:count]
        variant = dataclasses.replace(plan, losses=losses, steps=plan.steps[:count % 3])
        write_plan(variant, tmp_path / "plan.json")
        assert (tmp_path / "plan.json").read_bytes() == dump_plan(variant).encode("utf-8")


def test_losses_with_any_text_are_written_as_json_dumps_writes_them(tmp_path: Path):
    # plan.json's losses are written from a template, not by the json module: every field
    # that holds text of the input (names, paths, messages) is escaped the same way.
    import dataclasses

    from migrate.losses import Loss, ObjectRef, Severity

    plan = plan_migration(PlanOptions("istio", "linkerd", [str(BOOKINFO)])).plan
    odd = ['q"uote', "back\\slash", "tab\tnew\nline", "ünï\u2028code", "", "\x00\x1f", "{}[],:"]
    losses = [Loss(f"CODE_{i}", severity, odd[i % 7], ObjectRef(odd[(i + 1) % 7],
                                                                 odd[(i + 2) % 7],
                                                                 odd[(i + 3) % 7],
                                                                 odd[(i + 4) % 7]),
                   odd[(i + 5) % 7], odd[(i + 6) % 7], odd[i % 7] * 2)
              for i, severity in enumerate(list(Severity) * 4)]
    variant = dataclasses.replace(plan, losses=losses)
    write_plan(variant, tmp_path / "plan.json")
    assert (tmp_path / "plan.json").read_bytes() == dump_plan(variant).encode("utf-8")
    written = json.loads((tmp_path / "plan.json").read_text(encoding="utf-8"))["losses"]
    assert written == [loss.to_json() for loss in losses]


def test_collector_is_back_on_after_a_plan_and_nothing_stays_frozen():
    assert gc.isenabled()
    with _no_gc_pauses():
        assert not gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.disable()
    try:
        with _no_gc_pauses():
            pass
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


# -- the field ledger -----------------------------------------------------------------------
def _fields(body: dict[str, Any]) -> Fields:
    return Fields(RawObject(body, "x.yaml", 1), LossLog(), "istio")


def test_ledger_counts_bookkeeping_fields_without_storing_them():
    f = _fields({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"}})
    assert len(f.accounted) == 0
    assert all(path in f.accounted for path in NOISE)
    f.get("spec.port")
    assert "spec.port" in f.accounted and len(f.accounted) == 1


def test_unaccounted_walk_folds_whole_subtrees_and_skips_empty_fields():
    f = _fields({
        "apiVersion": "v1", "kind": "X", "metadata": {"name": "a", "labels": {"k": "v"}},
        "spec": {
            "read": 1,
            "mixed": {"read": 2, "left": 3, "empty": {}},
            "untouched": {"a": [1, {"b": 2}], "c": "d"},
            "halfempty": {"x": 1, "none": None},
            "list": [{"read": 1, "left": 2}, 7],
            5: "an int key",
        },
        "status": {"ready": True},
    })
    for path in ("spec.read", "spec.mixed.read", "spec.list[0].read"):
        f.get(path)
    assert f.unaccounted() == [
        "spec.mixed.left", "spec.untouched", "spec.halfempty.x", "spec.list[0].left",
        "spec.list[1]", "spec.5"]


def _reference_unaccounted(f: Fields) -> list[str]:
    """The walk as the ledger defines it, written for clarity: a node in the ledger (or
    bookkeeping) is accounted with all it holds; an empty field holds nothing; a mapping or
    list whose members are all unaccounted is reported as itself, once."""
    def walk(value: Any, path: str) -> tuple[bool, list[str]]:
        if path in f.accounted:
            return False, []
        if isinstance(value, (dict, list)) and value:
            pairs = [(f"{path}.{k}" if path else str(k), v) for k, v in value.items()] \
                if isinstance(value, dict) else \
                [(f"{path}[{i}]", v) for i, v in enumerate(value)]
            results = [walk(v, p) for p, v in pairs]
            whole = all(r[0] for r in results)
            if whole and path:
                return True, [path]
            return whole, [x for r in results for x in r[1]]
        if value is None or value == {} or value == []:
            return False, []
        return True, [path]
    return walk(f.body, "")[1]


_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from(["", "v"]),
                    st.just({}), st.just([]))
_KEYS = st.sampled_from(["a", "b", "c", "spec", "status", "metadata", "name"])
_TREES = st.recursive(_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=3)), max_leaves=12)


@given(st.dictionaries(_KEYS, _TREES, max_size=4), st.data())
@settings(max_examples=300, deadline=None)
def test_unaccounted_walk_matches_the_reference_walk(body: dict[str, Any], data: Any):
    f = _fields(body)
    reference = _reference_unaccounted(_fields(body))
    # Consume a random part of what the reference reports (and of what it holds).
    for path in data.draw(st.lists(st.sampled_from(reference), max_size=4)) if reference \
            else ():
        f.accounted.add(path)
    assert f.unaccounted() == _reference_unaccounted(f)


def test_field_lookup_reads_only_the_right_shapes():
    f = _fields({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"},
                 "spec": {"list": [{"k": "v"}], "text": "abc", "map": {"0": "zero"},
                          "ints": {0: "zero"}, "none": None, "number": 7}})
    assert f.peek("spec.list[0].k") == "v"
    assert f.peek("spec.list[1].k", "absent") == "absent"
    assert f.peek("spec.text[0]", "absent") == "absent"  # a string is not a list
    assert f.peek("spec.map[0]", "absent") == "absent"  # an index is not a key
    assert f.peek("spec.list.k", "absent") == "absent"
    assert f.peek("spec.map.0") == "zero"
    assert f.peek("spec.ints[0]", "absent") == "absent"  # not even when the mapping has it
    assert f.peek("spec.text.x", "absent") == f.peek("spec.none.x", "absent") == "absent"
    assert f.peek("spec.number[0]", "absent") == f.peek("spec.number.x", "absent") == "absent"
    assert f.peek("spec.list[0]") == {"k": "v"} and f.peek("spec.none", "absent") is None


# -- reading large streams ------------------------------------------------------------------
def _reference_oversized(text: str) -> bool:
    """The check as it was: every chunk copied out and measured."""
    head = re.compile(r"^items:", re.MULTILINE)
    return any(len(chunk) > MAX_OBJECT_CHARS and not head.search(chunk)
               for _, chunk in split_documents(text))


@pytest.mark.parametrize("layout", ["small", "big-object", "big-list", "big-blank", "big-last"])
def test_oversized_document_is_found_without_copying_chunks(layout: str):
    small = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n"
    filler = "x" * (MAX_OBJECT_CHARS + 10)
    big = {
        "small": small,
        "big-object": f"{small}data:\n  blob: {filler}\n",
        "big-list": f"apiVersion: v1\nkind: List\nitems:\n- {filler}\n",
        "big-blank": " " * (MAX_OBJECT_CHARS + 10) + "\n",
        "big-last": small,
    }[layout]
    text = f"{small}---\n{big}---\n{small}"
    if layout == "big-last":
        text = f"{small}---\n{small}---\n{small}data:\n  blob: {filler}"
    expected = layout in ("big-object", "big-last")
    assert _has_oversized_document(text) is expected
    assert _reference_oversized(text) is expected


# -- fast paths give the general answer -----------------------------------------------------
def _reference_k8s_name(*parts: object, max_len: int = 63) -> str:
    """k8s_name's general rewriting, without the shortcut for names already valid."""
    raw = "-".join(str(p) for p in parts if str(p) != "")
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name) or "x"
    if not name[0].isalpha():
        name = "x-" + name
    if len(name) > max_len:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        name = f"{name[: max_len - 9].rstrip('-')}-{digest}"
    return name


def test_k8s_name_shortcut_agrees_with_the_general_rules():
    rng = random.Random(7)
    alphabet = "ab09-Z._\u00e9\u212a "
    for _ in range(20000):
        parts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
                 for _ in range(rng.randint(1, 3))]
        max_len = rng.choice([63, 48, 8])
        assert k8s_name(*parts, max_len=max_len) == _reference_k8s_name(*parts,
                                                                         max_len=max_len)
    assert k8s_name("reviews", "v1") == "reviews-v1"
    assert k8s_name("a" * 64) == _reference_k8s_name("a" * 64) != "a" * 64


def test_selects_is_label_subset():
    rng = random.Random(3)
    pairs = [(k, v) for k in "abc" for v in "xy"]
    for _ in range(5000):
        pod = tuple(sorted(dict(rng.sample(pairs, rng.randint(0, 3))).items()))
        selector = tuple(sorted(dict(rng.sample(pairs, rng.randint(0, 2))).items()))
        assert selects(selector, pod) is (set(selector) <= set(pod))
    assert selects(None, ())


def _natural_reference(path: str) -> str:
    """The loss sort key's padding as it was written first, character by character."""
    out, num = [], ""
    for ch in path:
        if "0" <= ch <= "9":
            num += ch
            continue
        if num:
            out.append(num.zfill(6))
            num = ""
        out.append(ch)
    if num:
        out.append(num.zfill(6))
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab.[]0123456789", max_size=30))
def test_loss_sort_key_pads_every_run_of_digits(path: str):
    from migrate.losses import _natural

    assert _natural(path) == _natural_reference(path)
    assert _natural("spec.http[9].route") < _natural("spec.http[10].route")


def test_loss_log_keeps_its_order_until_a_loss_is_added():
    log = LossLog()
    ref = ObjectRef("VirtualService", "shop", "web", "networking.istio.io/v1")
    for path in ("spec.http[10]", "spec.http[2]"):
        log.report("ROUTE_X", Severity.DROPPED, "route.http", ref, path, "m", "a")
    first = list(log)
    assert [x.path for x in first] == ["spec.http[2]", "spec.http[10]"]
    assert list(log) == first
    log.report("ROUTE_X", Severity.DROPPED, "route.http", ref, "spec.http[2]", "m", "a")  # known
    log.report("ROUTE_X", Severity.DROPPED, "route.http", ref, "spec.http[1]", "m", "a")
    assert [x.path for x in log] == ["spec.http[1]", "spec.http[2]", "spec.http[10]"]
    assert len(log) == 3
