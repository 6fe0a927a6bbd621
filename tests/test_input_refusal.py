"""A plan is refused, never written, when its file input shows nothing of the source mesh:
such a plan would still end in uninstalling that mesh and deleting its CRDs (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from migrate.cli import main
from tests.conftest import SAMPLES

MESHES = ("istio", "linkerd", "consul")


def plan(*args: str):
    return CliRunner().invoke(main, ["plan", *args])


def test_an_empty_folder_is_refused_and_nothing_is_written(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    result = plan("--from", "istio", "--to", "linkerd", "-f", str(empty), "-o", str(out))
    assert result.exit_code == 2, result.stderr
    assert "no istio configuration in the input" in result.stderr
    assert "the input holds no objects" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (out / "RUNBOOK.md").exists() and not (out / "plan.json").exists()


@pytest.mark.parametrize("source,wrong", [(s, w) for s in MESHES for w in MESHES if s != w])
def test_another_meshs_dump_is_refused_with_the_mesh_it_holds(tmp_path: Path, source: str,
                                                              wrong: str):
    target = next(m for m in MESHES if m != wrong)
    result = plan("--from", wrong, "--to", target, "-f", str(SAMPLES / source / "shop"),
                  "-o", str(tmp_path / "out"))
    assert result.exit_code == 2, result.stderr
    assert f"no {wrong} configuration in the input" in result.stderr
    assert f"Did you mean --from {source}?" in result.stderr
    assert "uninstall" not in result.stdout


def test_the_refusal_names_the_unsupported_meshes_found(tmp_path: Path):
    dump = tmp_path / "dump.yaml"
    dump.write_text(
        "apiVersion: kuma.io/v1alpha1\nkind: MeshTrafficPermission\n"
        "metadata: {name: allow, namespace: kuma-system}\nspec: {}\n---\n"
        "apiVersion: appmesh.k8s.aws/v1beta2\nkind: VirtualNode\n"
        "metadata: {name: web, namespace: shop}\nspec: {}\n")
    result = plan("--from", "istio", "--to", "linkerd", "-f", str(dump), "-o",
                  str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "appmesh.k8s.aws (1 object, AWS App Mesh)" in result.stderr
    assert "kuma.io (1 object, Kuma / Kong Mesh)" in result.stderr
    assert "Supported sources are consul, istio, linkerd" in result.stderr


@pytest.mark.parametrize("source,marker", [
    ("istio", "apiVersion: v1\nkind: Namespace\nmetadata: {name: web, labels: "
              "{istio-injection: enabled}}\n"),
    ("linkerd", "apiVersion: v1\nkind: Namespace\nmetadata: {name: web, annotations: "
                "{linkerd.io/inject: enabled}}\n"),
    ("consul", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: web}\n"
               "spec: {template: {metadata: {annotations: {consul.hashicorp.com/connect-inject: "
               "'true'}}, spec: {containers: [{name: web, image: web}]}}}\n"),
])
def test_injection_alone_is_evidence_of_the_mesh(tmp_path: Path, source: str, marker: str):
    dump = tmp_path / "dump.yaml"
    dump.write_text(marker)
    target = "istio" if source != "istio" else "linkerd"
    result = plan("--from", source, "--to", target, "-f", str(dump), "-o", str(tmp_path / "o"))
    assert result.exit_code == 0, result.stderr


def test_consul_inject_default_alone_is_not_evidence(tmp_path: Path):
    """consul-k8s has no namespace label: with --consul-inject-default every namespace of an
    unrelated dump would look injected, so namespaces do not count as Consul evidence."""
    dump = tmp_path / "dump.yaml"
    dump.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n")
    result = plan("--from", "consul", "--to", "istio", "--consul-inject-default", "-f",
                  str(dump), "-o", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "no consul configuration" in result.stderr
