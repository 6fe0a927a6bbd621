"""Hostile input, for every source mesh and every target, through the command line: each
item gives a clear message (file, line and column where there is one), exit code 1 or a
loss, never a traceback, and every other document is still planned.

The base input of each source mesh is its ``samples/<mesh>/shop`` dump; the hostile documents
are appended to it. "Still planned" means: every manifest the clean dump plans is planned,
unchanged, from the damaged input too.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from migrate.cli import main
from migrate.errors import UsageError
from migrate.pipeline import PlanOptions, PlanResult, plan_migration
from migrate.yamlio import dump_document
from tests.conftest import SAMPLES

MESHES = ("istio", "linkerd", "consul")
PAIRS = [(s, t) for s in MESHES for t in MESHES if s != t]

# Per source mesh: an object of a known kind under an apiVersion that does not exist, and
# objects of known kinds with wrong types in their fields (a string where a list belongs, a
# mapping where a list belongs, a number where a name belongs).
UNKNOWN_VERSION = {
    "istio": ("networking.istio.io/v9", "VirtualService", {"hosts": ["x"]}),
    "linkerd": ("policy.linkerd.io/v9", "Server", {"port": 80}),
    "consul": ("consul.hashicorp.com/v9", "ServiceRouter", {"routes": []}),
}
WRONG_TYPES = {
    "istio": [
        ("networking.istio.io/v1", "VirtualService", "vs-string-list",
         {"hosts": "web", "http": 5}),
        ("networking.istio.io/v1", "VirtualService", "vs-number-host",
         {"hosts": ["web"], "http": [{"route": [{"destination": {"host": 7}}]}]}),
        ("security.istio.io/v1", "AuthorizationPolicy", "ap-map-rules",
         {"rules": {"from": 1}, "action": ["ALLOW"]}),
    ],
    "linkerd": [
        ("policy.linkerd.io/v1beta3", "Server", "srv-bad",
         {"podSelector": 5, "port": [1]}),
        ("gateway.networking.k8s.io/v1", "HTTPRoute", "route-string-list",
         {"parentRefs": "web", "rules": 3}),
        ("gateway.networking.k8s.io/v1", "HTTPRoute", "route-number-name",
         {"parentRefs": [{"group": "core", "kind": "Service", "name": 7, "port": 80}],
          "rules": [{"backendRefs": [{"name": 8, "port": 80}]}]}),
    ],
    "consul": [
        ("consul.hashicorp.com/v1alpha1", "ServiceRouter", "router-string-list",
         {"routes": "web"}),
        ("consul.hashicorp.com/v1alpha1", "ServiceSplitter", "splitter-bad",
         {"splits": [{"weight": "abc", "service": 3}]}),
        ("consul.hashicorp.com/v1alpha1", "ServiceIntentions", "intentions-bad",
         {"destination": 5, "sources": {"a": 1}}),
    ],
}
HOSTILE_NS = "hostile"


def sample(mesh: str) -> str:
    return (SAMPLES / mesh / "shop" / "dump.yaml").read_text()


def doc(api: str, kind: str, name: Any, spec: dict[str, Any], ns: str = HOSTILE_NS) -> str:
    return "---\n" + yaml.safe_dump({"apiVersion": api, "kind": kind,
                                     "metadata": {"name": name, "namespace": ns},
                                     "spec": spec}, sort_keys=False)


def cli(tmp_path: Path, source: str, target: str, *files: Path,
        tag: str = "") -> tuple[Result, dict, str]:
    """Run ``plan``; the result, plan.json, and every byte of output (files and streams)."""
    out = tmp_path / f"out-{source}-{target}{tag}"
    args = ["plan", "--from", source, "--to", target, "-o", str(out)]
    for f in files:
        args += ["-f", str(f)]
    result = CliRunner().invoke(main, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    assert "Traceback" not in result.stderr + result.stdout
    plan = json.loads((out / "plan.json").read_text())
    everything = result.stdout + result.stderr + "".join(
        p.read_text(errors="replace") for p in sorted(out.rglob("*")) if p.is_file())
    return result, plan, everything


def manifests(result: PlanResult) -> set[str]:
    return {dump_document(m.body) for s in result.plan.steps for m in s.manifests}


_CLEAN: dict[tuple[str, str], set[str]] = {}


def clean_manifests(source: str, target: str) -> set[str]:
    if (source, target) not in _CLEAN:
        _CLEAN[source, target] = manifests(plan_migration(PlanOptions(
            source, target, [str(SAMPLES / source / "shop")])))
    return _CLEAN[source, target]


def assert_rest_planned(source: str, target: str, path: Path) -> None:
    """Every manifest of the clean sample's plan is planned from the damaged input too."""
    damaged = manifests(plan_migration(PlanOptions(source, target, [str(path)])))
    missing = clean_manifests(source, target) - damaged
    assert not missing, sorted(missing)[:1]


