"""Checks on a JSON document that ``json.loads`` does not make: keys set twice (it keeps the
last value silently) and where the text nests too deep (it stops with a RecursionError)."""

from __future__ import annotations

import json
import re
from typing import Any

from migrate.errors import InputProblem
from migrate.yamlio import DuplicateKey, json_duplicates

_SPACE_BEFORE_COLON = re.compile(r'"[ \t\r\n]+:')


def no_repeated_keys(text: str, keys: int) -> bool:
    """Whether the JSON text's ``keys`` parsed keys prove that no object repeats a key,
    counted without parsing again.

    Every key written ends with an unescaped quote and a colon, so the text holds at least
    as many ``":`` as keys; a repeated key makes the parse hold fewer keys than that. The
    count of ``":`` is exact when no escaped quote precedes a colon (``json.dumps``,
    ``kubectl get -o json`` without the last-applied annotation); otherwise the quotes
    preceded by an even run of backslashes are counted (inclusion and exclusion over the
    runs, each a substring count). A string value starting with a colon only adds to the
    count (the exact check then parses again, two to three times json.loads' time). Text
    with space between a quote and a colon (no JSON printer kubectl or Python uses writes
    it) proves nothing.
    """
    if _SPACE_BEFORE_COLON.search(text):
        return False
    count = text.count('":')
    if count == keys:
        return True
    run, sign = 1, -1
    while True:
        found = text.count("\\" * run + '":')
        if not found:
            return count == keys
        count += sign * found
        sign, run = -sign, run + 1


def repeated_keys(text: str, source: str,
                  problems: list[InputProblem]) -> tuple[DuplicateKey, ...]:
    """The keys a JSON document sets twice (json.loads keeps the last value of each).

    Parsed again with a hook that sees each object's pairs; when that finds some, their
    paths and lines come from the YAML parser's node tree (JSON is YAML's flow style).
    """
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) != len(items):
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    repeated.append(key)
                seen.add(key)
        return out

    json.loads(text, object_pairs_hook=pairs)
    if not repeated:
        return ()
    located = json_duplicates(text)
    if located:
        return located
    # Not readable as YAML: reported on the file, the document still read.
    for key in sorted(set(repeated)):
        problems.append(InputProblem(
            source, None, None, DuplicateKey((), key, None, "json").message() +
            " (the last value is used, as the API server does)"))
    return ()


def excess_at(text: str, limit: int) -> tuple[int | None, int | None]:
    """Line and column where a JSON text first nests past ``limit`` levels."""
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                at = match.start()
                return text.count("\n", 0, at) + 1, at - (text.rfind("\n", 0, at) + 1) + 1
        elif token in "]}":
            depth -= 1
    return None, None


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
