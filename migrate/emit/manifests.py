"""The step folders: ``steps/NN-<slug>/`` as kustomize directories.

Every emitted object carries ``meshmigrate.io/source``: the source objects it came from as
comma-separated ``Kind/namespace/name`` entries. Files, documents and keys are ordered so
that the same plan always gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from migrate.dialects.base import Manifest
from migrate.plan.model import Plan, Step
from migrate.yamlio import dump_document

SOURCE_ANNOTATION = "meshmigrate.io/source"


def annotated(m: Manifest) -> dict[str, Any]:
    """The manifest body with its source annotation (a copy: the body is not changed)."""
    # Only metadata changes, so a shallow copy of the two levels above it is enough.
    body = dict(m.body)
    meta = dict(body.get("metadata") or {})
    body["metadata"] = meta
    annotations = dict(meta.get("annotations") or {})
    annotations[SOURCE_ANNOTATION] = ",".join(
        f"{r.kind}/{r.namespace}/{r.name}" if r.namespace else f"{r.kind}//{r.name}"
        for r in sorted(set(m.sources)))
    meta["annotations"] = dict(sorted(annotations.items()))
    return body


def file_name(body: dict[str, Any]) -> str:
    """``<kind>-<namespace>-<name>.yaml`` (kind with its API group, so kinds never collide)."""
    api = str(body.get("apiVersion", ""))
    group = api.split("/")[0] if "/" in api else "core"
    meta = body.get("metadata") or {}
    ns = meta.get("namespace") or "cluster"
    return f"{body['kind'].lower()}.{group.split('.')[0]}-{ns}-{meta['name']}.yaml"


def step_file_names(step: Step) -> tuple[list[str], list[str]]:
    """(manifest files, rollback files) of a step, relative to its folder, sorted."""
    main = sorted({file_name(m.body) for m in step.manifests})
    # A rollback copy keeps the identity fields the name is made of: name it from the source.
    rollback = sorted({f"rollback/{file_name(b)}" for b in step.rollback_sources})
    return main, rollback


def step_files(step: Step) -> dict[str, dict[str, Any]]:
    """File name (relative to the step folder) -> body, for manifests and rollback copies."""
    files: dict[str, dict[str, Any]] = {}
    for m in step.manifests:
        files[file_name(m.body)] = annotated(m)
    for body in step.rollback_manifests:
        files[f"rollback/{file_name(body)}"] = body
    return dict(sorted(files.items()))


def write_steps(plan: Plan, out: Path) -> None:
    """Write every step folder with its kustomization.yaml."""
    steps_dir = out / "steps"
    for step in plan.steps:
        folder = steps_dir / step.id
        files = step_files(step)
        main = sorted(f for f in files if "/" not in f)
        rollback = sorted(f[len("rollback/"):] for f in files if f.startswith("rollback/"))
        _write(folder / "kustomization.yaml", _kustomization(main))
        if rollback:
            _write(folder / "rollback" / "kustomization.yaml", _kustomization(rollback))
        for name, body in files.items():
            _write(folder / name, dump_document(body))


def _kustomization(resources: list[str]) -> str:
    return dump_document({"apiVersion": "kustomize.config.k8s.io/v1beta1",
                          "kind": "Kustomization", "resources": resources})


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
