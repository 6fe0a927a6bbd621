"""Plan records: plain data, so emitters only format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from migrate.dialects.base import Manifest
from migrate.install import SettingUsed
from migrate.losses import Loss
from migrate.plan.commands import Command
from migrate.sources.model import RawObject, strip_noise


@dataclass
class Step:
    """One reviewable, appliable unit of the migration."""

    number: int
    slug: str
    title: str
    kind: str
    """prerequisites, move, enforce, ingress or cleanup."""
    namespaces: list[str]
    summary: str = ""
    manifests: list[Manifest] = field(default_factory=list)
    apply_verb: str = "apply"
    """How the manifests are applied: ``apply`` (server-side) or ``replace``."""
    commands: list[Command] = field(default_factory=list)
    """What a person runs, in order: argv data, rendered only by
    :func:`migrate.plan.commands.render`."""
    verify: list[Command] = field(default_factory=list)
    rollback: list[Command | str] = field(default_factory=list)
    """Commands, and (as plain text) the few rollback actions that are not commands (``Point
    DNS back at ...``): planner-written sentences, never input."""
    rollback_sources: list[RawObject | Manifest] = field(default_factory=list)
    """Source objects this step deletes or replaces, as read (or the copy standing in for one
    since step 00), shared with the reader's result and never changed.
    :attr:`rollback_manifests` makes their re-appliable copies."""
    losses: list[Loss] = field(default_factory=list)
    manual: list[str] = field(default_factory=list)

    @property
    def rollback_manifests(self) -> list[dict[str, Any]]:
        """The objects :attr:`rollback_sources` names, as restored on rollback: server-set
        metadata and status removed, keys sorted (:func:`~migrate.sources.model.strip_noise`).

        Made on each call rather than kept: a plan holds every source object once already, and
        a kept copy of each deleted one doubled that (docs/performance.md).
        """
        return [restorable(obj) for obj in self.rollback_sources]

    @property
    def id(self) -> str:
        """``NN-slug``: the folder name under steps/."""
        return f"{self.number:02d}-{self.slug}"


def restorable(obj: RawObject | Manifest) -> dict[str, Any]:
    """The re-appliable copy of one object. A namespaced source object written without
    ``metadata.namespace`` gets the namespace the plan read it in (``default``, as
    :class:`~migrate.sources.model.RawObject` names it): without one, ``kubectl apply`` would
    restore it into whatever namespace the operator's context has."""
    body = strip_noise(obj.body)
    if isinstance(obj, RawObject) and obj.ref.namespace and not obj.written_namespace:
        body["metadata"] = {**body["metadata"], "namespace": obj.ref.namespace}
    return body


@dataclass
class Plan:
    """The whole migration: ordered steps, losses, and why the order is what it is."""

    source: str
    source_version: str
    target: str
    target_version: str
    groups: list[list[str]]
    """Namespace groups in migration order (a group moves in one step)."""
    dependencies: list[tuple[str, str, list[str]]]
    """(caller, callee, reasons) between namespaces."""
    ingress_namespaces: list[str]
    order_overridden: bool
    override_cost: list[dict[str, Any]]
    steps: list[Step]
    losses: list[Loss]
    outside: list[str]
    """Namespaces in the input that are not migrated (no injection, no mesh objects)."""
    input_problems: list[str]
    skipped: dict[str, int]
    settings: list[SettingUsed] = field(default_factory=list)
    staged_policy: str = ""
    """What the target's staged (not yet enforcing) policy admits, in the target's words
    (``Coexistence.STAGED_POLICY``): the one relaxation the runbook's order section names."""
    """The source mesh's install settings the plan used, each with where its value came from."""
    equivalence: Any = None
    """:class:`migrate.verify.compare.Equivalence` of the final state, when computed."""
    input_digest: str = ""
    """Digest of the input objects (:func:`migrate.verify.digest.input_digest`): `verify`
    refuses an input that does not match it."""
    ledger: list[Any] = field(default_factory=list)
    """Every object read and what became of it (:class:`migrate.ledger.Entry`)."""
    coexistence: list[dict[str, Any]] | None = None
    """Per step, the calls between namespaces checked in the mixed state
    (:func:`migrate.verify.coexist.coexistence`), when computed."""
