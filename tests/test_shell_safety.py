"""No input reaches a shell unquoted, and no input writes a line of the runbook (issue 23).

Every command of a plan is argv data built by the planner (migrate/plan/commands.py) and
rendered once with ``shlex.join``; every runbook line passes one control-character filter.
The property test puts arbitrary strings in every name, namespace, label and annotation
position of a small input of each source mesh and plans it to every other mesh; the
regression tests run the commands of the issue's examples through ``bash`` with stub
binaries and look for the file the injected command would create.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any, Iterable

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrate.emit.planjson import dump_plan, write_plan
from migrate.emit.runbook import render_runbook
from migrate.errors import UsageError
from migrate.names import metadata_problems, valid_label_value, valid_qualified_name
from migrate.pipeline import SOURCES, TARGETS, PlanOptions, PlanResult, plan_migration
from migrate.plan.commands import (
    PIPE,
    Command,
    json_arg,
    pipe,
    render,
    run,
    tokens,
    visible,
)
from migrate.plan.model import Plan
from tests.conftest import SAMPLES
from tests.helpers import plan_yaml

MARKER = "PWNED-LINE"
"""Put after a line break in values: a runbook line starting with it was written by the input."""
STUBS = ("kubectl", "linkerd", "istioctl", "helm", "consul-k8s")


# -- what every plan must hold ---------------------------------------------------------------
def commands_of(plan: Plan) -> Iterable[Command]:
    """Every command of every step: commands, verify, rollback (rollback sentences aside)."""
    for step in plan.steps:
        yield from step.commands
        yield from step.verify
        yield from (c for c in step.rollback if isinstance(c, Command))


def assert_commands_round_trip(plan: Plan) -> None:
    """Each rendered command parses back (as a POSIX shell splits it, comments dropped) into
    exactly the words the planner built, and plan.json says the same."""
    for command in commands_of(plan):
        text = render(command)
        assert shlex.split(text, comments=True) == tokens(command), text
    for step in json.loads(dump_plan(plan))["steps"]:
        for entry in step["commands"] + step["verify"] + step["rollback"]:
            if "manual" in entry:
                continue
            words = [w for i, argv in enumerate(entry["argv"])
                     for w in ([PIPE] if i else []) + argv]
            assert shlex.split(entry["run"], comments=True) == words, entry


def assert_runbook_lines_are_the_planners(plan: Plan) -> None:
    """No runbook line starts with the marker put after a line break, and no line holds a
    control character that could break it for a reader or a terminal."""
    for line in render_runbook(plan).split("\n"):
        assert not line.lstrip(" -[]1.|`'\"").startswith(MARKER), line
        assert visible(line) == line, line


# -- the property test -----------------------------------------------------------------------
_VALID_NAME = st.from_regex(r"\A[a-z]([a-z0-9-]{0,10}[a-z0-9])?\Z")
_VALID_KEY = st.from_regex(r"\A([a-z]{1,6}\.io/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?\Z")
_VALID_VALUE = st.from_regex(r"\A([A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?)?\Z")
_HOSTILE = st.sampled_from([
    "$(touch marker)", "`touch marker`", "a'b", 'a"b', "x; touch marker", "a\nPWNED-LINE",
    "a\r\nPWNED-LINE", "a\u2028PWNED-LINE", "nul\x00byte", "tab\there", "a#b", "--overwrite",
    "-n", "é", "\u202etxt", "|", "&&", "a b", "", "*", "~root", "a\\", "$HOME", "!!",
    "enabled --overwrite; touch marker; echo", "true'; touch marker; echo '",
])
# Any text at all (hypothesis' default alphabet: every code point but surrogates), hostile
# favourites, and a marker after a line break.
_ANY = st.one_of(_HOSTILE, st.text(max_size=12),
                 st.builds(lambda a, b: f"{a}\n{MARKER}{b}", st.text(max_size=4),
                           st.text(max_size=4)))


def _mostly(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Valid three times in four: an object with a value the API server refuses is not
    planned, so the rest of the input must often be valid for commands to hold the others."""
    return st.one_of(valid, valid, valid, _ANY)


