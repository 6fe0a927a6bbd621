"""The step folders: ``steps/NN-<slug>/`` as kustomize directories.

Every emitted object carries ``meshmigrate.io/source``: the source objects it came from as
comma-separated ``Kind/namespace/name`` entries. Files, documents and keys are ordered so
that the same plan always gives the same bytes.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from migrate.dialects.base import Manifest
from migrate.gcpause import no_gc_pauses
from migrate.plan.model import Plan, Step, restorable
from migrate.sources.model import RawObject
from migrate.yamlio import dump_document

SOURCE_ANNOTATION = "meshmigrate.io/source"


def annotated(m: Manifest) -> dict[str, Any]:
    """The manifest body with its source annotation (``m.body`` is a copy of its own)."""
    body = m.body
    meta = body["metadata"]
    annotations = dict(meta.get("annotations") or {})
    annotations[SOURCE_ANNOTATION] = ",".join(r.source_id for r in sorted(set(m.sources)))
    meta["annotations"] = dict(sorted(annotations.items()))
    return body


def file_name(body: dict[str, Any]) -> str:
    """The object's path inside its step folder: ``<namespace>/<kind>.<group>_<name>.yaml``
    (see :func:`object_path`)."""
    meta = body.get("metadata") or {}
    return object_path(str(body.get("apiVersion", "")), str(body.get("kind", "")),
                       str(meta.get("namespace") or ""), str(meta.get("name", "")))


def manifest_file_name(m: Manifest) -> str:
    """:func:`file_name` of a manifest's body, from the fields it keeps unpacked."""
    return object_path(m.api_version, m.kind, m.namespace, m.name)


def source_file_name(obj: RawObject | Manifest) -> str:
    """:func:`file_name` of a source object as read, or of a manifest standing in for one."""
    if isinstance(obj, Manifest):
        return manifest_file_name(obj)
    # The namespace it is restored into (restorable): as written, or ``default`` when absent.
    return object_path(obj.api_version, obj.kind, obj.ref.namespace, obj.ref.name)


# Kubernetes name rules (k8s.io/apimachinery pkg/util/validation/validation.go, v0.31.0:
# IsDNS1123Label, at most 63 characters, and IsDNS1123Subdomain, at most 253; namespaces are
# labels, most names and every custom resource name are subdomains;
# https://kubernetes.io/docs/concepts/overview/working-with-objects/names/). A segment that
# follows them is used as it is; anything else gets the digest form below.
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# A CRD's kind, lowercased, is a DNS-1035 label (apiextensions-apiserver
# pkg/apis/apiextensions/validation/validation.go, ValidateCustomResourceDefinitionNames).
_PLAIN = re.compile(r"[a-z0-9][-a-z0-9.]*")
_KIND = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")

MAX_FILE_NAME = 143
"""Longest file or folder name written, in bytes: well under the 255 of ext4, XFS, btrfs,
APFS and NTFS, and within the 143 of an encrypted eCryptfs home directory."""
_MAX_PREFIX = 80
"""Longest ``<kind>.<group>`` kept readable (the mesh kinds' longest is 39)."""
_DIGEST = 20
"""Hex digits of SHA-256 in a digest form: 80 bits, so that two of the names of one kind in
one namespace share one only with a chance of about n**2 / 2**81."""

CLUSTER_FOLDER = "_cluster"
"""Folder of the objects without a namespace (no namespace can hold ``_``)."""


def object_path(api_version: str, kind: str, namespace: str, name: str) -> str:
    """``<namespace>/<kind>.<group>_<name>.yaml``, relative to the step folder.

    Distinct objects never share a path, by construction, for any strings:

    - the folder is the namespace when it is a DNS label, :data:`CLUSTER_FOLDER` when there
      is none, and otherwise (or for ``rollback``, the name of the rollback copies' folder)
      a digest form; a label holds neither ``_`` nor ``+``, ``_cluster`` holds no ``+`` and
      every digest form does;
    - in the file name, ``_`` ends ``<kind>.<group>`` (a lowercased kind and an API group
      hold none), and the name after it is either itself (a DNS subdomain short enough for
      :data:`MAX_FILE_NAME`: no ``+``) or a digest form (always a ``+``);
    - a digest form is ``<readable head>+<first 80 bits of SHA-256 of the whole string>``.

    An object is (API group, kind, namespace, name): the version is no part of it (two
    versions of one object are one object), and the kind is compared lowercased, as the
    file systems that ignore case would (the kinds meshmigrate reads and writes never differ
    only in case). Core kinds have no group: ``service_web.yaml``.
    """
    folder = _FOLDERS.get(namespace)
    if folder is None:
        folder = _FOLDERS[namespace] = (
            namespace if len(namespace) <= 63 and _LABEL.fullmatch(namespace)
            and namespace not in _RESERVED
            else _digest_form(namespace, 63) if namespace else CLUSTER_FOLDER)
    # Named twice per manifest (plan.json and the step folder), hundreds of thousands of
    # times on a large mesh, from a few dozen (apiVersion, kind) pairs: their prefix is kept.
    prefix = _PREFIXES.get((api_version, kind))
    if prefix is None:
        prefix = _PREFIXES[(api_version, kind)] = _prefix(api_version, kind)
    room = MAX_FILE_NAME - len(prefix) - len("_.yaml")
    if len(name) > room or not _is_subdomain(name):
        name = _digest_form(name, room)
    return f"{folder}/{prefix}_{name}.yaml"


