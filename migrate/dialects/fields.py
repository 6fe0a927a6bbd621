"""Field-accounted access to one source object.

A reader reads every field through :class:`Fields`, which records the paths it consumed.
After the reader is done, :meth:`Fields.unaccounted` walks the whole object: every field
neither consumed nor already reported becomes a ``FIELD_UNMODELLED`` loss. That is how the
promise "no silent drop" holds for fields no one has written code for yet.
"""

from __future__ import annotations

import re
from sys import intern
from typing import Any

from migrate.depth import MAX_DEPTH
from migrate.ir.model import FeatureUse, Origin
from migrate.losses import LossLog, ObjectRef, Severity
from migrate.sources.model import RawObject

# Bookkeeping Kubernetes adds to every object; it carries no mesh behaviour.
NOISE = frozenset({
    "status", "metadata.uid", "metadata.resourceVersion", "metadata.generation",
    "metadata.creationTimestamp", "metadata.managedFields", "metadata.selfLink",
    "metadata.ownerReferences", "metadata.finalizers", "metadata.deletionTimestamp",
    "metadata.deletionGracePeriodSeconds", "metadata.generateName",
    "metadata.annotations.kubectl.kubernetes.io/last-applied-configuration",
    "metadata.name", "metadata.namespace", "metadata.labels", "apiVersion", "kind",
})

OWN_ANNOTATIONS = "meshmigrate.io/"
"""Annotations meshmigrate writes on what it emits; they carry no mesh behaviour."""

_TOKEN = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def split_path(path: str) -> tuple[str | int, ...]:
    """``spec.http[0].route`` -> ``["spec", "http", 0, "route"]``.

    Keys that contain dots (annotation names) are written with a ``/`` in them and taken
    whole after ``annotations.``; see :func:`join`.
    """
    # Objects of one kind are read along the same few hundred paths: a plain dict keeps
    # their parts, and Fields._lookup (every field a reader reads) probes it inline before
    # calling here. Bounded: an input with endless distinct paths stops being cached.
    parts = _SPLIT.get(path)
    if parts is None:
        parts = _split(path)
        if len(_SPLIT) < _SPLIT_CACHE:
            _SPLIT[path] = parts
    return parts


_SPLIT: dict[str, tuple[str | int, ...]] = {}
_SPLIT_CACHE = 1 << 16


def _split(path: str) -> tuple[str | int, ...]:
    if ".annotations." in f".{path}":
        head, _, key = path.partition("annotations.")
        return (*_split(head.rstrip(".")), "annotations", key) if head else \
            ("annotations", key)
    return tuple(int(index) if index else name for index, name in _TOKEN.findall(path))


class Ledger(set):  # type: ignore[type-arg]
    """The field paths one object's reader consumed or reported.

    :data:`NOISE` counts as consumed for every object without being copied into each ledger
    (a plan keeps one ledger per source object, so the copies added up).
    """

    __slots__ = ()

    def __contains__(self, path: object) -> bool:
        return path in NOISE or set.__contains__(self, path)


_MISSING = object()


