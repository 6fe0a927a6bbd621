"""The step folders' file layout (issue 23): two objects never share a path, whatever
their names, and the files written are exactly those plan.json lists.

Before: ``<kind>.<group>-<namespace>-<name>.yaml`` put ``a``/``b-web`` and ``a-b``/``web`` in
one file (a namespace silently lost its Server, HTTPRoute and MeshTLSAuthentication), and a
253-character name aborted the write with "File name too long".
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate.cli import main
from migrate.dialects.base import Manifest
from migrate.emit.manifests import (
    CLUSTER_FOLDER,
    MAX_FILE_NAME,
    annotated,
    file_name,
    manifest_file_name,
    object_path,
    source_file_name,
    step_files,
    write_steps,
)
from migrate.emit.planjson import plan_document
from migrate.sources.model import RawObject
from tests.conftest import SAMPLES
from tests.helpers import plan_yaml

# Two namespaces that call each other (so they move in one step), each with a Service, an
# ALLOW policy and a VirtualService: `a`/`b-web` and `a-b`/`web`, the issue's pair.
COLLIDING = """
apiVersion: v1
kind: Namespace
metadata: {name: a, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: a-b, labels: {istio-injection: enabled}}
""" + "".join(f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec: {{selector: {{app: web}}, ports: [{{name: http, port: 80}}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      serviceAccountName: web
      containers:
      - {{name: web, image: web, ports: [{{containerPort: 80}}],
          env: [{{name: UP, value: "http://{calls}.svc.cluster.local"}}]}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  action: ALLOW
  rules: [{{from: [{{source: {{principals: [cluster.local/ns/x/sa/y]}}}}]}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {ns}}}
spec: {{hosts: [{name}], http: [{{timeout: 3s, route: [{{destination: {{host: {name}}}}}]}}]}}
""" for ns, name, calls in (("a", "b-web", "web.a-b"), ("a-b", "web", "b-web.a")))


def plan_to(tmp_path: Path, source: str, target: str, path: str) -> Path:
    out = tmp_path / f"{source}-{target}"
    result = CliRunner().invoke(main, ["plan", "--from", source, "--to", target, "-f", path,
                                       "-o", str(out), "-q"])
    assert result.exit_code in (0, 1), result.stderr  # 1: an input problem, still planned
    assert "internal error" not in result.stderr
    return out


def assert_files_are_those_listed(out: Path) -> int:
    """Files on disk == plan.json's lists == the kustomizations' resources; returns how many."""
    document = json.loads((out / "plan.json").read_text())
    listed = [p for s in document["steps"] for p in s["manifests"] + s["rollback_manifests"]]
    assert len(listed) == len(set(listed))
    on_disk = {p.relative_to(out).as_posix() for p in (out / "steps").rglob("*")
               if p.is_file() and p.name != "kustomization.yaml"}
    assert on_disk == set(listed)
    for step in document["steps"]:
        folder = out / "steps" / step["id"]
        main_list = yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
        assert [f"steps/{step['id']}/{r}" for r in main_list] == step["manifests"]
        if step["rollback_manifests"]:
            back = yaml.safe_load((folder / "rollback" / "kustomization.yaml").read_text())
            assert [f"steps/{step['id']}/rollback/{r}" for r in back["resources"]] == \
                step["rollback_manifests"]
        else:
            assert not (folder / "rollback").exists()
    for path in listed:  # every part of every path fits any file system
        assert all(0 < len(part.encode()) <= MAX_FILE_NAME for part in path.split("/"))
    return len(listed)


def test_the_issues_colliding_pair_gives_one_file_per_object(tmp_path: Path):
    path = tmp_path / "in.yaml"
    path.write_text(COLLIDING)
    out = plan_to(tmp_path, "istio", "linkerd", str(path))
    assert_files_are_those_listed(out)
    result = plan_yaml(COLLIDING)
    move = next(s for s in result.plan.steps if s.kind == "move")
    assert move.namespaces == ["a", "a-b"]  # one step holds both namespaces
    for step in result.plan.steps:
        identities = {(m.api_version.rpartition("/")[0], m.kind, m.namespace, m.name)
                      for m in step.manifests}
        folder = out / "steps" / step.id
        files = [p for p in folder.rglob("*.yaml")
                 if p.name != "kustomization.yaml" and "rollback" not in p.parts]
        assert len(files) == len(identities), step.id  # nothing lost to a shared name
    for kind in ("server", "meshtlsauthentication", "httproute"):
        found = sorted(p.relative_to(out / "steps" / move.id).as_posix()
                       for p in (out / "steps" / move.id).glob(
                           f"*/{kind}.policy.linkerd.io_*"))
        assert sorted(f.split("/")[0] for f in found) == ["a", "a-b"], found
    cleanup = out / "steps" / result.plan.steps[-1].id
    assert sorted(p.relative_to(cleanup).as_posix()
                  for p in cleanup.glob("*/httproute.gateway.networking.k8s.io_*")) == \
        sorted(["a/httproute.gateway.networking.k8s.io_b-web.yaml",
                "a-b/httproute.gateway.networking.k8s.io_web.yaml"])