@st.composite
def slots(draw: st.DrawFn) -> dict[str, str]:
    """A value for every name, namespace, label and annotation position of :func:`document`.
    Annotation values are never refused, so they are any text."""
    return {
        "ns": draw(_mostly(_VALID_NAME)),
        "name": draw(_mostly(_VALID_NAME)),
        "policy": draw(_mostly(_VALID_NAME)),
        "label_key": draw(_mostly(_VALID_KEY)), "label_value": draw(_mostly(_VALID_VALUE)),
        "annotation_key": draw(_mostly(_VALID_KEY)),
        "annotation_value": draw(st.one_of(_ANY, _VALID_VALUE)),
        "inject": draw(st.one_of(_ANY, st.sampled_from(["enabled", "true", "disabled"]))),
    }


def document(source: str, v: dict[str, str]) -> list[dict[str, Any]]:
    """A namespace with one Service and one Deployment meshed by ``source``, and a policy and
    a route of that mesh, every name, namespace, label and annotation taken from ``v``."""
    ns, name = v["ns"], v["name"]
    extra_labels = {v["label_key"]: v["label_value"]}
    extra_annotations = {v["annotation_key"]: v["annotation_value"]}
    ns_labels = {**extra_labels}
    ns_annotations = {**extra_annotations}
    template_labels = {"app": "web", **extra_labels}
    template_annotations = {**extra_annotations}
    if source == "istio":
        ns_labels["istio-injection"] = "enabled"
        ns_labels["istio.io/rev"] = v["label_value"]
        template_labels["sidecar.istio.io/inject"] = v["label_value"]
    elif source == "linkerd":
        ns_annotations["linkerd.io/inject"] = v["inject"]
        template_annotations["linkerd.io/inject"] = v["inject"]
    else:
        template_annotations["consul.hashicorp.com/connect-inject"] = v["inject"]
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": ns, "labels": ns_labels, "annotations": ns_annotations}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": name, "namespace": ns, "labels": extra_labels,
                      "annotations": extra_annotations},
         "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 8080}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": name, "namespace": ns, "labels": extra_labels},
         "spec": {"selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": template_labels,
                                            "annotations": template_annotations},
                               "spec": {"containers": [{"name": "web", "image": "web"}]}}}},
    ]
    meta = {"name": v["policy"], "namespace": ns, "labels": extra_labels,
            "annotations": extra_annotations}
    host = f"{name}.{ns}.svc.cluster.local"
    if source == "istio":
        objects += [
            {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
             "metadata": meta, "spec": {"mtls": {"mode": "STRICT"}}},
            {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
             "metadata": meta, "spec": {"hosts": [host], "http": [
                 {"timeout": "3s", "route": [{"destination": {"host": host}}]}]}},
        ]
    elif source == "linkerd":
        objects += [
            {"apiVersion": "policy.linkerd.io/v1beta3", "kind": "Server", "metadata": meta,
             "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "port": "http",
                      "accessPolicy": "deny"}},
            {"apiVersion": "policy.linkerd.io/v1beta3", "kind": "HTTPRoute", "metadata": meta,
             "spec": {"parentRefs": [{"group": "core", "kind": "Service", "name": name,
                                      "port": 8080}],
                      "rules": [{"timeouts": {"request": "3s"},
                                 "backendRefs": [{"name": name, "port": 8080}]}]}},
        ]
    else:
        objects += [
            {"apiVersion": "consul.hashicorp.com/v1alpha1", "kind": "ServiceIntentions",
             "metadata": meta, "spec": {"destination": {"name": name},
                                        "sources": [{"name": "api", "action": "allow"}]}},
            {"apiVersion": "consul.hashicorp.com/v1alpha1", "kind": "ServiceRouter",
             "metadata": {**meta, "name": name},
             "spec": {"routes": [{"match": {"http": {"pathPrefix": "/a"}},
                                  "destination": {"requestTimeout": "3s"}}]}},
        ]
    return objects


