"""Reading a Linkerd or a Consul cluster, against the local API server of tests/fakeapi.

For each source mesh other than Istio: the plan from the cluster equals the plan from the same
objects given as a dump, only GETs are sent and Secrets are never read, ``rbac`` prints that
mesh's API groups, and ``--from auto`` detects the mesh from what the cluster serves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from migrate.cli import main
from tests.conftest import SAMPLES
from tests.fakeapi.kubeconfig import write_kubeconfig
from tests.fakeapi.server import FakeAPIServer, State, new_state
from tests.helpers import without_read_places

SECRET_DATA = "c2VjcmV0LXZhbHVl"


def crd_documents(paths: list[Path]) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition document in these files."""
    return [d for p in paths for d in yaml.safe_load_all(p.read_text())
            if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"]


@pytest.fixture(scope="module")
def mesh_crds(shared: Path) -> dict[str, list[dict[str, Any]]]:
    """The official CRDs each source mesh installs (Linkerd's bundle carries Gateway API)."""
    linkerd = shared / "crds" / "linkerd" / "edge-26.8.3" / "rendered" / \
        "install_crds_with_gateway_api.golden.yaml"
    consul = sorted((shared / "crds" / "consul").glob("consul.hashicorp.com_*.yaml"))
    return {"linkerd": crd_documents([linkerd]), "consul": crd_documents(consul)}


def sample_objects(mesh: str) -> list[dict[str, Any]]:
    """The items of samples/<mesh>/shop/dump.yaml."""
    return yaml.safe_load((SAMPLES / mesh / "shop" / "dump.yaml").read_text())["items"]


def cluster_state(crds: list[dict[str, Any]], objects: list[dict[str, Any]]) -> State:
    """A cluster serving these CRDs and objects, plus one Secret that must never be read."""
    state = new_state()
    state.load_crds(crds)
    state.add(objects)
    state.add([{"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "db-password", "namespace": "orders"},
                "data": {"password": SECRET_DATA}}])
    return state


def run(*args: str):
    """Invoke the CLI in-process."""
    return CliRunner().invoke(main, list(args))


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root, by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


PAIRS = [("linkerd", "istio"), ("consul", "linkerd")]


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_cluster_plan_equals_dump_plan_and_is_read_only(tmp_path: Path, mesh_crds,
                                                        source: str, target: str):
    objects = sample_objects(source)
    state = cluster_state(mesh_crds[source], objects)
    with FakeAPIServer(state) as server:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, state.token)
        live = run("plan", "--from", source, "--to", target, "--kubeconfig", str(kubeconfig),
                   "-o", str(tmp_path / "cluster"))
        assert live.exit_code == 0, live.stderr
    dump = tmp_path / "dump.yaml"
    dump.write_text(yaml.safe_dump_all(objects))
    offline = run("plan", "--from", source, "--to", target, "-f", str(dump), "-o",
                  str(tmp_path / "dump"))
    assert offline.exit_code == 0, offline.stderr
    # The same findings, word for word (only the output folder named in the last lines differs).
    assert live.stderr.replace(str(tmp_path / "cluster"), "OUT") == \
        offline.stderr.replace(str(tmp_path / "dump"), "OUT")
    assert without_read_places(tree(tmp_path / "cluster")) == \
        without_read_places(tree(tmp_path / "dump"))
    assert {r.method for r in state.log} == {"GET"}
    assert not any("secrets" in r.path for r in state.log)
    # The mesh's own kinds were listed from the cluster, not only the core ones.
    group = {"linkerd": "/apis/policy.linkerd.io/", "consul": "/apis/consul.hashicorp.com/"}
    assert any(r.path.startswith(group[source]) and "limit" in r.query for r in state.log)
    assert all(SECRET_DATA.encode() not in data for data in tree(tmp_path / "cluster").values())


@pytest.mark.parametrize("source", ["linkerd", "consul"])
def test_export_from_the_cluster_plans_like_the_cluster(tmp_path: Path, mesh_crds, source: str):
    state = cluster_state(mesh_crds[source], sample_objects(source))
    with FakeAPIServer(state) as server:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, state.token)
        exported = run("export", "--from", source, "--kubeconfig", str(kubeconfig), "-o",
                       str(tmp_path / "export.yaml"))
        assert exported.exit_code == 0, exported.stderr
        live = run("plan", "--from", source, "--to", "istio", "--kubeconfig", str(kubeconfig),
                   "-o", str(tmp_path / "live"))
        assert live.exit_code == 0, live.stderr
    text = (tmp_path / "export.yaml").read_text()
    assert "kind: Secret" not in text and "resourceVersion" not in text
    offline = run("plan", "--from", source, "--to", "istio", "-f",
                  str(tmp_path / "export.yaml"), "-o", str(tmp_path / "offline"))
    assert offline.exit_code == 0, offline.stderr
    assert without_read_places(tree(tmp_path / "offline")) == \
        without_read_places(tree(tmp_path / "live"))


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_auto_detects_the_mesh_the_cluster_serves(tmp_path: Path, mesh_crds, source: str,
                                                  target: str):
    state = cluster_state(mesh_crds[source], sample_objects(source))
    with FakeAPIServer(state) as server:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, state.token)
        auto = run("plan", "--from", "auto", "--to", target, "--kubeconfig", str(kubeconfig),
                   "-o", str(tmp_path / "auto"))
        named = run("plan", "--from", source, "--to", target, "--kubeconfig",
                    str(kubeconfig), "-o", str(tmp_path / "named"))
    assert auto.exit_code == 0, auto.stderr
    assert named.exit_code == 0, named.stderr
    assert f"detected {source} in the cluster" in auto.stderr
    assert tree(tmp_path / "auto") == tree(tmp_path / "named")


