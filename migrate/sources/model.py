"""The records every source produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from migrate.errors import InputProblem
from migrate.losses import ObjectRef
from migrate.packing import pack, unpack

# Kinds that live outside namespaces, among those meshmigrate reads.
CLUSTER_SCOPED = frozenset({"Namespace", "CustomResourceDefinition", "ClusterRole",
                            "ClusterRoleBinding", "MutatingWebhookConfiguration",
                            "ValidatingWebhookConfiguration", "GatewayClass"})


@dataclass(frozen=True)
class RepeatedKey:
    """A key one mapping of the object sets twice (the object holds the last value)."""

    path: str
    """The field, as readers name fields (``spec.rules[0].action``)."""
    message: str
    """Strict decoding's error for it (see :meth:`migrate.yamlio.DuplicateKey.message`)."""
    line: int | None


class RawObject:
    """One Kubernetes object as read, with where it was read from.

    Immutable in use: the reader reads :attr:`body` and never changes it. A plan keeps the
    source mesh's own objects until it is written (rollback copies are made from them);
    :meth:`packed` gives the same object with its body held as bytes
    (:mod:`migrate.packing`), about a tenth of the dicts' size, each read of :attr:`body` then
    returning a new copy.
    """

    __slots__ = ("_body", "_packed", "source", "line", "_ref", "_written_namespace",
                 "repeated_keys")

    def __init__(self, body: dict[str, Any], source: str, line: int,
                 repeated_keys: tuple[RepeatedKey, ...] = ()) -> None:
        self._body: dict[str, Any] | None = body
        self._packed: bytes | None = None
        self.source = source
        """File path, ``<stdin>`` or ``cluster``."""
        self.line = line
        """1-based line of the document (0 when not from a file)."""
        self.repeated_keys = repeated_keys
        """Keys the document set twice in one mapping (a file can; a cluster cannot)."""
        meta = body.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        kind = str(body.get("kind", ""))
        # Every stage names objects by their ref (duplicates, the reader, the plan's indexes):
        # made once here instead of at each use.
        ns = "" if kind in CLUSTER_SCOPED else str(meta.get("namespace") or "default")
        self._ref = ObjectRef(kind, ns, str(meta.get("name", "")),
                              str(body.get("apiVersion", "")))
        self._written_namespace = str(meta.get("namespace") or "")

    @property
    def body(self) -> dict[str, Any]:
        """The object as read (a new copy at each read once :meth:`packed`)."""
        if self._body is not None:
            return self._body
        return unpack(self._packed)  # type: ignore[arg-type,no-any-return]

    def packed(self) -> RawObject:
        """The same object with its body packed."""
        if self._packed is not None:
            return self
        out = RawObject.__new__(RawObject)
        out._body, out._packed = None, pack(self._body)
        out.source, out.line, out._ref = self.source, self.line, self._ref
        out._written_namespace = self._written_namespace
        out.repeated_keys = self.repeated_keys
        return out

    @property
    def api_version(self) -> str:
        """``apiVersion`` as written."""
        return self._ref.api_version

    @property
    def group(self) -> str:
        """API group (empty for the core group)."""
        api = self._ref.api_version
        return api.split("/", 1)[0] if "/" in api else ""

    @property
    def version(self) -> str:
        """API version without the group."""
        return self._ref.api_version.rsplit("/", 1)[-1]

    @property
    def kind(self) -> str:
        """``kind`` as written."""
        return self._ref.kind

    @property
    def ref(self) -> ObjectRef:
        """The object's name as Kubernetes knows it (namespace defaulted to ``default``)."""
        return self._ref

    @property
    def written_namespace(self) -> str:
        """``metadata.namespace`` as written (empty when absent)."""
        return self._written_namespace

    @property
    def where(self) -> str:
        """``file:line`` for messages."""
        return f"{self.source}:{self.line}" if self.line else self.source

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RawObject):
            return NotImplemented
        return (self.body, self.source, self.line) == (other.body, other.source, other.line)

    __hash__ = None  # type: ignore[assignment]  # equal by content, which is mutable data

    def __repr__(self) -> str:
        return f"RawObject(body={self.body!r}, source={self.source!r}, line={self.line!r})"


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