def join(base: str, key: str | int) -> str:
    """Extend a path by a key or list index."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key


class Fields:
    """One source object read through a ledger of consumed field paths."""

    def __init__(self, raw: RawObject, losses: LossLog, mesh: str) -> None:
        self.raw = raw
        self.body = raw.body
        self.ref: ObjectRef = raw.ref
        self.losses = losses
        self.mesh = mesh
        self.accounted: set[str] = Ledger()
        # meshmigrate's own bookkeeping on objects it wrote (meshmigrate.io/source, /rules):
        # reading a migrated cluster again must not report them as unmodelled mesh config.
        meta = self.body.get("metadata") if isinstance(self.body, dict) else None
        notes = meta.get("annotations") if isinstance(meta, dict) else None
        if isinstance(notes, dict):
            self.accounted |= {f"metadata.annotations.{k}" for k in notes
                               if str(k).startswith(OWN_ANNOTATIONS)}
        self.uses: list[FeatureUse] = []

    # -- access ---------------------------------------------------------------------------
    def get(self, path: str, default: Any = None, whole: bool = False) -> Any:
        """The value at ``path``, or ``default`` when absent.

        A scalar is consumed by reading it. A mapping or list is consumed only with
        ``whole=True``; otherwise the caller is expected to read its members one by one.
        """
        value = self._lookup(path, default)
        if whole or not isinstance(value, (dict, list)) or not value:
            # Objects of one kind read the same paths: interned, the ledgers kept for every
            # object share one string per path instead of one per object.
            self.accounted.add(intern(path))
        return value

    def _lookup(self, path: str, default: Any) -> Any:
        value: Any = self.body
        # Every field a reader reads comes through here: the parts are exactly int or str
        # (split_path), so a class test is enough for them, and one dict probe replaces two.
        for part in _SPLIT.get(path) or split_path(path):
            if part.__class__ is int:
                if not isinstance(value, list) or part >= len(value):  # type: ignore[operator]
                    return default
                value = value[part]
            elif isinstance(value, dict):
                value = value.get(part, _MISSING)
                if value is _MISSING:
                    return default
            else:
                return default
        return value

    def peek(self, path: str, default: Any = None) -> Any:
        """The value at ``path`` without consuming it."""
        return self._lookup(path, default)

    def keys_at(self, path: str) -> dict[str, Any]:
        """The mapping at ``path`` for testing which keys it has, without consuming anything:
        ``keys_at(p).get(k)`` is ``peek(join(p, k))``. Empty when absent or not a mapping.

        Readers test a dozen optional keys of a rule or policy for presence: one lookup
        instead of one walk from the root per key.
        """
        value = self._lookup(path, None)
        return value if isinstance(value, dict) else {}

    def mapping(self, path: str, whole: bool = False) -> dict[str, Any]:
        """A mapping field; a wrong type is reported and read as empty."""
        return self._typed(path, dict, "a mapping", {}, whole)

    def list(self, path: str, whole: bool = False) -> list[Any]:
        """A list field; a wrong type is reported and read as empty."""
        return self._typed(path, list, "a list", [], whole)

    def string(self, path: str, default: str = "") -> str:
        """A string field (numbers are accepted and turned into text)."""
        value = self.get(path)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.invalid(path, f"expected a string, found {type(value).__name__}")
            return default
        return str(value)

    def name(self, path: str, default: str = "") -> str:
        """A field naming an object or a host: it must be a string. A number (``host: 7``)
        is reported and ignored rather than turned into text: the CRDs type these fields as
        strings, so the API server refuses such an object, and guessing a name would plan
        routes to a service nobody wrote."""
        value = self.get(path)
        if value is None:
            return default
        if not isinstance(value, str):
            self.invalid(path, f"expected a name (a string), found {value!r}"[:120])
            return default
        return value

    def integer(self, path: str) -> int | None:
        """An integer field (digit strings accepted); a wrong type is reported."""
        value = self.get(path)
        if value is None:
            return None
        if isinstance(value, bool):
            self.invalid(path, "expected a number, found a boolean")
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        self.invalid(path, f"expected a number, found {value!r}"[:120])
        return None

    def strings(self, path: str) -> tuple[str, ...]:
        """A list of strings; non-string items are reported and skipped."""
        out = []
        for i, item in enumerate(self.list(path, whole=True)):
            if isinstance(item, (str, int)) and not isinstance(item, bool):
                out.append(str(item))
            else:
                self.invalid(join(path, i), "expected a string")
        return tuple(out)

    def _typed(self, path: str, cls: type, what: str, empty: Any, whole: bool) -> Any:
        value = self.get(path, whole=whole)
        if value is None:
            return empty
        if not isinstance(value, cls):
            self.invalid(path, f"expected {what}, found {type(value).__name__}")
            return empty
        return value

    # -- reporting ------------------------------------------------------------------------
    def origin(self, path: str) -> Origin:
        """An :class:`Origin` for a field of this object."""
        return Origin(self.ref, path)

    def use(self, feature: str, path: str, detail: str = "") -> None:
        """Record a feature use at ``path`` (the path counts as accounted)."""
        self.accounted.add(intern(path))
        self.uses.append(FeatureUse(feature, self.origin(path), detail))

    def note(self, feature: str, path: str, detail: str = "") -> None:
        """Record a feature use that covers no field by itself (the fields are read apart)."""
        self.uses.append(FeatureUse(feature, self.origin(path), detail))

    def invalid(self, path: str, problem: str) -> None:
        """Report a field of the wrong type or value; the field is then ignored."""
        self.accounted.add(intern(path))
        self.losses.report(
            "FIELD_INVALID", Severity.MANUAL, "input", self.ref, path,
            f"{problem}; the field was ignored",
            "Fix the field in the source object (kubectl explain shows its type) and re-run.")

    def unaccounted(self) -> list[str]:
        """Paths of fields nobody consumed or reported (whole subtrees folded into one)."""
        out: list[str] = []
        self._walk(self.body, "", out, MAX_DEPTH)
        return out

    def _walk(self, value: Any, path: str, out: list[str], budget: int) -> bool:
        """Append unaccounted paths under ``value``; True when the whole subtree is."""
        # Runs once per node of every source object: the ledger is probed as a plain set
        # (NOISE apart), and the members of a mapping or list that are scalars (most of
        # them) are tested here rather than in a call each.
        accounted = self.accounted
        if path in NOISE or set.__contains__(accounted, path):
            return False
        if budget <= 0:
            # Deeper than any document a file may hold (a cluster serves up to 10,000
            # levels): reported whole rather than walked, so recursion stays bounded.
            out.append(path)
            return True
        if isinstance(value, dict) and value:
            prefix = f"{path}." if path else ""
            members: Any = value.items()
        elif isinstance(value, list) and value:
            prefix = ""
            members = ((f"{path}[{i}]", item) for i, item in enumerate(value))
        else:
            if value is None or value == {} or value == []:
                return False  # empty fields carry nothing to lose
            out.append(path)
            return True
        children: list[str] = []
        whole = True
        for key, item in members:
            child = f"{prefix}{key}"
            if isinstance(item, (dict, list)) and item:
                whole &= self._walk(item, child, children, budget - 1)
            elif child in NOISE or set.__contains__(accounted, child) or item is None \
                    or item == {} or item == []:
                whole = False
            else:
                children.append(child)
        if whole and path:
            out.append(path)
        else:
            out.extend(children)
        return whole

    def report_unaccounted(self) -> None:
        """Turn every unaccounted field into a FIELD_UNMODELLED loss."""
        for path in self.unaccounted():
            self.losses.report(
                "FIELD_UNMODELLED", Severity.DROPPED, "input", self.ref, path,
                f"{self.ref.kind} field {path} has no translation in meshmigrate yet",
                "Check what the field does and recreate its effect in the target by hand.")
            self.accounted.add(intern(path))
