"""The records every source produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from migrate.errors import InputProblem
from migrate.losses import ObjectRef

# Kinds that live outside namespaces, among those meshmigrate reads.
CLUSTER_SCOPED = frozenset({"Namespace", "CustomResourceDefinition", "ClusterRole",
                            "ClusterRoleBinding", "MutatingWebhookConfiguration",
                            "ValidatingWebhookConfiguration", "GatewayClass"})


@dataclass(frozen=True, slots=True)  # one per input object: slots keep each small
class RawObject:
    """One Kubernetes object as read, with where it was read from."""

    body: dict[str, Any]
    source: str
    """File path, ``<stdin>`` or ``cluster``."""
    line: int
    """1-based line of the document (0 when not from a file)."""
    _ref: ObjectRef = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Every stage names objects by their ref (duplicates, the reader, the plan's indexes):
        # made once here instead of at each use.
        object.__setattr__(self, "_ref", self._make_ref())

    @property
    def api_version(self) -> str:
        """``apiVersion`` as written."""
        return str(self.body.get("apiVersion", ""))

    @property
    def group(self) -> str:
        """API group (empty for the core group)."""
        api = self.api_version
        return api.split("/", 1)[0] if "/" in api else ""

    @property
    def version(self) -> str:
        """API version without the group."""
        return self.api_version.rsplit("/", 1)[-1]

    @property
    def kind(self) -> str:
        """``kind`` as written."""
        return str(self.body.get("kind", ""))

    @property
    def ref(self) -> ObjectRef:
        """The object's name as Kubernetes knows it (namespace defaulted to ``default``)."""
        return self._ref

    def _make_ref(self) -> ObjectRef:
        meta = self.body.get("metadata") or {}
        ns = "" if self.kind in CLUSTER_SCOPED else str(meta.get("namespace") or "default")
        return ObjectRef(self.kind, ns, str(meta.get("name", "")), self.api_version)

    @property
    def where(self) -> str:
        """``file:line`` for messages."""
        return f"{self.source}:{self.line}" if self.line else self.source


@dataclass
class SourceResult:
    """What a source produced: usable objects, problems, and counts of what was skipped."""

    objects: list[RawObject] = field(default_factory=list)
    problems: list[InputProblem] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    """``apiVersion/kind`` -> count of objects not used by the chosen reader."""


_NOISE_META = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
               "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")
_NOISE_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def strip_noise(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of an object without status and server-set metadata (safe to re-apply).

    Keys are sorted: YAML mappings are unordered, so the same object written with its keys
    in another order must give the same bytes.
    """
    body = _sorted(body)
    out = {k: v for k, v in body.items() if k != "status"}
    raw_meta = body.get("metadata")
    meta = {k: v for k, v in (raw_meta if isinstance(raw_meta, dict) else {}).items()
            if k not in _NOISE_META}
    raw_annotations = meta.get("annotations")
    annotations = {k: v for k, v in (raw_annotations if isinstance(raw_annotations, dict)
                                     else {}).items() if k not in _NOISE_ANNOTATIONS}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out["metadata"] = meta
    return out
