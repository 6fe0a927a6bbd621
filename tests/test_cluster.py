"""Reading a live cluster, against a local API server that speaks the Kubernetes REST protocol
(tests/fakeapi), driven by the real ``kubernetes`` client through a real kubeconfig file."""

from __future__ import annotations

import math
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from migrate.cli import main
from tests.benchmarks.synth import generate
from tests.conftest import SAMPLES
from tests.fakeapi.kubeconfig import write_kubeconfig
from tests.fakeapi.server import FakeAPIServer, State, new_state
from tests.fakeapi.tls import make_certs
from tests.helpers import without_read_places


def sample_objects() -> list[dict[str, Any]]:
    docs = [d for p in sorted((SAMPLES / "istio" / "bookinfo").glob("*.yaml"))
            for d in yaml.safe_load_all(p.read_text()) if d]
    docs += yaml.safe_load((SAMPLES / "istio" / "shop" / "dump.yaml").read_text())["items"]
    return docs


@pytest.fixture(scope="module")
def istio_crds(shared: Path) -> list[dict[str, Any]]:
    path = shared / "crds" / "istio" / "1.30.3" / "crd-all.gen.yaml"
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def cluster_state(crds: list[dict[str, Any]], objects: list[dict[str, Any]]) -> State:
    state = new_state()
    state.load_crds(crds)
    state.add(objects)
    state.add([{"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "db-password", "namespace": "orders"},
                "data": {"password": "c2VjcmV0LXZhbHVl"}}])
    return state


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def plan_args(kubeconfig: Path, out: Path, *extra: str) -> list[str]:
    return ["plan", "--from", "istio", "--to", "linkerd", "--kubeconfig", str(kubeconfig),
            "-o", str(out), *extra]


def test_cluster_plan_equals_dump_plan_and_is_read_only(tmp_path: Path, istio_crds):
    objects = sample_objects()
    state = cluster_state(istio_crds, objects)
    with FakeAPIServer(state) as server:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, state.token)
        from_cluster = run(*plan_args(kubeconfig, tmp_path / "cluster"))
        assert from_cluster.exit_code == 0, from_cluster.stderr
    dump = tmp_path / "dump.yaml"
    dump.write_text(yaml.safe_dump_all(objects))
    from_dump = run("plan", "--from", "istio", "--to", "linkerd", "-f", str(dump), "-o",
                    str(tmp_path / "dump"))
    assert from_dump.exit_code == 0, from_dump.stderr
    assert without_read_places(tree(tmp_path / "cluster")) == \
        without_read_places(tree(tmp_path / "dump"))
    assert {r.method for r in state.log} == {"GET"}
    assert not any("secrets" in r.path for r in state.log)
    for out in (tmp_path / "cluster", tmp_path / "dump"):
        assert all(b"c2VjcmV0LXZhbHVl" not in data for data in tree(out).values())


def test_export_then_plan_offline_equals_cluster_plan(tmp_path: Path, istio_crds):
    state = cluster_state(istio_crds, sample_objects())
    with FakeAPIServer(state) as server:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, state.token)
        exported = run("export", "--from", "istio", "--kubeconfig", str(kubeconfig), "-o",
                       str(tmp_path / "export.yaml"))
        assert exported.exit_code == 0, exported.stderr
        live = run(*plan_args(kubeconfig, tmp_path / "live"))
        assert live.exit_code == 0
    text = (tmp_path / "export.yaml").read_text()
    assert "managedFields" not in text and "resourceVersion" not in text
    assert "kind: Secret" not in text
    offline = run("plan", "--from", "istio", "--to", "linkerd", "-f",
                  str(tmp_path / "export.yaml"), "-o", str(tmp_path / "offline"))
    assert offline.exit_code == 0
    assert without_read_places(tree(tmp_path / "offline")) == \
        without_read_places(tree(tmp_path / "live"))


