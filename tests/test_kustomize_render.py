"""Every step folder and rollback folder of every sample plan renders with `kubectl kustomize`
(the command the runbook's `kubectl apply -k` runs) into exactly the step's objects: nothing
missing, nothing extra, nothing changed on the way (issue 16)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from migrate.emit.manifests import annotated
from migrate.emit.output import write_output
from migrate.pipeline import PlanOptions, plan_migration
from tests.conftest import SAMPLES

KUBECTL = shutil.which("kubectl")
PLANS = [(mesh.name, sample.name, target)
         for mesh in sorted(SAMPLES.iterdir()) if mesh.is_dir()
         for sample in sorted(mesh.iterdir()) if sample.is_dir()
         for target in ("istio", "linkerd", "consul") if target != mesh.name]


def _key(body: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = body.get("metadata") or {}
    return (body["apiVersion"], body["kind"], meta.get("namespace", ""), meta["name"])


def _render(folder: Path) -> list[dict[str, Any]]:
    done = subprocess.run([KUBECTL, "kustomize", str(folder)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"{folder}: {done.stderr}"
    return sorted((d for d in yaml.safe_load_all(done.stdout) if d), key=_key)


def _files(folder: Path) -> list[dict[str, Any]]:
    """The objects of a folder's own files (not its kustomization, not rollback/)."""
    out = []
    for path in sorted(folder.rglob("*.yaml")):
        rel = path.relative_to(folder).parts
        if path.name != "kustomization.yaml" and rel[0] != "rollback":
            out += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return sorted(out, key=_key)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
@pytest.mark.parametrize("mesh,sample,target", PLANS)
def test_every_step_folder_renders_into_its_manifests(tmp_path: Path, mesh: str, sample: str,
                                                      target: str):
    plan = plan_migration(PlanOptions(mesh, target, [str(SAMPLES / mesh / sample)],
                                      verify=False)).plan
    out = tmp_path / "plan"
    write_output(plan, out)
    rollbacks = 0
    for step in plan.steps:
        folder = out / "steps" / step.id
        rendered = _render(folder)
        # The step's own manifests, as the plan built them: apply -k sends exactly these.
        assert rendered == sorted((annotated(m) for m in step.manifests), key=_key), step.id
        assert rendered == _files(folder), f"{step.id}: a file the kustomization leaves out"
        if (folder / "rollback").is_dir():
            rollbacks += 1
            restored = _render(folder / "rollback")
            assert restored == _files(folder / "rollback"), f"{step.id}/rollback"
            assert {_key(b) for b in restored} == \
                {_key(s.body) for s in step.rollback_sources}, f"{step.id}/rollback"
    assert rollbacks, "a sample plan with nothing to roll back tests no rollback folder"
