"""Hostile input at the parsing stage: nesting depth, bytes that are not UTF-8, keys set
twice, and a reader of the output that leaves early (issue 23, "Parsing")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from migrate.cli import main
from migrate.depth import MAX_DEPTH
from migrate.dialects.fields import Fields
from migrate.emit.manifests import write_steps
from migrate.losses import LossLog
from migrate.pipeline import PlanOptions, plan_migration
from migrate.sources.files import read_files
from migrate.sources.model import RawObject
from tests.conftest import REPO, SAMPLES
from tests.test_hostile import assert_rest_planned, cli, errors, sample

NS = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels: {{x: {value}}}\n"


def nested(levels: int, leaf: object = 1) -> dict:
    """A mapping ``levels`` deep (the outermost counts as one)."""
    value: object = leaf
    for _ in range(levels):
        value = {"x": value}
    return value  # type: ignore[return-value]


def deep_virtualservice(levels: int) -> str:
    """A VirtualService, as JSON, whose unmodelled ``spec.extra`` makes it ``levels`` deep in
    all (written by hand: json.dumps itself recurses once per level)."""
    body = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "deep", "namespace": "shop"},
            "spec": {"hosts": ["web"], "http": [{"route": [{"destination": {"host": "web"}}]}],
                     "extra": "EXTRA"}}
    # A float leaf: dumped by PyYAML's own representer, the deepest recursion.
    extra = '{"x": ' * (levels - 2) + "1.5" + "}" * (levels - 2)
    return json.dumps(body).replace('"EXTRA"', extra)


# -- depth ---------------------------------------------------------------------------------
def test_json_nested_100000_deep_is_an_input_problem_and_the_rest_is_planned(tmp_path: Path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    good = tmp_path / "good.yaml"
    good.write_text(sample("istio"))
    result, _, _ = cli(tmp_path, "istio", "linkerd", good, deep)
    assert result.exit_code == 1
    assert errors(result) == [f"error: {deep}:1:{MAX_DEPTH + 1}: nested deeper than "
                              f"{MAX_DEPTH} levels (real Kubernetes objects nest under 30); "
                              "not read"]
    assert_rest_planned("istio", "linkerd", good)


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 900, 5000])
def test_a_document_past_the_limit_is_refused_and_its_neighbours_kept(tmp_path: Path, fmt: str,
                                                                     levels: int):
    text = deep_virtualservice(levels)
    if fmt == "json":
        path = tmp_path / "deep.json"
        path.write_text(text)
        other = tmp_path / "other.yaml"
        other.write_text(sample("istio"))
        paths = [other, path]
    else:
        path = tmp_path / "deep.yaml"
        # Flow style keeps a 5,000-level document small.
        path.write_text(sample("istio") + "---\n" + text + "\n")
        paths = [path]
    result = read_files([str(p) for p in paths])
    [problem] = result.problems
    assert problem.source == str(path) and problem.line is not None
    assert f"nested deeper than {MAX_DEPTH} levels" in problem.message
    assert not any(o.ref.name == "deep" for o in result.objects)
    assert {o.ref.name for o in read_files([str(SAMPLES / "istio" / "shop")]).objects} <= \
        {o.ref.name for o in result.objects}


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_a_document_at_the_limit_is_planned_through_every_stage(tmp_path: Path, fmt: str):
    """Reading, the unaccounted-field walk, packing and YAML dumping all take 200 levels."""
    path = tmp_path / f"deep.{fmt}"
    text = deep_virtualservice(MAX_DEPTH)
    path.write_text(text if fmt == "json" else sample("istio") + "---\n" + text + "\n")
    result = plan_migration(PlanOptions("istio", "linkerd", [str(path)]))
    assert not result.problems
    unmodelled = [x for x in result.losses if x.code == "FIELD_UNMODELLED"
                  and x.object.name == "deep"]
    assert [x.path for x in unmodelled] == ["spec.extra"]
    write_steps(result.plan, tmp_path / "out")  # the rollback copy is dumped at full depth
    copies = [p for p in (tmp_path / "out").rglob("*.yaml") if "deep" in p.read_text()]
    assert copies and any("1.5" in p.read_text() for p in copies)


def test_a_cycle_through_an_alias_is_refused_as_too_deep(tmp_path: Path):
    path = tmp_path / "cycle.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: &a {x: [*a]}\n"
                    "---\n" + NS.format(name="kept", value="y"))
    result = read_files([str(path)])
    assert [p.message.split(" (")[0] for p in result.problems] == \
        [f"nested deeper than {MAX_DEPTH} levels"]
    assert [o.ref.name for o in result.objects] == ["kept"]


def test_the_field_walk_is_bounded_on_objects_deeper_than_files_may_be():
    """A cluster may serve 10,000 levels (Go's JSON limit); the ledger walk must not recurse
    that far."""
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": nested(5000)}
    f = Fields(RawObject(body, "cluster", 0), LossLog(), "istio")
    assert f.unaccounted() == ["data"]


# -- bytes that are not UTF-8 ----------------------------------------------------------------
def test_a_bad_byte_costs_only_its_document_and_u_fffd_is_kept(tmp_path: Path):
    path = tmp_path / "mixed.yaml"
    path.write_bytes(NS.format(name="bad", value='"a\xff"').encode("latin-1") + b"---\n"
                     + NS.format(name="replacement", value='"ok \ufffd"').encode())
    result = read_files([str(path)])
    assert [str(p) for p in result.problems] == \
        [f"{path}:5:17: not UTF-8 text (byte 0xff); document not read"]
    [kept] = result.objects
    assert kept.ref.name == "replacement" and kept.body["metadata"]["labels"]["x"] == "ok \ufffd"


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_a_bad_byte_in_a_list_dump_costs_only_its_item(tmp_path: Path, fmt: str):
    items = [{"apiVersion": "v1", "kind": "Namespace",
              "metadata": {"name": name, "labels": {"x": value}}}
             for name, value in (("first", "\ufffd"), ("bad", "BAD"), ("last", "z"))]
    dump = {"apiVersion": "v1", "kind": "List", "items": items}
    text = json.dumps(dump, indent=2, ensure_ascii=False) if fmt == "json" else \
        yaml.safe_dump(dump, allow_unicode=True)
    path = tmp_path / f"list.{fmt}"
    path.write_bytes(text.encode().replace(b"BAD", b"B\xc3D"))  # a truncated sequence
    result = read_files([str(path)])
    [problem] = result.problems
    line = text[:text.index("BAD")].count("\n") + 1
    assert (problem.line, problem.message) == \
        (line, "not UTF-8 text (byte 0xc3); object items[1] not read")
    assert [o.ref.name for o in result.objects] == ["first", "last"]
    assert result.objects[0].body["metadata"]["labels"]["x"] == "\ufffd"


# -- keys set twice --------------------------------------------------------------------------
DENY_THEN_ALLOW = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-all
  namespace: orders
spec:
  action: DENY
  rules:
  - {}
  action: ALLOW
"""


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_a_key_set_twice_is_reported_as_strict_decoding_does(tmp_path: Path, fmt: str):
    good = tmp_path / "shop.yaml"
    good.write_text(sample("istio"))
    path = tmp_path / f"policy.{fmt}"
    if fmt == "yaml":
        path.write_text(DENY_THEN_ALLOW)
        expected = (f"{path.name}:10: error converting YAML to JSON: yaml: unmarshal errors: "
                    'line 10: key "action" already set in map')
    else:
        path.write_text('{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",'
                        '\n "metadata": {"name": "deny-all", "namespace": "orders"},\n'
                        ' "spec": {"action": "DENY", "rules": [{}],\n  "action": "ALLOW"}}\n')
        expected = f'{path.name}:4: json: duplicate field "action"'
    result, plan, _ = cli(tmp_path, "istio", "linkerd", good, path)
    assert result.exit_code == 0, result.stderr
    [loss] = [x for x in plan["losses"] if x["code"] == "INPUT_DUPLICATE_KEY"]
    assert loss["severity"] == "manual" and loss["path"] == "spec.action"
    assert loss["object"]["name"] == "deny-all"
    assert expected in loss["message"] and "last value" in loss["message"]
    # Planned, with the last value (the API server keeps it): an ALLOW policy.
    raw = next(o for o in read_files([str(path)]).objects if o.ref.name == "deny-all")
    assert raw.body["spec"]["action"] == "ALLOW"
    # --fail-on stops on it.
    run = CliRunner().invoke(main, ["plan", "--from", "istio", "--to", "linkerd", "-f", str(good),
                                    "-f", str(path), "-o", str(tmp_path / "o2"),
                                    "--fail-on", "manual"])
    assert run.exit_code == 3


def test_keys_set_twice_in_list_items_are_lost_on_their_own_item(tmp_path: Path):
    path = tmp_path / "dump.yaml"
    path.write_text("apiVersion: v1\nkind: List\nitems:\n"
                    "- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: a\n"
                    "- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: b\n"
                    "    labels: {x: '1', x: '2'}\n")
    [raw_a, raw_b] = read_files([str(path)]).objects
    assert raw_a.repeated_keys == ()
    [repeated] = raw_b.repeated_keys
    assert (repeated.path, repeated.line) == ("metadata.labels.x", 12)
    assert raw_b.body["metadata"]["labels"] == {"x": "2"}


def test_no_false_duplicates_in_json_that_looks_like_it(tmp_path: Path):
    """Values starting with a colon and escaped quotes before colons are not keys."""
    body = {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "n", "annotations": {"a": ":8080", "b": 'x\\":', "c\\": "d"}}}
    path = tmp_path / "n.json"
    path.write_text(json.dumps(body))
    [raw] = read_files([str(path)]).objects
    assert raw.repeated_keys == ()


