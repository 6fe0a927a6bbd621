"""Losses: every feature that does not survive the move, as structured records.

A :class:`Loss` names a stable ``code`` (catalogued in ``docs/losses.md``), a
:class:`Severity`, the IR feature, the source object and the field path in the source's own
vocabulary, a message and the action a person should take. One :class:`LossLog` per run
collects them; it deduplicates and always iterates in a sorted, deterministic order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Iterable, Iterator


class Severity(str, Enum):
    """What happened to a feature, from least to most serious."""

    INFO = "info"
    """Behaviour is kept; something differs in form worth knowing (e.g. a default changes)."""
    DEGRADED = "degraded"
    """An approximation: the feature survives with a documented difference."""
    DROPPED = "dropped"
    """The feature has no form in the target and is gone."""
    MANUAL = "manual"
    """A person must act (decide, install, or rebuild it by hand) for the plan to be complete."""

    @property
    def rank(self) -> int:
        """Order for ``--fail-on`` comparisons."""
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.DEGRADED: 1, Severity.DROPPED: 2, Severity.MANUAL: 3}


@dataclass(frozen=True, order=True, slots=True)
class ObjectRef:
    """A source object as Kubernetes names it."""

    kind: str
    namespace: str
    name: str
    api_version: str = ""

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"

    @property
    def source_id(self) -> str:
        """The object as the ``meshmigrate.io/source`` annotation, command ``sources`` and
        the ledger name it: ``Kind/namespace/name``, ``Kind//name`` without a namespace."""
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else \
            f"{self.kind}//{self.name}"

    def to_json(self) -> dict[str, str]:
        """The ``object`` member of a loss in plan.json."""
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
        }


@dataclass(frozen=True)
class Loss:
    """One feature that does not survive, tied to the source object and field it came from."""

    code: str
    """Stable identifier, e.g. ``ROUTE_MIRROR``; a section of docs/losses.md."""
    severity: Severity
    feature: str
    """IR feature key from mappings/features.yaml, e.g. ``route.mirror``."""
    object: ObjectRef
    path: str
    """Field path in the source object, e.g. ``spec.http[0].mirror``."""
    message: str
    action: str

    @property
    def namespace(self) -> str:
        """The namespace a loss concerns (a Namespace object concerns itself)."""
        o = self.object
        return o.namespace or (o.name if o.kind == "Namespace" else "")

    def sort_key(self) -> tuple[str, str, str, str, str, str]:
        """Namespace, kind, name, path, code: the order every report uses."""
        o = self.object
        return (self.namespace, o.kind, o.name, _natural(self.path), self.code, self.message)

    def to_json(self) -> dict[str, object]:
        """The loss as it appears in plan.json."""
        return {
            "code": self.code,
            "severity": self.severity.value,
            "feature": self.feature,
            "object": self.object.to_json(),
            "path": self.path,
            "message": self.message,
            "action": self.action,
        }


@lru_cache(maxsize=65536)  # a plan sorts many losses on a few thousand distinct paths
def _natural(path: str) -> str:
    """Pad list indices (every run of digits) so that "[10]" sorts after "[9]"."""
    return _DIGITS.sub(_pad, path)


def natural(path: str) -> str:
    """A field path as sorted for people: list indices in numeric order (``[9]`` before
    ``[10]``)."""
    return _natural(path)


_DIGITS = re.compile(r"\d+")


def _pad(match: re.Match[str]) -> str:
    return match.group().zfill(6)


@dataclass
class LossLog:
    """The one collector of losses for a run. Pass it explicitly; never a global."""

    _items: dict[tuple[str, ObjectRef, str, str], Loss] = field(default_factory=dict)
    _ordered: list[Loss] | None = field(default=None, repr=False, compare=False)
    """The losses in report order, kept until the next one is added: a plan iterates them
    several times (steps, plan.json, the report), and there are over a hundred thousand at
    20,000 services."""

    def add(self, loss: Loss) -> None:
        """Record a loss; the same code on the same object field is kept once."""
        key = (loss.code, loss.object, loss.path, loss.message)
        if key not in self._items:
            self._items[key] = loss
            self._ordered = None

    def report(
        self,
        code: str,
        severity: Severity,
        feature: str,
        obj: ObjectRef,
        path: str,
        message: str,
        action: str,
    ) -> None:
        """Shorthand for ``add(Loss(...))``."""
        self.add(Loss(code, severity, feature, obj, path, message, action))

    def withdraw(self, obj: ObjectRef, path: str, keep: frozenset[str] = frozenset(),
                 only: frozenset[str] | None = None) -> int:
        """Drop the losses on ``obj`` at ``path`` or below it (codes in ``keep`` stay; with
        ``only``, just those codes go): for a part of a source object a writer found never in
        effect, or kept after all, whose features were reported before it knew. Returns how
        many were dropped."""
        gone = [key for key, loss in self._items.items()
                if loss.object == obj and loss.code not in keep and
                (only is None or loss.code in only) and
                (loss.path == path or loss.path.startswith((path + ".", path + "[")))]
        for key in gone:
            del self._items[key]
        if gone:
            self._ordered = None
        return len(gone)

    def extend(self, losses: Iterable[Loss]) -> None:
        """Record several losses."""
        for loss in losses:
            self.add(loss)

    def __iter__(self) -> Iterator[Loss]:
        if self._ordered is None:
            self._ordered = sorted(self._items.values(), key=Loss.sort_key)
        return iter(self._ordered)

    def __len__(self) -> int:
        return len(self._items)

    def for_namespaces(self, namespaces: Iterable[str]) -> list[Loss]:
        """Losses whose source object lives in one of ``namespaces``."""
        wanted = set(namespaces)
        return [loss for loss in self if loss.namespace in wanted]

    def worst(self) -> Severity | None:
        """The most serious severity recorded, or None when there is no loss."""
        ranks = [loss.severity for loss in self._items.values()]
        return max(ranks, key=lambda s: s.rank) if ranks else None
