"""Every exit code the README documents, produced by a real run: one test per code. The
cluster codes use the local fake API server (tests/fakeapi), so nothing leaves the machine."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from migrate.cli import main
from migrate.errors import ExitStatus
from tests.conftest import REPO, SAMPLES
from tests.fakeapi.kubeconfig import write_kubeconfig
from tests.fakeapi.server import FakeAPIServer, new_state
from tests.test_report import _CRD

# An Istio-injected namespace: input without a trace of the source mesh is refused (exit 2).
SERVICE = ("apiVersion: v1\nkind: Namespace\nmetadata: {name: x, labels: {istio-injection: "
           "enabled}}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: x}\n"
           "spec: {ports: [{port: 80}]}\n")


def run(*args: str) -> int:
    return CliRunner().invoke(main, list(args)).exit_code


def plan(tmp_path: Path, *extra: str, source: str | None = None) -> int:
    src = tmp_path / "in.yaml"
    if source is not None:
        src.write_text(source)
    files = ["-f", str(src)] if source is not None else []
    return run("plan", "--from", "istio", "--to", "linkerd", *files, "-o",
               str(tmp_path / "out"), *extra)


def test_readme_documents_exactly_the_exit_statuses():
    readme = (REPO / "README.md").read_text()
    table = readme.split("### Exit codes", 1)[1].split("\n## ", 1)[0]
    codes = [int(c) for c in re.findall(r"^\| (\d) \|", table, re.M)]
    assert codes == [int(s) for s in ExitStatus]


def test_0_plan_written(tmp_path: Path):
    assert plan(tmp_path, source=SERVICE) == ExitStatus.OK == 0


def test_1_bad_input(tmp_path: Path):
    assert plan(tmp_path, source=SERVICE + "---\nkind: [unclosed\n") == ExitStatus.ERROR == 1
    assert (tmp_path / "out" / "plan.json").exists()  # everything else was planned


def test_2_usage_error(tmp_path: Path):
    assert run("plan", "--from", "istio", "--to", "istio", "-f", str(SAMPLES / "istio" / "shop"),
               "-o", str(tmp_path / "o")) == ExitStatus.USAGE == 2
    assert run("plan", "--from", "istio") == 2


def test_3_losses_at_fail_on(tmp_path: Path):
    assert run("plan", "--from", "istio", "--to", "linkerd", "-f", str(SAMPLES / "istio" / "shop"),
               "-o", str(tmp_path / "out"), "--fail-on", "manual") == ExitStatus.LOSSES == 3


def test_4_invalid_manifests(tmp_path: Path):
    # A Server CRD whose schema every emitted Server breaks.
    crd = tmp_path / "server-crd.yaml"
    crd.write_text("""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servers.policy.linkerd.io}
spec:
  group: policy.linkerd.io
  names: {kind: Server, plural: servers}
  scope: Namespaced
  versions:
  - name: v1beta3
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, required: [mustExist]}
""")
    assert run("plan", "--from", "istio", "--to", "linkerd", "-f", str(SAMPLES / "istio" / "shop"),
               "-o", str(tmp_path / "out"), "--validate-with", str(crd)) == ExitStatus.INVALID == 4


def test_5_cluster_unreachable(tmp_path: Path):
    assert plan(tmp_path, "--kubeconfig", str(tmp_path / "none")) == ExitStatus.UNREACHABLE == 5


def test_6_credentials_rejected(tmp_path: Path):
    state = new_state()
    state.load_crds([_CRD])
    with FakeAPIServer(state) as server:
        stale = write_kubeconfig(tmp_path / "kubeconfig", server.url, "stale-token")
        assert plan(tmp_path, "--kubeconfig", str(stale)) == ExitStatus.UNAUTHORIZED == 6


def test_7_mesh_not_installed(tmp_path: Path):
    state = new_state()  # serves no Istio API group
    with FakeAPIServer(state) as server:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, state.token)
        assert plan(tmp_path, "--kubeconfig", str(kubeconfig)) == ExitStatus.NO_MESH == 7