def errors(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_malformed_yaml_and_non_utf8_point_at_line_and_column(tmp_path: Path, source: str,
                                                              target: str):
    good = sample(source)
    first_bad = good.count("\n") + 3  # "---", then "kind: ok", then the broken line
    broken = tmp_path / "broken.yaml"
    broken.write_text(good + "---\nkind: ok\nspec: [unclosed, {\n")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a\xff}\n---\n"
                       + good.encode())
    result, _, _ = cli(tmp_path, source, target, broken, binary)
    assert result.exit_code == 1
    messages = errors(result)
    # The C and pure-Python parsers disagree by a line on where an unclosed flow ends:
    # either way it is at or after the line that opens it, with a column.
    [malformed] = [m for m in messages if "malformed YAML" in m]
    line, column = malformed.split(f"{broken}:")[1].split(":")[:2]
    assert int(line) >= first_bad and column.strip().isdigit()
    assert any(f"{binary}:3:19: not UTF-8 text (byte 0xff)" in m for m in messages), messages
    assert_rest_planned(source, target, broken)
    assert_rest_planned(source, target, binary)


@pytest.mark.parametrize("source", MESHES)
def test_alias_bomb_refused_and_other_documents_planned(tmp_path: Path, source: str):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        bomb += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]\n"
    path = tmp_path / "bomb.yaml"
    text = sample(source) + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\n" \
        "data:\n" + "".join("  " + line + "\n" for line in bomb.splitlines())
    path.write_text(text)
    target = "istio" if source != "istio" else "linkerd"
    result, _, _ = cli(tmp_path, source, target, path)
    assert result.exit_code == 1
    start = sample(source).count("\n") + 2
    assert any(f"{path}:{start}:" in e and "alias bomb" in e for e in errors(result))
    assert_rest_planned(source, target, path)


def test_a_100_mb_document_is_refused_with_bounded_memory(tmp_path: Path):
    """A 100 MB document cannot be a Kubernetes object (the API server takes 3 MiB): it is
    refused before it is parsed. Run in a child process to read its peak memory."""
    big = tmp_path / "big.yaml"
    row = "  k%07d: " + "x" * 90 + "\n"
    with big.open("w") as f:
        f.write(sample("istio") + "---\napiVersion: v1\nkind: ConfigMap\n"
                "metadata: {name: big, namespace: shop}\ndata:\n")
        f.writelines(row % i for i in range(1_050_000))
    assert big.stat().st_size > 100 * 1024 * 1024
    line = sample("istio").count("\n") + 2
    script = (
        "import resource, sys\n"
        "from click.testing import CliRunner\n"
        "from migrate.cli import main\n"
        f"r = CliRunner().invoke(main, ['plan', '--from', 'istio', '--to', 'linkerd', '-f', "
        f"{str(big)!r}, '-o', {str(tmp_path / 'out')!r}])\n"
        "print(r.exit_code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        "print(r.stderr)\n")
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True)
    head, _, stderr = child.stdout.partition("\n")
    code, peak_kib = map(int, head.split())
    assert code == 1
    assert f"{big}:{line}: document of 10" in stderr and "MiB is larger than any" in stderr
    assert "Traceback" not in stderr + child.stderr
    # Parsing it used to take ~1.4 GB; refusing it costs a few copies of the text.
    assert peak_kib < 700 * 1024, peak_kib
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    # The shop dump next to it is planned: catalog's routing and authorization moved.
    assert any(m.startswith("steps/") and "catalog" in m
               for s in plan["steps"] for m in s["manifests"])


@pytest.mark.parametrize("source", MESHES)
@pytest.mark.parametrize("as_json", [False, True])
def test_an_object_over_the_kubernetes_size_limit_is_refused(tmp_path: Path, source: str,
                                                             as_json: bool):
    big = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big", "namespace": "x"},
           "data": {f"k{i}": "y" * 100 for i in range(40_000)}}  # ~4.3 MB
    if as_json:
        path = tmp_path / "big.json"
        path.write_text(json.dumps(big))
        other = tmp_path / "shop.yaml"
        other.write_text(sample(source))
        files = [path, other]
    else:
        path = tmp_path / "big.yaml"
        path.write_text(sample(source) + "---\n" + yaml.safe_dump(big))
        files = [path]
    target = "consul" if source != "consul" else "linkerd"
    result, _, _ = cli(tmp_path, source, target, *files)
    assert result.exit_code == 1
    assert any(f"{path}:" in e and "larger than any Kubernetes object" in e
               for e in errors(result)), errors(result)
    assert_rest_planned(source, target, files[-1] if as_json else path)