def test_twenty_thousand_objects_take_discovery_plus_one_request_per_page(tmp_path: Path,
                                                                          istio_crds):
    objects = generate(namespaces=72, services=40)[:20_000]
    assert len(objects) == 20_000
    state = new_state()
    state.load_crds(istio_crds)
    state.add(objects)
    with FakeAPIServer(state) as server:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, state.token)
        result = run("export", "--from", "istio", "--kubeconfig", str(kubeconfig), "-o",
                     str(tmp_path / "big.yaml"))
        assert result.exit_code == 0, result.stderr
    lists = [r for r in state.log if "limit" in r.query]
    discovery = [r for r in state.log if "limit" not in r.query]
    # Discovery: the group list, the core resources, and one document per served group
    # version the reader needs (networking.istio.io twice more, for the kinds that are served
    # only at v1alpha3 and v1beta1), and the GET of the mesh config ConfigMap by name.
    assert sorted(r.path for r in discovery) == sorted([
        "/apis", "/api/v1", "/apis/apps/v1", "/apis/batch/v1",
        "/api/v1/namespaces/istio-system/configmaps/istio",
        "/apis/extensions.istio.io/v1alpha1", "/apis/networking.istio.io/v1",
        "/apis/networking.istio.io/v1alpha3", "/apis/networking.istio.io/v1beta1",
        "/apis/security.istio.io/v1", "/apis/telemetry.istio.io/v1"])
    per_kind: dict[str, int] = {}
    for r in lists:
        per_kind[r.path] = per_kind.get(r.path, 0) + 1
    counts: dict[str, int] = {}
    for o in objects:
        counts[o["kind"]] = counts.get(o["kind"], 0) + 1
    plural = {"Namespace": "/api/v1/namespaces", "ServiceAccount": "/api/v1/serviceaccounts",
              "Service": "/api/v1/services", "Deployment": "/apis/apps/v1/deployments",
              "DestinationRule": "/apis/networking.istio.io/v1/destinationrules",
              "VirtualService": "/apis/networking.istio.io/v1/virtualservices",
              "AuthorizationPolicy": "/apis/security.istio.io/v1/authorizationpolicies",
              "PeerAuthentication": "/apis/security.istio.io/v1/peerauthentications"}
    for kind, path in plural.items():
        assert per_kind.pop(path) == math.ceil(counts[kind] / 500), kind
    assert set(per_kind.values()) == {1}  # every other kind: one (empty) page
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    exported = yaml.load_all((tmp_path / "big.yaml").read_text(), Loader=loader)
    assert sum(1 for _ in exported) == 20_000


def test_forbidden_kind_is_a_loss_and_the_plan_goes_on(tmp_path: Path, istio_crds):
    state = cluster_state(istio_crds, sample_objects())
    state.forbidden.add("peerauthentications.security.istio.io")
    with FakeAPIServer(state) as server:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, state.token)
        result = run(*plan_args(kubeconfig, tmp_path / "out"))
    assert result.exit_code == 0, result.stderr
    assert "CLUSTER_FORBIDDEN" in result.stderr
    assert "peerauthentications.security.istio.io (403 Forbidden)" in result.stderr
    plan = (tmp_path / "out" / "plan.json").read_text()
    assert '"resources [\\"peerauthentications\\"]' not in plan
    assert 'apiGroups [\\"security.istio.io\\"], resources [\\"peerauthentications\\"]' in plan
    assert "virtualservice" in plan  # everything else was planned


def test_expired_continue_token_restarts_the_list_and_says_so(tmp_path: Path, istio_crds):
    objects = generate(namespaces=30, services=20)  # more than one page of Deployments
    state = new_state()
    state.load_crds(istio_crds)
    state.add(objects)
    state.expire_once.add("deployments.apps")
    with FakeAPIServer(state) as server:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, state.token)
        result = run("export", "--from", "istio", "--kubeconfig", str(kubeconfig), "-o",
                     str(tmp_path / "dump.yaml"))
    assert result.exit_code == 0, result.stderr
    assert "continue token for deployments.apps expired (410)" in result.stderr
    exported = list(yaml.safe_load_all((tmp_path / "dump.yaml").read_text()))
    assert sum(1 for d in exported if d["kind"] == "Deployment") == \
        sum(1 for d in objects if d["kind"] == "Deployment")


def test_namespace_filter_keeps_one_list_per_kind(tmp_path: Path, istio_crds):
    state = cluster_state(istio_crds, sample_objects())
    with FakeAPIServer(state) as server:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, state.token)
        result = run(*plan_args(kubeconfig, tmp_path / "out", "-n", "orders", "-n", "payments"))
    assert result.exit_code == 0, result.stderr
    # One cluster-wide LIST per kind (LISTs carry a limit); only the mesh config ConfigMap
    # is fetched by namespace and name.
    assert not any("/namespaces/" in r.path for r in state.log if "limit" in r.query)
    assert [r.path for r in state.log if "/namespaces/" in r.path] == \
        ["/api/v1/namespaces/istio-system/configmaps/istio"]
    plan = (tmp_path / "out" / "plan.json").read_text()
    assert '"orders"' in plan and '"catalog"' not in plan.split('"losses"')[0]


def test_https_with_a_self_signed_ca_and_auto_detection(tmp_path: Path, istio_crds):
    certs = make_certs(tmp_path)
    state = cluster_state(istio_crds, sample_objects())
    with FakeAPIServer(state, tls=(str(certs["cert"]), str(certs["key"]))) as server:
        good = write_kubeconfig(tmp_path / "good", server.url, state.token, ca=certs["ca"])
        result = run("plan", "--from", "auto", "--to", "linkerd", "--kubeconfig", str(good),
                     "-o", str(tmp_path / "out"))
        assert result.exit_code == 0, result.stderr
        assert "detected istio in the cluster" in result.stderr
        other = tmp_path / "other"
        other.mkdir()
        untrusted = write_kubeconfig(tmp_path / "bad", server.url, state.token,
                                     ca=make_certs(other)["ca"])
        tls = run(*plan_args(untrusted, tmp_path / "out2"))
    assert tls.exit_code == 5 and "TLS verification failed" in tls.stderr