# -- a reader that leaves early --------------------------------------------------------------
@pytest.mark.parametrize("stream", ["stderr", "stdout"])
def test_a_closed_pipe_neither_fails_the_plan_nor_cuts_it_short(tmp_path: Path, stream: str):
    out = tmp_path / "out"
    script = REPO / ".venv" / "bin" / "meshmigrate"
    command = [str(script)] if script.exists() else \
        [sys.executable, "-c", "from migrate.cli import run; run()"]
    args = ["plan", "--from", "istio", "--to", "linkerd", "-f", str(SAMPLES / "istio" / "shop"),
            "-o", str(out)]
    if stream == "stdout":
        args = ["meshes"]
    # The reading end is closed before anything is written, as `| head -0` would: every
    # write meets a closed pipe.
    read, write = os.pipe()
    os.close(read)
    done = subprocess.run(command + args, cwd=REPO, timeout=300,
                          stdout=write if stream == "stdout" else subprocess.DEVNULL,
                          stderr=write if stream == "stderr" else subprocess.PIPE)
    os.close(write)
    assert done.returncode == 0
    if stream == "stderr":
        reference = plan_migration(PlanOptions("istio", "linkerd",
                                               [str(SAMPLES / "istio" / "shop")]))
        plan = json.loads((out / "plan.json").read_text())
        assert len(plan["steps"]) == len(reference.plan.steps)
        assert (out / "RUNBOOK.md").read_text().strip()
    else:
        assert b"Traceback" not in done.stderr


def test_a_cluster_object_deeper_than_a_file_may_hold_is_an_input_problem():
    from migrate.pipeline import _refuse_too_deep
    from migrate.sources.model import SourceResult

    deep = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "deep"},
            "data": nested(MAX_DEPTH)}
    shallow = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok"}}
    source = SourceResult([RawObject(deep, "cluster", 0), RawObject(shallow, "cluster", 0)])
    _refuse_too_deep(source)
    assert [o.ref.name for o in source.objects] == ["ok"]
    [problem] = source.problems
    assert str(problem).startswith("cluster: ConfigMap default/deep: nested deeper than")