def plan_objects(objects: list[dict[str, Any]], source: str, target: str) -> PlanResult:
    """Plan YAML as ``kubectl get -o yaml`` would write these objects (control characters
    escaped in double quotes, as PyYAML writes them)."""
    return plan_yaml(yaml.safe_dump_all(objects, sort_keys=True), source, target)


PAIRS = [(s, t) for s in sorted(SOURCES) for t in sorted(TARGETS) if s != t]


@pytest.mark.parametrize("source,target", PAIRS)
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(values=slots())
def test_no_input_reaches_a_shell_or_a_line_of_its_own(source: str, target: str,
                                                       values: dict[str, str]):
    try:
        result = plan_objects(document(source, values), source, target)
    except UsageError as refused_whole:
        # Every object that showed the source mesh was refused, so nothing is planned (and no
        # uninstall of a mesh that was not read): no command exists to reach a shell, and the
        # one-line error names the refused values escaped.
        message = str(refused_whole)
        assert message.startswith(f"no {source} configuration in the input")
        assert message == visible(message)
        return
    assert_commands_round_trip(result.plan)
    assert_runbook_lines_are_the_planners(result.plan)
    # A value the API server would refuse is never in a command: its object was refused.
    refused = [v for v in (values["ns"], values["name"], values["policy"])
               if metadata_problems("Deployment", "apps/v1", {"name": v}, True)]
    words = {w for c in commands_of(result.plan) for w in tokens(c)}
    for value in refused:
        assert value not in words or value in ("-n", "|", "*", "&&", "--overwrite")


@st.composite
def valid_names(draw: st.DrawFn) -> dict[str, str]:
    """Names, namespaces, labels and annotation keys the API server accepts, and any
    annotation values: every object is planned, so the values reach the commands."""
    return {
        "ns": draw(_VALID_NAME), "name": draw(_VALID_NAME), "policy": draw(_VALID_NAME),
        "label_key": draw(_VALID_KEY), "label_value": draw(_VALID_VALUE),
        "annotation_key": draw(_VALID_KEY), "annotation_value": draw(_ANY),
        "inject": draw(st.one_of(_ANY, st.sampled_from(["enabled", "true", "disabled"]))),
    }


@pytest.mark.parametrize("source,target", PAIRS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=valid_names())
def test_any_annotation_value_is_quoted_where_a_command_holds_it(source: str, target: str,
                                                                values: dict[str, str]):
    result = plan_objects(document(source, values), source, target)
    assert not [p for p in result.plan.input_problems if values["ns"] in p]
    assert [s.namespaces for s in result.plan.steps if s.kind == "move"] == [[values["ns"]]]
    assert_commands_round_trip(result.plan)
    assert_runbook_lines_are_the_planners(result.plan)


def test_a_plan_with_valid_names_has_commands_to_check():
    """The property test's input, with plain values, plans every position into commands (so
    its checks are not vacuous)."""
    values = {"ns": "shop", "name": "web", "policy": "web", "label_key": "team",
              "label_value": "a", "annotation_key": "note", "annotation_value": "x\ny",
              "inject": "enabled"}
    for source, target in PAIRS:
        values["inject"] = "true" if source == "consul" else "enabled"
        plan = plan_objects(document(source, values), source, target).plan
        words = [w for c in commands_of(plan) for w in tokens(c)]
        assert "shop" in words and any(w.endswith("/web") for w in words), (source, target)
        assert not plan.input_problems, (source, target)


