"""plan.json: the plan for machines (format in docs/runbook-format.md)."""

from __future__ import annotations

import json
import math
from itertools import islice
from json.encoder import encode_basestring
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from migrate.emit.manifests import step_file_names
from migrate.gcpause import no_gc_pauses
from migrate.losses import Loss, Severity
from migrate.plan.commands import Command, render
from migrate.plan.model import Plan, Step


def plan_document(plan: Plan) -> dict[str, Any]:
    """The plan as plain JSON data."""
    steps = list(_steps(plan))
    document = _head(plan)
    document["steps"] = steps
    document.update(_tail(plan, sum(len(s["manifests"]) for s in steps)))
    return document


def _head(plan: Plan) -> dict[str, Any]:
    """The members before ``steps``."""
    return {
        "source": {"mesh": plan.source, "settings": [
            {"name": s.option, "value": s.value, "from": s.origin} for s in plan.settings],
                   **({"input_digest": plan.input_digest} if plan.input_digest else {})},
        "target": {"mesh": plan.target, "version": plan.target_version},
        "order": {
            "groups": plan.groups,
            "dependencies": [{"caller": a, "callee": b, "reasons": r}
                             for a, b, r in plan.dependencies],
            "ingress_namespaces": plan.ingress_namespaces,
            "overridden": plan.order_overridden,
            "override_cost": plan.override_cost,
        },
    }


def _steps(plan: Plan, as_data: bool = True) -> Iterator[dict[str, Any]]:
    """The ``steps`` member, one step at a time; without ``as_data``, each command stays a
    :class:`Command` for :func:`_encode` to write (see :func:`_commands`)."""
    index = {id(loss): i for i, loss in enumerate(plan.losses)}
    for step in plan.steps:
        yield _step(step, index, as_data)


def _commands(commands: list[Command] | list[Command | str], as_data: bool) -> list[Any]:
    """A step's commands as plan.json holds them (:func:`command_json`); written by
    :func:`write_plan`, the records themselves, which :func:`_encode` writes with the same
    bytes one at a time: the cleanup step deletes most source objects, and their JSON objects
    made at once raised a plan's peak memory."""
    return [command_json(c) if as_data or isinstance(c, str) else c for c in commands]


def _step(step: Step, index: dict[int, int], as_data: bool = True) -> dict[str, Any]:
    files, rollback = step_file_names(step)
    folder = f"steps/{step.id}/"
    return {
        "id": step.id,
        "title": step.title,
        "kind": step.kind,
        "namespaces": step.namespaces,
        "summary": step.summary,
        "manifests": [folder + f for f in files],
        "rollback_manifests": [folder + f for f in rollback],
        "commands": _commands(step.commands, as_data),
        "verify": _commands(step.verify, as_data),
        "rollback": _commands(step.rollback, as_data),
        "manual": step.manual,
        "losses": [index[id(loss)] for loss in step.losses if id(loss) in index],
    }


def command_json(command: Command | str) -> dict[str, Any]:
    """One command as plan.json holds it: ``run`` (the text the runbook shows, from
    :func:`~migrate.plan.commands.render`), ``argv`` (one list of words per command of the
    pipeline, to run without a shell) and ``note``; a rollback action that is not a command
    as ``{"manual": text}``."""
    if isinstance(command, str):
        return {"manual": command}
    out: dict[str, Any] = {"run": render(command), "argv": command.argv, "note": command.note}
    if command.sources:
        out["sources"] = list(command.sources)
    return out


