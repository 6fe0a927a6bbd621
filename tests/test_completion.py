"""Shell completion through click's completion protocol (the environment the generated
scripts set: COMP_WORDS, COMP_CWORD and _MESHMIGRATE_COMPLETE), and kubectl's for the plugin."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from migrate import mappings
from migrate.cli import main


def complete(line: str, **env: str) -> list[str]:
    """What bash completion offers for ``line`` (the last word is the one being typed)."""
    words = line.split(" ")
    result = CliRunner().invoke(main, [], prog_name="meshmigrate", env={
        "_MESHMIGRATE_COMPLETE": "bash_complete", "COMP_WORDS": line,
        "COMP_CWORD": str(len(words) - 1), **env})
    assert result.exit_code == 0, result.output
    return [row.split(",", 1)[1] for row in result.stdout.splitlines() if row]


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "prod",
        # The server does not exist: completion must never contact it.
        "clusters": [{"name": "c", "cluster": {"server": "https://192.0.2.1:6443"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [
            {"name": "prod", "context": {"cluster": "c", "user": "u", "namespace": "shop"}},
            {"name": "staging", "context": {"cluster": "c", "user": "u",
                                            "namespace": "payments"}},
            {"name": "dev", "context": {"cluster": "c", "user": "u"}}]}))
    return path


def test_from_and_to_complete_the_registered_meshes():
    assert complete("meshmigrate plan --from ") == ["consul", "istio", "linkerd", "auto"]
    assert complete("meshmigrate plan --from li") == ["linkerd"]
    assert complete("meshmigrate plan --from istio --to ") == ["consul", "istio", "linkerd"]
    # verify and rbac read a named mesh; only plan and export detect one.
    assert complete("meshmigrate verify --from ") == ["consul", "istio", "linkerd"]
    assert complete("meshmigrate export --from a") == ["auto"]


def test_target_version_follows_the_chosen_target():
    assert complete("meshmigrate plan --to linkerd --target-version ") == \
        list(mappings.table("linkerd").versions)
    assert complete("meshmigrate plan --from linkerd --to istio --target-version 1.2") == \
        [v for v in mappings.table("istio").versions if v.startswith("1.2")]
    # Without --to, every target's versions.
    offered = complete("meshmigrate plan --target-version ")
    assert set(offered) == {v for t in ("istio", "linkerd", "consul")
                            for v in mappings.table(t).versions}


def test_contexts_and_namespaces_come_from_the_kubeconfig_file(kubeconfig: Path):
    config = str(kubeconfig)
    assert complete(f"meshmigrate plan --kubeconfig {config} --context ") == \
        ["dev", "prod", "staging"]
    assert complete(f"meshmigrate export --kubeconfig {config} -n ") == ["payments", "shop"]
    assert complete(f"meshmigrate export --kubeconfig {config} --context prod -n ") == ["shop"]
    # From $KUBECONFIG when --kubeconfig is not given; nothing (not an error) when unreadable.
    assert complete("meshmigrate plan --context st", KUBECONFIG=config) == ["staging"]
    assert complete("meshmigrate plan --context ", KUBECONFIG=str(kubeconfig.parent / "no")) == []


def test_filename_completes_files():
    words = "meshmigrate plan -f sam"
    result = CliRunner().invoke(main, [], prog_name="meshmigrate", env={
        "_MESHMIGRATE_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": "3"})
    assert result.stdout.splitlines() == ["file,sam"]  # the script hands it to the shell


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_script_for_the_shell(shell: str):
    result = CliRunner().invoke(main, ["completion", shell], prog_name="meshmigrate")
    assert result.exit_code == 0
    assert "_MESHMIGRATE_COMPLETE" in result.stdout and f"{shell}_complete" in result.stdout
    if shell == "bash":
        assert "complete -o nosort -F _meshmigrate_completion meshmigrate" in result.stdout
    unknown = CliRunner().invoke(main, ["completion", "tcsh"], prog_name="meshmigrate")
    assert unknown.exit_code == 2


def test_kubectl_asks_the_plugin_completer(tmp_path: Path):
    script = Path(sys.executable).parent / "kubectl_complete-meshmigrate"
    done = subprocess.run([str(script), "plan", "--to", "linkerd", "--target-version", "2.2"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines() == \
        [v for v in mappings.table("linkerd").versions if v.startswith("2.2")] + [":4"]
    files = subprocess.run([str(script), "plan", "-f", ""], capture_output=True, text=True,
                           timeout=60)
    assert files.stdout == ":0\n"  # cobra's default directive: the shell completes files
    if shutil.which("kubectl"):
        env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none"),
               "PATH": os.pathsep.join([str(script.parent), os.environ.get("PATH", "")])}
        via = subprocess.run(["kubectl", "__complete", "meshmigrate", "plan", "--to", ""],
                             capture_output=True, text=True, env=env, timeout=60)
        assert via.stdout.splitlines()[:3] == ["consul", "istio", "linkerd"]