# -- the pieces ------------------------------------------------------------------------------
def test_render_is_shlex_join_per_argv_with_the_note_last():
    command = pipe(("kubectl", "get", "pods", "-n", "a b"), ("grep", "x'y"),
                   note="expect\nnothing")
    assert render(command) == "kubectl get pods -n 'a b' | grep 'x'\"'\"'y'  # expect\\nnothing"
    assert shlex.split(render(command), comments=True) == tokens(command) == [
        "kubectl", "get", "pods", "-n", "a b", PIPE, "grep", "x'y"]
    assert render(run("kubectl", "apply", "-k", "steps/01-move")) == \
        "kubectl apply -k steps/01-move"
    with pytest.raises(ValueError):
        Command(())


def test_a_json_body_is_one_word_with_every_control_character_escaped():
    body = json_arg({"k": "a'b\n\u2028c"})
    assert body == '{"k":"a\'b\\n\\u2028c"}'
    assert shlex.split(render(run("kubectl", "patch", "-p", body)))[-1] == body


def test_visible_escapes_every_character_that_breaks_or_hides_a_line():
    assert visible("a\nb\rc\td\x00e\x1bf\x85g\u2028h\u2029i\u202ej") == \
        "a\\nb\\rc\\td\\x00e\\x1bf\\x85g\\u2028h\\u2029i\\u202ej"
    assert visible("plain `text` é 名") == "plain `text` é 名"


def test_a_code_span_survives_backticks_in_its_text():
    from migrate.emit.runbook import _code

    assert _code("kubectl get pods") == "`kubectl get pods`"
    assert _code("echo `id`") == "`` echo `id` ``"
    assert _code("a``b") == "```a``b```"
    assert _code("`x") == "`` `x ``" and _code(" a ") == "`  a  `"
    assert _code("a\nb") == "`a\\nb`"


def test_names_the_api_server_refuses_are_found():
    assert valid_qualified_name("linkerd.io/inject") and valid_qualified_name("app")
    assert not valid_qualified_name("a/b/c") and not valid_qualified_name("/x")
    assert not valid_qualified_name("x" * 64) and not valid_qualified_name("a b")
    assert valid_label_value("") and valid_label_value("v1.2_3-x")
    assert not valid_label_value("`touch marker`") and not valid_label_value("-a")
    assert metadata_problems("Namespace", "v1", {"name": "$(touch marker)"}, False) == [
        ("metadata.name", "'$(touch marker)' is not a DNS-1123 label")]
    assert metadata_problems("Service", "v1", {"name": "1web"}, True) == [
        ("metadata.name", "'1web' is not a DNS-1035 label")]
    long_subdomain = ".".join(["a" * 63] * 3) + "." + "b" * 61  # 253 characters
    assert metadata_problems("Deployment", "apps/v1", {"name": long_subdomain}, True) == []
    assert [f for f, _ in metadata_problems(
        "Deployment", "apps/v1", {"name": "web", "namespace": "a.b",
                                  "labels": {"ok": "fine", "k": "a b"},
                                  "annotations": {"Any.Case/Key": "any value at all\n",
                                                  "bad key": "v"}}, True)] == [
        "metadata.namespace", "metadata.annotations", "metadata.labels[k]"]


# -- the examples, run through bash ---------------------------------------------------
@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A working directory with stub binaries for every tool a plan calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in STUBS:
        stub = bin_dir / tool
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "work").mkdir()
    return tmp_path


def run_everything(plan: Plan, sandbox: Path) -> list[str]:
    """Run every command of the plan with bash in the sandbox; the texts run."""
    env = {"PATH": f"{sandbox / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin",
           "HOME": str(sandbox)}
    ran = []
    for command in commands_of(plan):
        text = render(command)
        subprocess.run(["bash", "-c", text], cwd=sandbox / "work", env=env,
                       capture_output=True, timeout=30, check=False)
        ran.append(text)
    return ran


def no_marker(sandbox: Path) -> bool:
    return not any(p.name.startswith("marker") for p in sandbox.rglob("*"))


