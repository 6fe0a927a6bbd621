"""The step folders: ``steps/NN-<slug>/`` as kustomize directories.

Every emitted object carries ``meshmigrate.io/source``: the source objects it came from as
comma-separated ``Kind/namespace/name`` entries. Files, documents and keys are ordered so
that the same plan always gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from migrate.dialects.base import Manifest
from migrate.gcpause import no_gc_pauses
from migrate.plan.model import Plan, Step
from migrate.sources.model import RawObject, strip_noise
from migrate.yamlio import dump_document

SOURCE_ANNOTATION = "meshmigrate.io/source"


def annotated(m: Manifest) -> dict[str, Any]:
    """The manifest body with its source annotation (``m.body`` is a copy of its own)."""
    body = m.body
    meta = body["metadata"]
    annotations = dict(meta.get("annotations") or {})
    annotations[SOURCE_ANNOTATION] = ",".join(
        f"{r.kind}/{r.namespace}/{r.name}" if r.namespace else f"{r.kind}//{r.name}"
        for r in sorted(set(m.sources)))
    meta["annotations"] = dict(sorted(annotations.items()))
    return body


def file_name(body: dict[str, Any]) -> str:
    """``<kind>-<namespace>-<name>.yaml`` (kind with its API group, so kinds never collide)."""
    meta = body.get("metadata") or {}
    return _file_name(str(body.get("apiVersion", "")), str(body["kind"]),
                      meta.get("namespace") or "", meta["name"])


def manifest_file_name(m: Manifest) -> str:
    """:func:`file_name` of a manifest's body, from the fields it keeps unpacked."""
    return _file_name(m.api_version, m.kind, m.namespace, m.name)


def source_file_name(obj: RawObject | Manifest) -> str:
    """:func:`file_name` of a source object as read, or of a manifest standing in for one."""
    if isinstance(obj, Manifest):
        return manifest_file_name(obj)
    return _file_name(obj.api_version, obj.kind, obj.written_namespace, obj.ref.name)


def _file_name(api: str, kind: str, namespace: str, name: str) -> str:
    # Named twice per manifest (plan.json and the step folder), hundreds of thousands of
    # times on a large mesh, from a few dozen (apiVersion, kind) pairs: their prefix is kept.
    prefix = _PREFIXES.get((api, kind))
    if prefix is None:
        group = api.split("/")[0] if "/" in api else "core"
        prefix = _PREFIXES[(api, kind)] = f"{kind.lower()}.{group.split('.')[0]}"
    return f"{prefix}-{namespace or 'cluster'}-{name}.yaml"


_PREFIXES: dict[tuple[str, str], str] = {}
"""(apiVersion, kind) -> ``<kind>.<group>``, the start of a file name."""


def step_file_names(step: Step) -> tuple[list[str], list[str]]:
    """(manifest files, rollback files) of a step, relative to its folder, sorted."""
    main = sorted({manifest_file_name(m) for m in step.manifests})
    # A rollback copy keeps the identity fields the name is made of: name it from the source.
    rollback = sorted({f"rollback/{source_file_name(o)}" for o in step.rollback_sources})
    return main, rollback


def step_files(step: Step) -> dict[str, dict[str, Any]]:
    """File name (relative to the step folder) -> body, for manifests and rollback copies."""
    return {name: _file_body(name, obj) for name, obj in _file_sources(step).items()}


def _file_sources(step: Step) -> dict[str, Manifest | RawObject]:
    """File name -> the manifest or source object it is written from, sorted by name (of
    equal names, the last: a later manifest of the same object replaces an earlier one)."""
    files: dict[str, Manifest | RawObject] = {}
    for m in step.manifests:
        files[manifest_file_name(m)] = m
    for obj in step.rollback_sources:
        files[f"rollback/{source_file_name(obj)}"] = obj
    return dict(sorted(files.items()))


def _file_body(name: str, obj: Manifest | RawObject) -> dict[str, Any]:
    # A rollback copy of a source route handed over at step 00 is that copy's manifest.
    if name.startswith("rollback/"):
        return strip_noise(obj.body)
    assert isinstance(obj, Manifest)
    return annotated(obj)


def write_steps(plan: Plan, out: Path) -> None:
    """Write every step folder with its kustomization.yaml.

    A plan writes one file per manifest (over a hundred thousand at 5,000 services): the
    collector is paused as for the plan itself, each folder is made once, and each body is
    unpacked only to be written (the cleanup step alone holds a manifest per Service).
    """
    steps_dir = out / "steps"
    with no_gc_pauses():
        for step in plan.steps:
            folder = steps_dir / step.id
            files = _file_sources(step)
            main = [f for f in files if "/" not in f]
            rollback = [f[len("rollback/"):] for f in files if f.startswith("rollback/")]
            folder.mkdir(parents=True, exist_ok=True)
            _write(folder / "kustomization.yaml", _kustomization(main))
            if rollback:
                (folder / "rollback").mkdir(exist_ok=True)
                _write(folder / "rollback" / "kustomization.yaml", _kustomization(rollback))
            for name, obj in files.items():
                _write(folder / name, dump_document(_file_body(name, obj)))


def _kustomization(resources: list[str]) -> str:
    return dump_document({"apiVersion": "kustomize.config.k8s.io/v1beta1",
                          "kind": "Kustomization", "resources": resources})


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