def _tail(plan: Plan, manifests: int, losses: Iterable[Any] | None = None) -> dict[str, Any]:
    """The members after ``steps``; ``losses``, when given, replaces the list of losses and
    leaves ``sources`` empty (:func:`write_plan` writes both lists itself, a batch at a
    time)."""
    counts = {s.value: 0 for s in Severity}
    for loss in plan.losses:
        counts[loss.severity.value] += 1
    return {
        "losses": [loss.to_json() for loss in plan.losses] if losses is None else losses,
        "sources": [entry.to_json() for entry in plan.ledger] if losses is None else (),
        "equivalence": plan.equivalence.to_json() if plan.equivalence is not None else None,
        "coexistence": plan.coexistence,
        "summary": {
            "namespaces": sorted(ns for g in plan.groups for ns in g),
            "outside": plan.outside,
            "steps": len(plan.steps),
            "manifests": manifests,
            "losses": counts,
            "input_problems": plan.input_problems,
            "skipped_kinds": plan.skipped,
        },
    }


def dump_plan(plan: Plan) -> str:
    """plan.json text: sorted keys where order carries no meaning, two-space indent."""
    return json.dumps(plan_document(plan), indent=2, ensure_ascii=False) + "\n"


def write_plan(plan: Plan, path: Path) -> None:
    """Write plan.json: the same bytes as :func:`dump_plan`, a step or a batch of losses at
    a time, with the garbage collector paused (see :func:`migrate.gcpause.no_gc_pauses`).

    The whole document held at once (every step's file names, every loss as a dict) was
    about 25 MB at 5,000 services on top of the plan. Here each member, each step and each
    batch of losses is encoded on its own and written, indented as it would be inside the
    whole document (JSON text never holds a raw line break, so indenting is prefixing each
    line).
    """
    counts: list[int] = []

    def steps() -> Iterator[dict[str, Any]]:
        for step in _steps(plan, as_data=False):
            counts.append(len(step["manifests"]))  # for summary.manifests, written after
            yield step

    with no_gc_pauses(), path.open("w", encoding="utf-8") as fh:
        separator = "{\n  "
        for key, value in _head(plan).items():
            fh.write(f"{separator}{json.dumps(key)}: {_indented(value, 1)}")
            separator = ",\n  "
        fh.write(f'{separator}"steps": ')
        _write_list(fh, steps(), batch=1)  # a step can hold most of the plan
        for key, value in _tail(plan, 0, losses=()).items():
            fh.write(f"{separator}{json.dumps(key)}: ")
            if key == "losses":
                _write_losses(fh, plan.losses)
                continue
            if key == "sources":
                # An entry per object read: a batch at a time, as the steps.
                _write_list(fh, (entry.to_json() for entry in plan.ledger), batch=500)
                continue
            if key == "summary":
                value["manifests"] = sum(counts)
            fh.write(_indented(value, 1))
        fh.write("\n}\n")


def _write_losses(fh: IO[str], losses: Iterable[Loss]) -> None:
    """The ``losses`` member: :meth:`Loss.to_json` of each loss as :func:`_encode` writes it
    two levels deep, from one template per loss.

    A plan has over a hundred thousand losses at 20,000 services, all of one shape (seven
    strings and the object's four), and encoding each as a generic dict was a tenth of
    writing plan.json. ``tests/test_plan_memory.py`` holds the bytes to ``json.dumps``.
    """
    e = encode_basestring
    opened = False
    iterator = iter(losses)
    while chunk := list(islice(iterator, 1000)):
        items = [
            f'{{{_LOSS_PAD}"code": {e(loss.code)},{_LOSS_PAD}"severity": '
            f'{e(loss.severity.value)},{_LOSS_PAD}"feature": {e(loss.feature)},{_LOSS_PAD}'
            f'"object": {{{_LOSS_PAD}  "apiVersion": {e(loss.object.api_version)},'
            f'{_LOSS_PAD}  "kind": {e(loss.object.kind)},{_LOSS_PAD}  "namespace": '
            f'{e(loss.object.namespace)},{_LOSS_PAD}  "name": {e(loss.object.name)}'
            f'{_LOSS_PAD}}},{_LOSS_PAD}"path": {e(loss.path)},{_LOSS_PAD}"message": '
            f'{e(loss.message)},{_LOSS_PAD}"action": {e(loss.action)}\n    }}'
            for loss in chunk]
        fh.write(("," if opened else "[") + "\n    " + ",\n    ".join(items))
        opened = True
    fh.write("\n  ]" if opened else "[]")