def _is_subdomain(name: str) -> bool:
    """Whether ``name`` matches :data:`_SUBDOMAIN`, said as one character class and four
    substring tests (each label starts and ends with a letter or digit), which is about
    three times as fast for the hundreds of thousands of names of a large plan."""
    return bool(_PLAIN.fullmatch(name)) and name[-1] not in "-." and ".." not in name \
        and ".-" not in name and "-." not in name


def _prefix(api_version: str, kind: str) -> str:
    """``<kind>.<group>`` (``<kind>`` for the core group), or its digest form."""
    group = api_version.rpartition("/")[0]
    lower = kind.lower()
    text = f"{lower}.{group}" if group else lower
    if len(text) <= _MAX_PREFIX and _KIND.fullmatch(lower) and (
            not group or _SUBDOMAIN.fullmatch(group)):
        return text
    # The group's length comes first, so ("a/b", "c") and ("a", "b/c") stay apart.
    return _digest_form(f"{len(group)}:{group}{kind}", _MAX_PREFIX, shown=text)


def _digest_form(text: str, room: int, shown: str | None = None) -> str:
    """``<head>+<digest>`` in at most ``room`` characters: the head is the text kept to the
    characters a name may hold (for people only), the digest is of the text itself (any
    string, a NUL or a lone surrogate included)."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_DIGEST]
    head = _UNSAFE.sub("-", (text if shown is None else shown).lower())
    head = head[:max(room - _DIGEST - 1, 0)]
    return f"{head}+{digest}"


_UNSAFE = re.compile(r"[^a-z0-9.-]+")
_RESERVED = frozenset({"rollback"})
"""Namespaces whose folder would be a step folder's own ``rollback/``: they get the digest
form, so a path starting ``rollback/`` is always a rollback copy."""
_FOLDERS: dict[str, str] = {}
"""namespace -> its folder."""
_PREFIXES: dict[tuple[str, str], str] = {}
"""(apiVersion, kind) -> ``<kind>.<group>``, the start of a file name."""


def step_file_names(step: Step) -> tuple[list[str], list[str]]:
    """(manifest files, rollback files) of a step, relative to its folder, sorted."""
    main = sorted({manifest_file_name(m) for m in step.manifests})
    # A rollback copy keeps the identity fields the name is made of: name it from the source.
    rollback = sorted({f"rollback/{source_file_name(o)}" for o in step.rollback_sources})
    return main, rollback


def step_manifests(step: Step) -> dict[str, Manifest]:
    """File name (relative to the step folder) -> the manifest written there: of two
    manifests of one object, the later (as :func:`write_steps` writes them)."""
    return {name: obj for name, obj in _file_sources(step).items()
            if isinstance(obj, Manifest) and not name.startswith("rollback/")}


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
        return restorable(obj)
    assert isinstance(obj, Manifest)
    return annotated(obj)


def write_steps(plan: Plan, out: Path) -> None:
    """Write every step folder with its kustomization.yaml (``out`` is a new folder: see
    :mod:`migrate.emit.output`, which makes it and puts it in place once complete).

    A plan writes one file per manifest (over a hundred thousand at 5,000 services): the
    collector is paused as for the plan itself, each folder is made once, and each body is
    unpacked only to be written (the cleanup step alone holds a manifest per Service).
    """
    steps_dir = out / "steps"
    with no_gc_pauses():
        for step in plan.steps:
            folder = steps_dir / step.id
            files = _file_sources(step)
            main = [f for f in files if not f.startswith("rollback/")]
            rollback = [f[len("rollback/"):] for f in files if f.startswith("rollback/")]
            folder.mkdir(parents=True)
            made = {""}
            _write(folder / "kustomization.yaml", _kustomization(main))
            if rollback:
                (folder / "rollback").mkdir()
                made.add("rollback")
                _write(folder / "rollback" / "kustomization.yaml", _kustomization(rollback))
            for name, obj in files.items():
                parent = name.rpartition("/")[0]
                if parent not in made:
                    (folder / parent).mkdir()
                    made.add(parent)
                _write(folder / name, dump_document(_file_body(name, obj)))


def _kustomization(resources: list[str]) -> str:
    return dump_document({"apiVersion": "kustomize.config.k8s.io/v1beta1",
                          "kind": "Kustomization", "resources": resources})


def _write(path: Path, text: str) -> None:
    # "x": a file that is already there (which a layout that never repeats a path cannot
    # make) is an error, never overwritten.
    with open(path, "x", encoding="utf-8") as fh:
        fh.write(text)