def test_every_sample_writes_exactly_the_files_plan_json_lists(tmp_path: Path):
    count = 0
    for source, target in (("istio", "linkerd"), ("istio", "consul"), ("linkerd", "istio"),
                           ("consul", "linkerd")):
        for sample in sorted((SAMPLES / source).iterdir()):
            if sample.is_dir():
                count += assert_files_are_those_listed(
                    plan_to(tmp_path / sample.name, source, target, str(sample)))
    assert count > 100


def test_each_file_holds_the_manifest_plan_json_names_it_for(tmp_path: Path):
    out = plan_to(tmp_path, "istio", "linkerd", str(SAMPLES / "istio" / "shop"))
    result = plan_yaml((SAMPLES / "istio" / "shop" / "dump.yaml").read_text())
    for step in result.plan.steps:
        for name, body in step_files(step).items():
            written = yaml.safe_load((out / "steps" / step.id / name).read_text())
            assert written == body
        for m in step.manifests:
            assert yaml.safe_load((out / "steps" / step.id / manifest_file_name(m)).read_text()) \
                == annotated(m)


# Kubernetes names, from a small alphabet so that names run into each other often: DNS
# labels for namespaces, DNS subdomains (up to 253 characters) for names, groups as the API
# server takes them, and kinds that differ in case and length.
END = st.sampled_from("ab0")
LABEL = st.one_of(END, st.tuples(END, st.text("ab0-", max_size=10), END).map("".join))
SUBDOMAIN = st.lists(LABEL, min_size=1, max_size=4).map(".".join)
LONG = st.tuples(SUBDOMAIN, st.integers(60, 252), st.sampled_from("ab0")).map(
    lambda t: (t[0] + "-" + t[2] * t[1])[-253:])
NAMES = st.one_of(SUBDOMAIN, LONG)
GROUPS = st.sampled_from(["", "apps", "policy.linkerd.io", "policy.linkerd.io.x",
                          "linkerd.io", "split.smi-spec.io", "split.smi", "a-b.io", "a.b-io"])
KINDS = st.sampled_from(["Server", "HTTPRoute", "Service", "Namespace", "Route", "HTTP",
                         "B-web", "B"])
IDENTITY = st.tuples(GROUPS, KINDS, st.one_of(st.just(""), LABEL), NAMES)


def path_of(identity: tuple[str, str, str, str], version: str = "v1") -> str:
    group, kind, namespace, name = identity
    return object_path(f"{group}/{version}" if group else version, kind, namespace, name)


@settings(max_examples=400, deadline=None)
@given(st.lists(IDENTITY, min_size=2, max_size=12, unique_by=lambda i: (i[0], i[1].lower(),
                                                                         i[2], i[3])))
def test_distinct_objects_never_share_a_path(identities):
    paths = [path_of(i) for i in identities]
    assert len(set(paths)) == len(paths), list(zip(identities, paths))
    # Lowercase ASCII only: distinct on file systems that fold case or normalize Unicode.
    assert all(p.isascii() and p == p.lower() for p in paths)
    assert all(len(part.encode()) <= MAX_FILE_NAME for p in paths for part in p.split("/"))


@settings(max_examples=300, deadline=None)
@given(st.tuples(st.text(max_size=6), st.text(max_size=6), st.text(), st.text()),
       st.tuples(st.text(max_size=6), st.text(max_size=6), st.text(), st.text()))
