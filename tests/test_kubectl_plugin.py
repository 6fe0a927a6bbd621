"""`kubectl meshmigrate`: the kubectl-meshmigrate console script and the krew manifest."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from migrate import __version__
from tests.conftest import REPO

BIN = Path(sys.executable).parent


def test_kubectl_meshmigrate_is_an_installed_console_script():
    [script] = [e for e in entry_points(group="console_scripts")
                if e.name == "kubectl-meshmigrate"]
    assert script.value == "migrate.cli:kubectl_run"
    assert (BIN / "kubectl-meshmigrate").exists(), "pip install -e . installs the script"


def test_its_usage_and_help_say_kubectl_meshmigrate():
    script = str(BIN / "kubectl-meshmigrate")
    top = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert top.returncode == 0 and top.stdout.startswith("Usage: kubectl meshmigrate [OPTIONS]")
    plan = subprocess.run([script, "plan", "--help"], capture_output=True, text=True, timeout=60)
    assert plan.stdout.startswith("Usage: kubectl meshmigrate plan [OPTIONS]")
    assert "Example: kubectl meshmigrate plan --from istio" in plan.stdout
    assert "kubectl kubectl" not in plan.stdout
    wrong = subprocess.run([script, "plan", "--from", "istio"], capture_output=True, text=True,
                           timeout=60)
    assert wrong.returncode == 2
    assert "Try 'kubectl meshmigrate plan --help' for help." in wrong.stderr
    # The plain command is unchanged.
    plain = subprocess.run([str(BIN / "meshmigrate"), "plan", "--help"], capture_output=True,
                           text=True, timeout=60)
    assert plain.stdout.startswith("Usage: meshmigrate plan [OPTIONS]")
    assert "kubectl" not in plain.stdout.replace("kubectl get", "")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_finds_and_runs_the_plugin(tmp_path: Path):
    # kubectl discovers plugins on PATH without a cluster; HOME apart so no config is read.
    env = {**os.environ, "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
           "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none")}
    done = subprocess.run(["kubectl", "meshmigrate", "meshes"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("consul     source, target")


def test_krew_manifest_names_the_plugin_and_its_launcher():
    path = REPO / "docs" / "krew" / "meshmigrate.yaml"
    manifest = yaml.safe_load(path.read_text())
    assert manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert manifest["kind"] == "Plugin"
    # krew: the manifest file is named after the plugin, and the version is v + semver.
    assert manifest["metadata"]["name"] == path.stem == "meshmigrate"
    assert manifest["spec"]["version"] == f"v{__version__}"
    for platform in manifest["spec"]["platforms"]:
        shipped = {f["from"] for f in platform["files"]}
        assert shipped == {"kubectl-meshmigrate", "LICENSE"}
        assert platform["bin"] == "kubectl-meshmigrate"
        assert len(platform["sha256"]) == 64
    launcher = REPO / "docs" / "krew" / "kubectl-meshmigrate"
    assert os.access(launcher, os.X_OK)
    text = launcher.read_text()
    assert f"version={__version__}\n" in text and "kubectl-meshmigrate \"$@\"" in text