_LOSS_PAD = "\n      "
"""A line break and the indent of a loss's members in plan.json."""


def _indented(value: Any, level: int) -> str:
    """``value`` as it appears ``level`` levels deep in a document dumped with indent 2
    (``json.dumps(value, indent=2, ensure_ascii=False)``, indented)."""
    out: list[str] = []
    _encode(value, "\n" + "  " * level, out)
    return "".join(out)


def _encode(value: Any, newline: str, out: list[str]) -> None:
    """Append ``value`` as the json module writes it with ``indent=2`` and
    ``ensure_ascii=False``; ``newline`` is a line break plus the indent of its own line.

    The same rules in the same order: strings escaped by the json module's own C helper,
    ``null``/``true``/``false``, ints and floats as ``repr`` (non-finite floats as ``NaN`` and
    ``Infinity``), lists and tuples as arrays, dicts in insertion order with their keys made
    text as json does; anything else is a TypeError. With an indent the json module encodes
    in Python, one generator per level for every piece; most of plan.json is lists of
    strings (commands, file names), which are joined here in one call.
    """
    if isinstance(value, str):
        out.append(encode_basestring(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = newline + "  "
        if all(isinstance(item, str) for item in value):
            out.append(f"[{inner}{(',' + inner).join(map(encode_basestring, value))}{newline}]")
            return
        separator = "[" + inner
        for item in value:
            out.append(separator)
            separator = "," + inner
            _encode(item, inner, out)
        out.append(newline + "]")
    elif isinstance(value, Command):
        out.append(_command_text(value, newline))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = newline + "  "
        separator = "{" + inner
        for key, item in value.items():
            out.append(f"{separator}{encode_basestring(_key(key))}: ")
            separator = "," + inner
            _encode(item, inner, out)
        out.append(newline + "}")
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _command_text(command: Command, newline: str) -> str:
    """:func:`command_json` of a command as :func:`_encode` writes it, from one template: a
    plan has a command per workload and object moved, and the generic path took most of
    writing plan.json's commands."""
    e = encode_basestring
    inner = newline + "  "
    deeper = inner + "  "
    deepest = deeper + "  "
    words = [f"[{deepest}{(',' + deepest).join(map(e, argv))}{deeper}]"
             for argv in command.pipeline]  # never empty (Command checks)
    argv = ("," + deeper).join(words)
    sources = f',{inner}"sources": [{deeper}{("," + deeper).join(map(e, command.sources))}' \
        f'{inner}]' if command.sources else ""
    return (f'{{{inner}"run": {e(render(command))},{inner}"argv": [{deeper}{argv}{inner}],'
            f'{inner}"note": {e(command.note)}{sources}{newline}}}')


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _key(key: object) -> str:
    """A dict key made text as the json module makes it."""
    if isinstance(key, str):
        return key
    if isinstance(key, float):
        return _float(key)
    if key is True or key is False or key is None:
        return {True: "true", False: "false", None: "null"}[key]
    if isinstance(key, int):
        return int.__repr__(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _write_list(fh: IO[str], items: Iterable[Any], batch: int) -> None:
    """A top-level member's list, written ``batch`` items at a time.

    Each ``json.dumps`` call with an indent builds the json module's encoder functions anew,
    and they refer to each other: garbage only the collector frees, and it is paused here.
    Batches keep that to a few dozen calls while holding only a batch's text at once.
    """
    opened = False
    iterator = iter(items)
    while chunk := list(islice(iterator, batch)):
        # "[\n    A,\n    B\n  ]" at this depth: keep the items, join with the last batch.
        fh.write(("," if opened else "[") + _indented(chunk, 1)[1:-4])
        opened = True
    fh.write("\n  ]" if opened else "[]")