SERVICE = """
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 8080}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata:
      labels: {{app: web}}
      annotations: {annotations}
    spec: {{containers: [{{name: web, image: web}}]}}
"""


def linkerd_shop(inject: str) -> str:
    """Namespace ``shop`` annotated ``linkerd.io/inject: <inject>`` (a YAML double-quoted
    scalar), with a meshed Deployment and its Service."""
    return f"""
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  annotations:
    linkerd.io/inject: "{inject}"
---""" + SERVICE.format(ns="shop", annotations="{linkerd.io/inject: enabled}")


def test_an_inject_annotation_value_does_not_run_at_rollback(sandbox: Path):
    plan = plan_yaml(linkerd_shop("enabled --overwrite; touch marker; echo"), "linkerd",
                     "istio").plan
    move = next(s for s in plan.steps if s.kind == "move")
    rejoin = next(c for c in move.rollback if isinstance(c, Command)
                  and "linkerd.io/inject=enabled --overwrite; touch marker; echo" in tokens(c))
    assert render(rejoin) == ("kubectl annotate namespace shop "
                              "'linkerd.io/inject=enabled --overwrite; touch marker; echo' "
                              "--overwrite")
    assert any("touch marker" in line for line in run_everything(plan, sandbox))
    assert no_marker(sandbox)


def test_a_value_closing_the_patch_quotes_does_not_run(sandbox: Path):
    value = "true'; touch marker; echo '"
    text = SERVICE.format(ns="shop", annotations=json.dumps(
        {"consul.hashicorp.com/connect-inject": value})) + """
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceIntentions
metadata: {name: web, namespace: shop}
spec:
  destination: {name: web}
  sources: [{name: api, action: allow}]
"""
    # Helm's connectInject.default meshes the pod (the value is no "true" consul-k8s parses),
    # so the move's rollback restores the annotation as it was.
    plan = plan_yaml(text, "consul", "linkerd", consul_inject_default=True).plan
    move = next(s for s in plan.steps if s.kind == "move")
    [rejoin] = [c for c in move.rollback if isinstance(c, Command)
                and c.pipeline[0][:2] == ("kubectl", "patch") and "--type=merge" in tokens(c)]
    body = json.loads(rejoin.pipeline[0][-1])
    assert body["spec"]["template"]["metadata"]["annotations"] == {
        "consul.hashicorp.com/connect-inject": value}
    run_everything(plan, sandbox)
    assert no_marker(sandbox)


def test_a_namespace_named_with_a_command_substitution_is_refused(sandbox: Path):
    ns = "$(touch marker)"
    text = f"""
apiVersion: v1
kind: Namespace
metadata:
  name: "{ns}"
  labels: {{istio-injection: enabled}}
---""" + SERVICE.format(ns=json.dumps(ns), annotations="{}") + f"""
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: "{ns}"}}
spec: {{mtls: {{mode: STRICT}}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: other, labels: {{istio-injection: enabled}}}}
---""" + SERVICE.format(ns="other", annotations="{}")
    plan = plan_yaml(text, "istio", "linkerd").plan
    refused = [p for p in plan.input_problems if ns in p]
    assert len(refused) == 4 and all("not planned" in p for p in refused), plan.input_problems
    assert any("Namespace $(touch marker): metadata.name" in p for p in refused)
    assert [s.namespaces for s in plan.steps if s.kind == "move"] == [["other"]]
    assert not [c for c in commands_of(plan) if ns in render(c)]
    run_everything(plan, sandbox)
    assert no_marker(sandbox)


def test_a_label_value_with_backticks_is_refused(sandbox: Path):
    text = """
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {istio.io/rev: "`touch marker`"}
---""" + SERVICE.format(ns="shop", annotations="{}") + """
---
apiVersion: v1
kind: Namespace
metadata: {name: other, labels: {istio-injection: enabled}}
"""
    result = plan_yaml(text, "istio", "linkerd")
    [problem] = result.plan.input_problems
    assert "Namespace shop: metadata.labels[istio.io/rev]: '`touch marker`' is not a label " \
        "value" in problem
    assert not [c for c in commands_of(result.plan) if "`" in render(c)]
    run_everything(result.plan, sandbox)
    assert no_marker(sandbox)


