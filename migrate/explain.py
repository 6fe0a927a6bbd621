"""``meshmigrate explain``: one object's story from a written plan's ledger (plan.json
``sources``, :mod:`migrate.ledger`): where it was read, what became of it, and for each of its
fields where it went or which loss covers it."""

from __future__ import annotations

import difflib
from typing import Any, Iterator

from migrate.errors import UsageError
from migrate.ledger import REASONS


def find(document: dict[str, Any], wanted: str) -> list[dict[str, Any]]:
    """The ledger entries ``KIND/NAMESPACE/NAME`` names (``KIND//NAME`` or ``KIND/NAME`` for
    an object without a namespace; the kind in any case). Several when objects of two API
    groups share kind, namespace and name.

    Raises:
        UsageError: the plan has no ledger, the name is malformed, or no entry matches (with
            the closest names).
    """
    entries = document.get("sources")
    if not isinstance(entries, list):
        raise UsageError("the plan has no ledger (plan.json sources): it was written by an "
                         "older meshmigrate; plan again")
    parts = wanted.split("/")
    if len(parts) == 2:
        parts = [parts[0], "", parts[1]]
    if len(parts) != 3 or not parts[0] or not parts[2]:
        raise UsageError(f"{wanted!r}: name an object as KIND/NAMESPACE/NAME (KIND//NAME for "
                         "one without a namespace)")
    kind, namespace, name = parts
    found = [e for e in entries if e.get("kind", "").lower() == kind.lower()
             and e.get("namespace") == namespace and e.get("name") == name]
    if not found:
        known = sorted({_name(e) for e in entries if e.get("kind")})
        close = difflib.get_close_matches(wanted, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(f"{wanted}: not an object of this plan's input{hint}")
    return found


def _name(entry: dict[str, Any]) -> str:
    ns = entry.get("namespace") or ""
    return f"{entry['kind']}/{ns}/{entry['name']}" if ns else f"{entry['kind']}//{entry['name']}"


def story(document: dict[str, Any], entry: dict[str, Any]) -> Iterator[str]:
    """The lines that tell one entry's story."""
    losses = document.get("losses") or []
    read = entry.get("read") or {}
    where = read.get("file", read.get("origin", ""))
    if read.get("line"):
        where += f":{read['line']}"
    yield f"{_name(entry)} ({entry.get('apiVersion', '')}), read from {where}"
    yield f"disposition: {entry['disposition']}"
    for copy in entry.get("copies") or []:
        yield f"  another copy at {copy} was not planned"
    for problem in entry.get("problems") or []:
        yield f"  refused: {problem}"
    for code in entry.get("reasons") or []:
        yield f"  {code}: {REASONS.get(code, '')}"
    if entry.get("targets"):
        yield "target objects:"
        yield from (f"  {t['manifest']}" for t in entry["targets"])
    if entry.get("rewritten"):
        yield "rewritten by the plan (the object itself, not a target object):"
        yield from (f"  {t['manifest']}" for t in entry["rewritten"])
    if entry.get("commands"):
        yield "commands:"
        yield from (f"  step {c['step']}: {c['run']}" for c in entry["commands"])
    if entry.get("losses"):
        yield "losses:"
        for i in entry["losses"]:
            loss = losses[i]
            yield f"  [{i}] {loss['code']} ({loss['severity']}) at {loss['path']}: " \
                  f"{loss['message']}"
    fields = entry.get("fields")
    if fields:
        yield "fields:"
        for path, covering in fields.items():
            yield f"  {path}: {_field(entry, covering, losses)}"


def _field(entry: dict[str, Any], covering: list[int], losses: list[dict[str, Any]]) -> str:
    """Where one field went: the losses covering it, else what the disposition says."""
    if covering:
        return "; ".join(f"[{i}] {losses[i]['code']}" for i in covering)
    if entry["disposition"] == "converted":
        return "carried into the target objects above"
    if entry["disposition"] == "not-needed":
        return "not needed (" + ", ".join(entry.get("reasons") or []) + ")"
    return entry["disposition"]


def explain(document: dict[str, Any], wanted: str) -> str:
    """The story of every entry ``wanted`` names, as text."""
    return "\n\n".join("\n".join(story(document, e)) for e in find(document, wanted)) + "\n"