def test_any_strings_give_a_safe_path_and_distinct_ones_distinct_paths(a, b):
    """What the reader lets through is its business; the writer never crashes on a name,
    and never makes a path that leaves the step folder."""
    pa, pb = path_of(a), path_of(b)
    for p in (pa, pb):
        folder, _, name = p.partition("/")
        assert "/" not in name and "\0" not in p and p.isascii()
        assert folder not in ("", ".", "..", "rollback") and name.endswith(".yaml")
        assert len(folder.encode()) <= MAX_FILE_NAME and len(name.encode()) <= MAX_FILE_NAME
    if (a[0], a[1].lower(), a[2], a[3]) != (b[0], b[1].lower(), b[2], b[3]):
        assert pa != pb


def test_the_version_is_no_part_of_an_object_and_case_is_folded():
    identity = ("policy.linkerd.io", "Server", "a", "b-web")
    assert path_of(identity, "v1beta1") == path_of(identity, "v1beta3") == \
        "a/server.policy.linkerd.io_b-web.yaml"
    assert path_of(("", "Namespace", "", "a")) == f"{CLUSTER_FOLDER}/namespace_a.yaml"


def test_names_too_long_or_not_kubernetes_names_get_a_digest_form():
    long = ".".join(["a" * 63] * 3) + "." + "b" * 61  # 253 characters, a DNS subdomain
    assert len(long) == 253
    path = path_of(("security.istio.io", "AuthorizationPolicy", "shop", long))
    folder, name = path.split("/")
    assert folder == "shop" and len(name) == MAX_FILE_NAME
    assert name.startswith("authorizationpolicy.security.istio.io_aaaa") and "+" in name
    # One character more or less is another file.
    assert path != path_of(("security.istio.io", "AuthorizationPolicy", "shop", long[:-1]))
    for odd in ("a\0b", "..", ".", "a/b", "A", "é", "x" * 5000, "", "\ud800"):
        assert "+" in path_of(("", "Service", "shop", odd)).split("/")[1]
    # A namespace named like the rollback copies' folder gets a folder of its own.
    assert path_of(("", "Service", "rollback", "web")).startswith("rollback+")
    assert path_of(("", "Service", "Shop", "web")).startswith("shop+")


def test_the_three_public_names_agree():
    body = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "x" * 200, "namespace": "shop"}, "spec": {}}
    raw = RawObject(body, "in.yaml", 1)
    m = Manifest(body, (raw.ref,))
    assert file_name(body) == manifest_file_name(m) == source_file_name(m) == \
        source_file_name(raw)


def test_long_and_odd_valid_names_plan_and_write(tmp_path: Path):
    long = ".".join(["p" * 63] * 3) + "." + "q" * 61
    policy = "{name: %s, namespace: %s}\nspec:\n  selector: {matchLabels: {app: web}}\n  action"
    text = COLLIDING.replace(policy % ("b-web", "a"), policy % (long, "a"))
    text = text.replace(policy % ("web", "a-b"), policy % ("0.0-9", "a-b"))
    assert long in text and "0.0-9" in text
    path = tmp_path / "in.yaml"
    path.write_text(text)
    out = plan_to(tmp_path, "istio", "linkerd", str(path))
    assert_files_are_those_listed(out)
    copies = {yaml.safe_load(p.read_text())["metadata"]["name"]
              for p in (out / "steps").glob("*/rollback/*/authorizationpolicy.security.*")}
    assert copies == {long, "0.0-9"}


def test_the_writer_takes_any_name_the_reader_lets_through(tmp_path: Path):
    result = plan_yaml(COLLIDING)
    step = result.plan.steps[1]
    odd = ["a\0b", "..", "a/../../b", "x" * 300, "Web", "web", "é"]
    for name in odd:
        step.manifests.append(Manifest({"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": name, "namespace": ".."}}, ()))
    write_steps(result.plan, tmp_path)
    folder = tmp_path / "steps" / step.id
    written = [p for p in folder.rglob("configmap_*.yaml")]
    assert len(written) == len(odd)
    assert all(p.resolve().is_relative_to(folder.resolve()) for p in written)
    assert {yaml.safe_load(p.read_text())["metadata"]["name"] for p in written} == set(odd)
    document = plan_document(result.plan)
    listed = {p for s in document["steps"] for p in s["manifests"] + s["rollback_manifests"]}
    assert {p.relative_to(tmp_path).as_posix() for p in (tmp_path / "steps").rglob("*.yaml")
            if p.name != "kustomization.yaml"} == listed