def test_a_line_break_in_a_value_shows_escaped_in_the_runbook(tmp_path: Path):
    plan = plan_yaml(linkerd_shop("enabled\\n1. `kubectl delete namespace kube-system`"),
                     "linkerd", "istio").plan
    runbook = render_runbook(plan)
    assert "\n1. `kubectl delete namespace kube-system`" not in runbook
    [line] = [x for x in runbook.split("\n") if "linkerd.io/inject=enabled\\n1." in x]
    assert line.startswith("1. ``kubectl annotate namespace shop 'linkerd.io/inject=enabled\\n")
    assert line.endswith("(control characters shown escaped: plan.json has the exact argv)")
    assert_commands_round_trip(plan)
    # plan.json keeps the exact value; written a command at a time, it is dump_plan's bytes.
    write_plan(plan, tmp_path / "plan.json")
    assert (tmp_path / "plan.json").read_bytes() == dump_plan(plan).encode("utf-8")
    rollback = [c for s in json.loads(dump_plan(plan))["steps"] for c in s["rollback"]]
    assert ["kubectl", "annotate", "namespace", "shop",
            "linkerd.io/inject=enabled\n1. `kubectl delete namespace kube-system`",
            "--overwrite"] in [c["argv"][0] for c in rollback if "argv" in c]


def test_no_code_writes_a_command_line_as_text():
    """Commands are built as argv (``run``/``pipe``), never as a string such as
    ``"kubectl delete ..."`` or ``f"kubectl annotate {ns} ..."``: a string or f-string that
    starts like a command line is shell text built outside :func:`render`."""
    # "kubectl meshmigrate" is this program's own name as a kubectl plugin, not a command.
    starts = re.compile(r"^(kubectl|istioctl|linkerd|helm) (?!meshmigrate\b)\S")
    found = []
    for path in sorted((Path(__file__).parent.parent / "migrate").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            text = node.value if isinstance(node, ast.Constant) else \
                node.values[0].value if isinstance(node, ast.JoinedStr) and node.values and \
                isinstance(node.values[0], ast.Constant) else None
            if isinstance(text, str) and starts.match(text):
                found.append(f"{path.name}:{node.lineno}: {text[:40]}")
    assert not found


def test_a_rollback_step_that_is_not_a_command_is_text_in_both_files():
    plan = plan_migration(PlanOptions("istio", "linkerd", [str(SAMPLES / "istio" / "shop")],
                                      verify=False)).plan
    ingress = next(s for s in plan.steps if s.kind == "ingress")
    assert ingress.rollback[-1] == "Point DNS back at the Istio ingress gateway."
    [entry] = [s for s in json.loads(dump_plan(plan))["steps"] if s["kind"] == "ingress"]
    assert entry["rollback"][-1] == {"manual": "Point DNS back at the Istio ingress gateway."}
    assert entry["commands"][0]["note"] == "once DNS points at the new ingress"
    assert "\n1. Point DNS back at the Istio ingress gateway.\n" in render_runbook(plan)


@settings(max_examples=300, deadline=None)
@given(argv=st.lists(st.one_of(_ANY, _VALID_NAME, st.sampled_from(["a b", "", "-", "x y z"])),
                     min_size=1, max_size=5))
def test_render_writes_what_shlex_join_writes(argv: list[str]):
    if "" in argv:  # an empty word is refused when the command is built (issue 22)
        with pytest.raises(ValueError, match="empty word"):
            run(*argv)
        return
    assert render(run(*argv)) == shlex.join(argv)
    assert render(pipe(argv, ["grep", *argv])) == \
        f"{shlex.join(argv)} | {shlex.join(['grep', *argv])}"