def test_a_big_kind_list_dump_is_still_read(tmp_path: Path):
    """Only a single object is bounded by the API server's limit: a ``kubectl get -o yaml``
    List of many objects is not one object and is read whatever its size."""
    items = yaml.safe_load(sample("istio"))["items"]
    filler = [{"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": f"cm-{i}", "namespace": "shop"},
               "data": {"k": "v" * 1000}} for i in range(4000)]
    path = tmp_path / "dump.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List",
                                    "items": items + filler}))
    assert path.stat().st_size > 4 * 1024 * 1024
    result, _, _ = cli(tmp_path, "istio", "linkerd", path)
    assert result.exit_code == 0 and errors(result) == []
    assert_rest_planned("istio", "linkerd", path)


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_wrong_types_become_losses_and_the_rest_is_planned(tmp_path: Path, source: str,
                                                          target: str):
    path = tmp_path / "in.yaml"
    path.write_text(sample(source) + "".join(doc(api, kind, name, spec)
                                             for api, kind, name, spec in WRONG_TYPES[source]))
    result, plan, _ = cli(tmp_path, source, target, path)
    assert result.exit_code == 0, result.stderr
    invalid = {x["object"]["name"] for x in plan["losses"] if x["code"] == "FIELD_INVALID"
               and x["object"]["namespace"] == HOSTILE_NS}
    # Every damaged object is reported at the damaged field.
    assert invalid == {name for _, _, name, _ in WRONG_TYPES[source]}, invalid
    assert_rest_planned(source, target, path)


@pytest.mark.parametrize("source", MESHES)
def test_unknown_api_version_and_number_names_are_input_errors(tmp_path: Path, source: str):
    api, kind, spec = UNKNOWN_VERSION[source]
    path = tmp_path / "in.yaml"
    line = sample(source).count("\n") + 2
    path.write_text(sample(source) + doc(api, kind, "x", spec)
                    + doc(api.rsplit("/", 1)[0] + "/v1", kind, 12, spec))
    target = "istio" if source != "istio" else "consul"
    result, _, _ = cli(tmp_path, source, target, path)
    assert result.exit_code == 1
    messages = errors(result)
    assert any(f"{path}:{line}:" in e and f"unknown apiVersion {api}" in e for e in messages)
    # Reported once, not once per parsing pass.
    assert sum("metadata.name must be a non-empty string (a number 12)" in e
               for e in messages) == 1, messages
    assert_rest_planned(source, target, path)


@pytest.mark.parametrize("source", MESHES)
def test_duplicate_objects_are_reported_and_the_last_one_planned(tmp_path: Path, source: str):
    items = yaml.safe_load(sample(source))["items"]
    first = next(o for o in items if o["apiVersion"] != "v1" and o["kind"] != "Deployment"
                 and "apps" not in o["apiVersion"])
    changed = json.loads(json.dumps(first))
    changed["metadata"]["labels"] = {"edited": "twice"}
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(sample(source))
    b.write_text(yaml.safe_dump(changed))
    target = "linkerd" if source != "linkerd" else "consul"
    result, plan, _ = cli(tmp_path, source, target, a, b)
    assert result.exit_code == 0
    [dup] = [x for x in plan["losses"] if x["code"] == "INPUT_DUPLICATE"]
    assert dup["object"]["name"] == first["metadata"]["name"]
    assert "a.yaml" in dup["message"] and dup["message"].endswith("b.yaml")
    # An identical copy is no conflict.
    c = tmp_path / "c.yaml"
    c.write_text(yaml.safe_dump(first))
    _, plan, _ = cli(tmp_path, source, target, a, c, tag="-same")
    assert all(x["code"] != "INPUT_DUPLICATE" for x in plan["losses"])


SECRET_VALUES = ("c3VwZXItc2VjcmV0LXRva2Vu", "super-secret-token", "hunter2-plain")


def secrets() -> str:
    """Secrets in every shape a dump carries them: data, stringData, a List item, and a
    damaged one (bad name type, unknown apiVersion)."""
    token, _, plain = SECRET_VALUES
    return (
        "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s1, namespace: catalog}\n"
        f"type: Opaque\ndata: {{token: {token}}}\nstringData: {{plain: {plain}}}\n"
        "---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n"
        f"  metadata: {{name: s2, namespace: orders}}\n  data: {{token: {token}}}\n"
        f"---\napiVersion: v2\nkind: Secret\nmetadata: {{name: s3}}\ndata: {{t: {token}}}\n"
        f"---\napiVersion: v1\nkind: Secret\nmetadata: {{name: 5}}\ndata: {{t: {token}}}\n")


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_secret_data_never_appears_in_any_output(tmp_path: Path, source: str, target: str):
    path = tmp_path / "in.yaml"
    path.write_text(sample(source) + secrets())
    result, plan, everything = cli(tmp_path, source, target, path)
    assert result.exit_code == 1  # the nameless Secret is an input error
    for value in SECRET_VALUES:
        assert value not in everything
    assert {k: n for k, n in plan["summary"]["skipped_kinds"].items() if k.endswith("/Secret")} == \
        {"v1/Secret": 2, "v2/Secret": 1}


