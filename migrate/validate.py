"""Check emitted manifests against CRD schemas a user supplies (``--validate-with DIR``) and
against Kubernetes name rules.

The schemas are read from the CRDs themselves (``spec.versions[].schema.openAPIV3Schema``),
e.g. what ``linkerd install --crds`` prints, so the check follows the user's exact versions.
Everything a structural schema says (types, enums, patterns, required fields, bounds, oneOf)
is checked, and its CEL rules (``x-kubernetes-validations``) are evaluated where cel-python is
installed (:mod:`migrate.validate_cel`); a rule that cannot be evaluated is reported as
unchecked (``Violation.unchecked``), not passed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import jsonschema

from migrate.names import valid_name
from migrate.validate_cel import evaluate as evaluate_cel
from migrate.sources.files import read_files


@dataclass(frozen=True)
class Violation:
    """One way a manifest breaks its schema or the name rules."""

    file: str
    field: str
    message: str
    unchecked: bool = False
    """A CEL rule that could not be evaluated: shown, but not a violation."""

    def __str__(self) -> str:
        return f"{self.file}: {self.field or '(document)'}: {self.message}"


def failures(violations: list[Violation]) -> list[Violation]:
    """The violations that are failures: not the CEL rules that could not be evaluated."""
    return [v for v in violations if not v.unchecked]


class SchemaSet:
    """CRD schemas by (group, version, kind)."""

    def __init__(self) -> None:
        self.schemas: dict[tuple[str, str, str], dict[str, Any]] = {}

    @classmethod
    def from_paths(cls, paths: Iterable[str]) -> SchemaSet:
        """Every CustomResourceDefinition found in files or folders."""
        paths = list(paths)
        objects = read_files(paths).objects if paths else []
        return cls.from_objects(o.body for o in objects)

    @classmethod
    def from_objects(cls, objects: Iterable[dict[str, Any]]) -> SchemaSet:
        """Every CustomResourceDefinition among ``objects`` (files or a cluster LIST)."""
        found = cls()
        for body in objects:
            if body.get("kind", "CustomResourceDefinition") != "CustomResourceDefinition":
                continue
            spec = body.get("spec") or {}
            group, kind = spec.get("group", ""), (spec.get("names") or {}).get("kind", "")
            for version in spec.get("versions") or []:
                schema = (version.get("schema") or {}).get("openAPIV3Schema")
                if schema and version.get("served", True):
                    found.schemas[(group, version["name"], kind)] = schema
        return found

    def schema_for(self, api_version: str, kind: str) -> dict[str, Any] | None:
        """The schema for an apiVersion/kind, if one was supplied."""
        group, _, version = api_version.rpartition("/")
        return self.schemas.get((group, version, kind))


def validate_manifest(body: dict[str, Any], file: str, schemas: SchemaSet | None,
                      require_schema: bool = False) -> list[Violation]:
    """Schema and name violations of one manifest."""
    out: list[Violation] = []
    meta = body.get("metadata") or {}
    name, namespace = str(meta.get("name", "")), str(meta.get("namespace", ""))
    if not valid_name(name, service=body.get("kind") == "Service"):
        out.append(Violation(file, "metadata.name", f"{name!r} is not a valid name "
                             "(lowercase RFC 1123 label, at most 63 characters)"))
    if namespace and not valid_name(namespace):
        out.append(Violation(file, "metadata.namespace", f"{namespace!r} is not a valid name"))
    for key, value in (meta.get("annotations") or {}).items():
        if not isinstance(value, str):
            out.append(Violation(file, f"metadata.annotations.{key}", "must be a string"))
    api, kind = str(body.get("apiVersion", "")), str(body.get("kind", ""))
    if "/" not in api or api.split("/")[0] in ("apps", "batch") or schemas is None:
        return out  # core kinds: Kubernetes' own schema, not a CRD
    schema = schemas.schema_for(api, kind)
    if schema is None:
        if require_schema:
            out.append(Violation(file, "apiVersion", f"no CRD schema supplied for {api} {kind}"))
        return out
    validator = jsonschema.Draft7Validator(_as_jsonschema(schema))
    for err in sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.path))):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.path).lstrip(".")
        out.append(Violation(file, path, err.message))
    for outcome in evaluate_cel(schema, body):
        if outcome.passed is None:
            out.append(Violation(file, outcome.path, f"CEL rule not evaluated ({outcome.message}):"
                                 f" {outcome.rule}", unchecked=True))
        elif not outcome.passed:
            out.append(Violation(file, outcome.path, outcome.message))
    return out


def _as_jsonschema(schema: Any) -> Any:
    """OpenAPI v3 structural schema -> JSON Schema (int-or-string, nullable)."""
    if isinstance(schema, list):
        return [_as_jsonschema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _as_jsonschema(v) for k, v in schema.items()
           if k not in ("x-kubernetes-validations", "format")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def validate_plan_dir(plan_dir: Path, schemas: SchemaSet | None,
                      require_schema: bool = False) -> list[Violation]:
    """Validate every emitted manifest under ``plan_dir/steps``.

    ``steps/<id>/rollback/`` folders hold the user's own source objects as they were; they
    are restored verbatim, so they are not judged against the target's schemas. (No
    namespace has a folder named ``rollback``: see :func:`migrate.emit.manifests.object_path`.)
    """
    import yaml

    out: list[Violation] = []
    for path in sorted((plan_dir / "steps").rglob("*.yaml")):
        where = path.relative_to(plan_dir).parts  # steps, <id>, then the step's own path
        if path.name == "kustomization.yaml" or where[2:3] == ("rollback",):
            continue
        rel = str(path.relative_to(plan_dir))
        for body in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(body, dict):
                out.extend(validate_manifest(body, rel, schemas, require_schema))
    return _unchecked_once(out)


def _unchecked_once(found: list[Violation]) -> list[Violation]:
    """Each rule left unchecked once (at its first manifest, with how many more had it): a
    plan has hundreds of manifests of one kind, each meeting the same rules."""
    first: dict[tuple[str, str], int] = {}
    more: dict[int, int] = {}
    out: list[Violation] = []
    for v in found:
        if not v.unchecked:
            out.append(v)
            continue
        key = (re.sub(r"\[\d+\]", "[]", v.field), v.message)
        if key in first:
            more[first[key]] = more.get(first[key], 0) + 1
            continue
        first[key] = len(out)
        out.append(v)
    for index, count in more.items():
        v = out[index]
        out[index] = Violation(v.file, v.field, f"{v.message} (and {count} more manifest(s))",
                               unchecked=True)
    return out