@pytest.mark.parametrize(("source", "groups", "resource"), [
    ("linkerd", {"policy.linkerd.io", "linkerd.io", "gateway.networking.k8s.io"},
     ("policy.linkerd.io", "authorizationpolicies")),
    ("consul", {"consul.hashicorp.com"}, ("consul.hashicorp.com", "serviceintentions")),
])
def test_rbac_prints_the_groups_of_that_mesh(source: str, groups: set[str],
                                             resource: tuple[str, str]):
    result = run("rbac", "--from", source)
    assert result.exit_code == 0, result.stderr
    role = yaml.safe_load(result.stdout)
    assert role["kind"] == "ClusterRole"
    assert {v for rule in role["rules"] for v in rule["verbs"]} == {"get", "list"}
    served = {g for rule in role["rules"] for g in rule["apiGroups"]}
    assert groups <= served
    assert "networking.istio.io" not in served
    resources = {(g, r) for rule in role["rules"] for g in rule["apiGroups"]
                 for r in rule["resources"]}
    assert resource in resources
    assert not any(r == "secrets" for _, r in resources)


@pytest.mark.parametrize("source", ["linkerd", "consul"])
def test_a_cluster_without_the_mesh_exits_7_naming_its_groups(tmp_path: Path, source: str):
    state = new_state()
    with FakeAPIServer(state) as server:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, state.token)
        result = run("plan", "--from", source, "--to", "istio", "--kubeconfig", str(kubeconfig),
                     "-o", str(tmp_path / "o"))
    group = {"linkerd": "policy.linkerd.io", "consul": "consul.hashicorp.com"}[source]
    assert result.exit_code == 7, result.stderr
    assert group in result.stderr


def test_verify_reads_the_cluster_with_the_settings_plan_used(tmp_path: Path, mesh_crds):
    # Planned with a non-default install setting: verify must evaluate the source with the same
    # setting (with Consul's default, deny, every call allow-by-default admitted would diverge).
    state = cluster_state(mesh_crds["consul"], sample_objects("consul"))
    with FakeAPIServer(state) as server:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, state.token)
        cluster = ("--kubeconfig", str(kubeconfig))
        planned = run("plan", "--from", "consul", "--to", "istio", *cluster, "-o",
                      str(tmp_path / "out"), "--consul-default-intention", "allow", "-q")
        assert planned.exit_code == 0, planned.stderr
        same = run("verify", "--from", "consul", *cluster, "--plan", str(tmp_path / "out"),
                   "--consul-default-intention", "allow", "-q")
        other = run("verify", "--from", "consul", *cluster, "--plan", str(tmp_path / "out"),
                    "-q")
    assert planned.stderr.splitlines()[-1] == \
        "meshmigrate: equivalence: " + same.stdout.strip()
    assert same.exit_code == 0, same.stdout
    assert other.exit_code == 3 and " 0 unexplained" not in other.stdout


def _config_map(namespace: str, name: str, key: str, value: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace}, "data": {key: value}}


def test_a_cluster_read_takes_the_install_settings_from_the_linkerd_config(
        tmp_path: Path, mesh_crds):
    """The settings a dump's linkerd-config gives come from the cluster's too: the ConfigMap
    is fetched by name (never listed), and the plan says where each value came from."""
    state = cluster_state(mesh_crds["linkerd"], sample_objects("linkerd"))
    state.add([_config_map("linkerd", "linkerd-config", "values",
                           "identityTrustDomain: corp.example\n"
                           "proxy: {defaultInboundPolicy: cluster-authenticated}\n"),
               _config_map("orders", "app-settings", "secretish", "not-for-us")])
    with FakeAPIServer(state) as server:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, state.token)
        result = run("plan", "--from", "linkerd", "--to", "istio", "--kubeconfig",
                     str(kubeconfig), "-o", str(tmp_path / "out"), "--no-verify")
    assert result.exit_code == 0, result.stderr
    settings = {s["name"]: s for s in
                json.loads((tmp_path / "out" / "plan.json").read_text())["source"]["settings"]}
    assert settings["trust_domain"]["value"] == "corp.example"
    assert "ConfigMap linkerd/linkerd-config data.values.identityTrustDomain" in \
        settings["trust_domain"]["from"]
    assert settings["linkerd_default_policy"]["value"] == "cluster-authenticated"
    configmap_requests = [r.path for r in state.log if "configmaps" in r.path]
    assert configmap_requests == ["/api/v1/namespaces/linkerd/configmaps/linkerd-config"]


def test_a_refused_install_configmap_is_a_manual_loss_not_a_silent_default(
        tmp_path: Path, mesh_crds):
    state = cluster_state(mesh_crds["linkerd"], sample_objects("linkerd"))
    state.forbidden.add("configmaps/linkerd/linkerd-config")
    with FakeAPIServer(state) as server:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, state.token)
        result = run("plan", "--from", "linkerd", "--to", "istio", "--kubeconfig",
                     str(kubeconfig), "-o", str(tmp_path / "out"), "--no-verify")
    assert result.exit_code == 0, result.stderr
    losses = json.loads((tmp_path / "out" / "plan.json").read_text())["losses"]
    [refused] = [x for x in losses if x["code"] == "CLUSTER_FORBIDDEN"]
    assert refused["severity"] == "manual"
    assert "cannot get ConfigMap linkerd/linkerd-config (403 Forbidden)" in refused["message"]


def test_rbac_grants_the_install_configmaps_by_name_only():
    role = yaml.safe_load(run("rbac", "--from", "linkerd").output)
    [rule] = [r for r in role["rules"] if "configmaps" in r["resources"]]
    assert rule == {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
                    "resourceNames": ["linkerd-config"]}