def test_validate_with_cluster_reads_the_installed_target_crds(tmp_path: Path, istio_crds,
                                                               shared: Path):
    linkerd = shared / "crds" / "linkerd" / "edge-26.8.3" / "rendered" / \
        "install_crds_with_gateway_api.golden.yaml"
    state = cluster_state(istio_crds, sample_objects())
    state.load_crds(yaml.safe_load_all(linkerd.read_text()))
    with FakeAPIServer(state) as server:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, state.token)
        result = run(*plan_args(kubeconfig, tmp_path / "out", "--validate-with", "cluster"))
    assert result.exit_code == 0, result.stderr
    assert any(r.path.endswith("/customresourcedefinitions") for r in state.log)
    assert {r.method for r in state.log} == {"GET"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_each_cluster_error_has_a_message_and_an_exit_code(tmp_path: Path, istio_crds,
                                                           monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    missing = run("plan", "--from", "istio", "--to", "linkerd", "-o", str(tmp_path / "o"))
    assert missing.exit_code == 5 and "no kubeconfig" in missing.stderr

    refused = write_kubeconfig(tmp_path / "refused", f"http://127.0.0.1:{free_port()}", "t")
    result = run(*plan_args(refused, tmp_path / "o"))
    assert result.exit_code == 5 and "cannot connect" in result.stderr

    context = run(*plan_args(refused, tmp_path / "o", "--context", "prod"))
    assert context.exit_code == 5 and "context 'prod' is not in" in context.stderr

    state = cluster_state(istio_crds, [])
    with FakeAPIServer(state) as server:
        expired = write_kubeconfig(tmp_path / "expired", server.url, "stale-token")
        result = run(*plan_args(expired, tmp_path / "o"))
        assert result.exit_code == 6 and "401 Unauthorized" in result.stderr
    no_mesh = new_state()
    with FakeAPIServer(no_mesh) as server:
        kubeconfig = write_kubeconfig(tmp_path / "plain", server.url, no_mesh.token)
        result = run(*plan_args(kubeconfig, tmp_path / "o"))
        assert result.exit_code == 7 and "networking.istio.io" in result.stderr
    stalled = new_state()
    stalled.stall = True
    with FakeAPIServer(stalled) as server:
        kubeconfig = write_kubeconfig(tmp_path / "slow", server.url, stalled.token)
        result = run(*plan_args(kubeconfig, tmp_path / "o", "--request-timeout", "0.5"))
        assert result.exit_code == 5 and "timed out" in result.stderr
    for r in (missing, context):
        assert "Traceback" not in r.stderr


def test_rbac_prints_a_read_only_cluster_role_without_secrets():
    result = run("rbac", "--from", "istio")
    assert result.exit_code == 0
    role = yaml.safe_load(result.stdout)
    assert role["kind"] == "ClusterRole"
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs == {"get", "list"}
    resources = {(rule["apiGroups"][0], r) for rule in role["rules"] for r in rule["resources"]}
    assert ("networking.istio.io", "virtualservices") in resources
    assert ("security.istio.io", "authorizationpolicies") in resources
    assert ("networking.istio.io", "envoyfilters") in resources
    assert not any(r == "secrets" for _, r in resources)


def test_progress_line_on_a_terminal_only(capsys):
    from migrate.cli import Progress

    quiet = Progress(enabled=False)
    quiet("virtualservices.networking.istio.io", 500)
    quiet.done()
    assert capsys.readouterr().err == ""
    shown = Progress(enabled=True)
    shown("virtualservices.networking.istio.io", 500)
    shown("services", 20)
    shown.done()
    err = capsys.readouterr().err
    assert "reading: 500 objects (virtualservices.networking.istio.io 500)" in err
    # done() erases the line, so the next message starts on a clean one.
    assert "reading: 520 objects (services 20)" in err and err.endswith("\r" + " " * 110 + "\r")


def test_auto_detection_from_files_says_what_it_saw(tmp_path: Path):
    result = run("plan", "--from", "auto", "--to", "linkerd", "-f",
                 str(SAMPLES / "istio" / "bookinfo"), "-o", str(tmp_path))
    assert result.exit_code == 0
    assert "detected istio in the files (API groups networking.istio.io, security.istio.io; " \
           "injection labels on 1 namespace(s))" in result.stderr