@pytest.mark.parametrize("source", MESHES)
def test_documents_that_are_not_objects_are_reported(tmp_path: Path, source: str):
    path = tmp_path / "in.yaml"
    path.write_text(sample(source) + "---\n- a\n- list\n---\njust a string\n---\n"
                    "apiVersion: v1\nkind: List\nitems: {not: a list}\n---\n"
                    "apiVersion: 5\nkind: Service\nmetadata: {name: s}\n---\n"
                    "kind: Service\nmetadata: {name: s, namespace: [a]}\napiVersion: v1\n")
    target = "istio" if source != "istio" else "linkerd"
    result, _, _ = cli(tmp_path, source, target, path)
    assert result.exit_code == 1
    text = "\n".join(errors(result))
    for expected in ("found a list", "found a string", "has no apiVersion or kind",
                     "metadata.namespace must be a string"):
        assert expected in text, (expected, text)
    assert_rest_planned(source, target, path)


def test_stdin_with_hostile_bytes_never_crashes():
    data = b"\x00\x01\x02---\n\xff\xfe\x00---\n: : :\n---\n{[}]\n"
    # Nothing readable is left, so nothing shows Istio: refused, with the documents'
    # problems named, rather than a plan that uninstalls a mesh it never read.
    with pytest.raises(UsageError, match=r"no istio configuration.*could not be read: <stdin>"):
        plan_migration(PlanOptions("istio", "linkerd", ["-"], stdin=io.BytesIO(data)))
    garbage_then_mesh = data + b"\n---\n" + sample("istio").encode()
    result = plan_migration(PlanOptions("istio", "linkerd", ["-"],
                                        stdin=io.BytesIO(garbage_then_mesh)))
    assert result.problems and result.plan.steps[-1].kind == "cleanup"


LONG_NS = "n" * 58 + "-"  # + "0001": 63 characters
LONG_SVC = "s" * 54 + "-"  # + "000-0001": 63 characters
SCHEMA_FILES = ("linkerd/edge-26.8.3/rendered/install_crds.golden.yaml",
                "gateway-api/v1.6.1/experimental", "istio/1.30.3/crd-all.gen.yaml", "consul")


@pytest.fixture(scope="module")
def schemas(shared: Path):
    from migrate.validate import SchemaSet

    return SchemaSet.from_paths([str(shared / "crds" / f) for f in SCHEMA_FILES])


@pytest.mark.parametrize(("source", "target", "routes"),
                         [(s, t, "virtualservice") for s, t in PAIRS]
                         + [(s, "istio", "gateway-api") for s in ("linkerd", "consul")])
def test_generated_names_from_63_character_names_stay_valid_and_unique(
        schemas: Any, source: str, target: str, routes: str):
    """Every writer's derived names (per-subset Services, split routes, companion policies,
    Servers, authentications, ...) from 63-character namespaces and Services: valid DNS
    labels, no two objects of one step share a name, and every manifest passes its CRD."""
    from migrate.emit.manifests import annotated, file_name
    from migrate.names import valid_name
    from migrate.validate import validate_manifest
    from tests.benchmarks.synth import as_yaml, generate

    objects = generate(3, 2, mesh=source, ns_prefix=LONG_NS, svc_prefix=LONG_SVC, unique=True)
    assert {len(o["metadata"]["name"]) for o in objects if o["kind"] == "Service"} >= {63}
    result = plan_migration(PlanOptions(source, target, ["-"], istio_routes=routes,
                                        stdin=io.BytesIO(as_yaml(objects).encode())))
    assert result.problems == []
    given = {o["metadata"]["name"] for o in objects}
    derived = []
    for step in result.plan.steps:
        seen: set[tuple[str, str, str, str]] = set()
        for m in step.manifests:
            meta = m.body["metadata"]
            key = (m.body["apiVersion"].split("/")[0], m.kind, meta.get("namespace", ""),
                   meta["name"])
            assert key not in seen, f"{step.id}: two objects named {key}"
            seen.add(key)
            assert valid_name(meta["name"], service=m.kind == "Service"), meta["name"]
            assert validate_manifest(annotated(m), file_name(m.body), schemas) == []
            if meta["name"] not in given:
                derived.append(meta["name"])
    # The writers did derive names from the long ones (all checked <= 63 above).
    assert derived and max(len(n) for n in derived) >= 60
    assert result.plan.equivalence is not None and result.plan.equivalence.unexplained == []
