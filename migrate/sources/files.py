"""The file source: files, folders (recursive), ``-`` for stdin; multi-document YAML, JSON
and ``kind: List`` dumps as ``kubectl get -o yaml`` prints them.

Bad input never stops the run: each unusable document becomes an
:class:`~migrate.errors.InputProblem` with its file and line, and every other document is
still returned.
"""

from __future__ import annotations

import json
import os
import re
import sys
from bisect import bisect_left
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import IO, Any, Iterable

from migrate.depth import MAX_DEPTH, TooDeep, count_keys, is_too_deep, too_deep_message
from migrate.errors import InputProblem, SourceError
from migrate.sources.jsonchecks import excess_at, no_repeated_keys, repeated_keys
from migrate.sources.model import RawObject, RepeatedKey, SourceResult
from migrate.yamlio import (
    Document,
    DocumentError,
    DuplicateKey,
    document_spans,
    load_documents,
)

SUFFIXES = (".yaml", ".yml", ".json")

# The API server refuses request bodies over 3 MiB (etcd stores at most ~1.5 MiB per object):
# kubernetes/kubernetes#105863, "Request entity too large: limit is 3145728". A bigger
# document can only be a dump (``kind: List``); anything else is refused before it is parsed,
# which keeps time and memory bounded however large the file is.
MAX_OBJECT_CHARS = 3 * 1024 * 1024
_LIST_HEAD = re.compile(r"^items:", re.MULTILINE)


def expand_paths(paths: Iterable[str]) -> list[str]:
    """Files named directly, plus every .yaml/.yml/.json below each folder, sorted.

    Raises:
        SourceError: a path does not exist.
    """
    found: list[str] = []
    for raw in paths:
        if raw == "-":
            found.append("-")
            continue
        path = Path(raw)
        if path.is_dir():
            found.extend(
                str(p) for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix.lower() in SUFFIXES
            )
        elif path.is_file():
            found.append(str(path))
        else:
            raise SourceError(f"{raw}: no such file or directory")
    return found


def read_files(paths: Iterable[str], stdin: IO[bytes] | None = None) -> SourceResult:
    """Read every document of every path into one :class:`SourceResult`."""
    result = SourceResult()
    for path in expand_paths(paths):
        if path == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            _read_bytes(stream.read(), "<stdin>", result)
        else:
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                result.problems.append(
                    InputProblem(path, None, None, f"cannot read: {exc.strerror}"))
                continue
            _read_bytes(data, path, result)
    return result


def _read_bytes(data: bytes, source: str, result: SourceResult) -> None:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        _read_undecodable(data, source, result)
        return
    if (source.endswith(".json") or text.lstrip().startswith(("{", "["))) and \
            _read_json(text, source, result):
        return
    if len(text) > MAX_OBJECT_CHARS and _has_oversized_document(text):
        # Only a stream holding an oversized document is read chunk by chunk (slower): the
        # others, however large, take the one-pass parse below.
        _read_chunks(text, source, result)
        return
    # The C parser reads the bytes as they are (known to be UTF-8 now); given the text, it
    # would first encode a copy of the whole stream: two copies fewer held while parsing.
    del text
    try:
        for doc in load_documents(data):
            _add_document(doc, source, result)
    except DocumentError:
        _read_chunks(data.decode("utf-8-sig"), source, result)


def _read_json(text: str, source: str, result: SourceResult) -> bool:
    """Read a stream that looks like one JSON document; False when it is not plain JSON
    after all (YAML flow style, JSON lines, several documents), for the YAML path."""
    try:
        parsed = json.loads(text)
    except RecursionError:
        # json.loads recurses once per level and gives up near Python's frame limit.
        if _SEPARATOR_LINE.search(text):
            return False  # several documents: the YAML path spares the others
        result.problems.append(InputProblem(source, *excess_at(text, MAX_DEPTH),
                                            too_deep_message()))
        return True
    except ValueError:
        return False  # not plain JSON after all (YAML flow style or JSON lines)
    if len(text) > MAX_OBJECT_CHARS and not _is_list(parsed):
        result.problems.append(_too_large(source, 1, len(text)))
        return True
    duplicates: tuple[DuplicateKey, ...] = ()
    # One walk checks the depth (a List's items sit two levels down) and counts the keys.
    limit = MAX_DEPTH + 2 if _is_list(parsed) else MAX_DEPTH
    try:
        keys = count_keys(parsed, limit) if isinstance(parsed, (dict, list)) else 0
    except TooDeep:
        keys = None  # _add_object refuses what nests too deep; no key count
    if keys is not None and not no_repeated_keys(text, keys):
        duplicates = repeated_keys(text, source, result.problems)
    _add_document(Document(parsed, 1, duplicates), source, result,
                  text=text if keys is None else None)
    return True


_SEPARATOR_LINE = re.compile(r"^---(?:[ \t].*)?$", re.MULTILINE)


def _has_oversized_document(text: str) -> bool:
    """Whether a ``---`` chunk of the stream is larger than any object and not a list dump.

    Measured from the separators' offsets: copying every chunk out of a large stream to
    measure it cost time and, for a moment, a second copy of the whole stream.
    """
    for start, end in document_spans(text):
        # _LIST_HEAD anchors at line starts; every chunk starts at one (or at offset 0).
        if end - start > MAX_OBJECT_CHARS and not _LIST_HEAD.search(text, start, end) and \
                text[start:end].strip():
            return True
    return False


@dataclass
class _BadBytes:
    """Where a stream that is not UTF-8 has its undecodable bytes.

    The stream is read with each such byte replaced by ``marker``, a private-use character
    the stream does not hold: a document (or a List item) whose data holds the marker is
    refused, and one that legitimately holds U+FFFD, or anything else, is kept.
    """

    text: str
    """The stream decoded with ``surrogateescape`` (a bad byte ``b`` is ``\udc00 + b``)."""
    positions: list[int]
    marker: str

    def where(self, position: int) -> tuple[int, int, str]:
        """Line, column and problem text for the bad byte at ``position``."""
        line = self.text.count("\n", 0, position) + 1
        column = position - (self.text.rfind("\n", 0, position) + 1) + 1
        return line, column, "not UTF-8 text (byte 0x%02x)" % (ord(self.text[position]) - 0xDC00)


_SURROGATE = re.compile("[\udc80-\udcff]")
# Characters no text means anything by, to mark undecodable bytes with: the Basic
# Multilingual Plane's private use area, then planes 15 and 16 (YAML allows them all).
_PRIVATE_USE = (range(0xE000, 0xF900), range(0xF0000, 0xFFFFE), range(0x100000, 0x10FFFE))


def _read_undecodable(data: bytes, source: str, result: SourceResult) -> None:
    """Read a stream with bytes that are not UTF-8: only what holds them is refused."""
    text = data.decode("utf-8-sig", errors="surrogateescape")
    marker = next((chr(c) for c in chain.from_iterable(_PRIVATE_USE) if chr(c) not in text),
                  None)
    positions = [m.start() for m in _SURROGATE.finditer(text)]
    if marker is None:  # the stream holds every private-use character: refused whole
        bad = _BadBytes(text, positions, "")
        line, column, problem = bad.where(positions[0])
        result.problems.append(InputProblem(source, line, column, f"{problem}; file not read"))
        return
    bad = _BadBytes(text, positions, marker)
    marked = text.translate({0xDC00 + b: marker for b in range(0x80, 0x100)})
    _read_chunks(marked, source, result, bad)


def _read_chunks(text: str, source: str, result: SourceResult,
                 bad: _BadBytes | None = None) -> None:
    """Parse a stream one ``---`` chunk at a time so one bad document spares the others."""
    # Documents already added from this source before the error would be added twice, and
    # so would the problems already reported for them.
    result.objects[:] = [o for o in result.objects if o.source != source]
    result.problems[:] = [p for p in result.problems if p.source != source]
    lines, counted = 0, 0
    for start, end in document_spans(text):
        lines += text.count("\n", counted, start)
        counted = start
        chunk = text[start:end]
        if not chunk.strip():
            continue
        flagged = bad.positions[bisect_left(bad.positions, start):
                                bisect_left(bad.positions, end)] if bad else []
        if len(chunk) > MAX_OBJECT_CHARS and not _LIST_HEAD.search(chunk):
            result.problems.append(_too_large(source, lines + 1, len(chunk)))
            continue
        try:
            docs = list(load_documents(chunk, line_offset=lines))
        except DocumentError as exc:
            if flagged:  # the undecodable bytes are the likelier cause
                line, column, problem = bad.where(flagged[0])  # type: ignore[union-attr]
                result.problems.append(InputProblem(source, line, column,
                                                    f"{problem}; document not read"))
            else:
                result.problems.append(InputProblem(source, exc.line, exc.column,
                                                    exc.message))
            continue
        for doc in docs:
            _add_document(doc, source, result, bad=bad, flagged=flagged)


def _is_list(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("items"), list)


def _too_large(source: str, line: int, size: int) -> InputProblem:
    return InputProblem(
        source, line, None,
        f"document of {size / 1024 / 1024:.1f} MiB is larger than any Kubernetes object can be "
        f"({MAX_OBJECT_CHARS // 1024 // 1024} MiB, the API server's request limit); not read")


def _add_document(doc: Document, source: str, result: SourceResult, text: str | None = None,
                  bad: _BadBytes | None = None, flagged: list[int] | None = None) -> None:
    """Add a document's object, or each item of a List, or report why not.

    ``text`` is a JSON document's text when it nests too deep somewhere (each object is then
    checked, and refused with where the text nests too deep); ``bad`` and
    ``flagged`` say where the document's undecodable bytes are (:func:`_read_undecodable`).
    """
    data, line = doc.data, doc.line
    if data is None:
        return
    if not isinstance(data, dict):
        result.problems.append(InputProblem(
            source, line, None, f"expected a Kubernetes object (a mapping), found {_type(data)}"))
        return
    marks = _Marks(bad, flagged or [])
    if data.get("kind") == "List" or (
        isinstance(data.get("items"), list) and str(data.get("kind", "")).endswith("List")
    ):
        items = data.get("items")
        if not isinstance(items, list):
            result.problems.append(
                InputProblem(source, line, None, "kind: List without an items list"))
            return
        owned: dict[int, list[DuplicateKey]] = {}
        for dup in doc.duplicates:
            if len(dup.path) >= 2 and dup.path[0] == "items" and isinstance(dup.path[1], int):
                owned.setdefault(dup.path[1], []).append(dup)
            else:  # the List's own keys: no object to carry a loss
                result.problems.append(InputProblem(
                    source, dup.line, None, f"{dup.message()} (the last value is used, as "
                    "the API server does)"))
        for index, item in enumerate(items):
            if marks.refuse(item, source, result, f"object items[{index}]"):
                continue
            _add_object(item, source, line, result, f"items[{index}]",
                        tuple(owned.get(index, ())), 2, text)
        return
    if marks.refuse(data, source, result, ""):
        return
    _add_object(data, source, line, result, None, doc.duplicates, 0, text)


class _Marks:
    """The undecodable bytes of one document, handed to its objects in text order."""

    def __init__(self, bad: _BadBytes | None, flagged: list[int]) -> None:
        self.bad = bad
        self.flagged = flagged
        self.used = 0

    def refuse(self, data: Any, source: str, result: SourceResult, where: str) -> bool:
        """Report and refuse ``data`` when it holds an undecodable byte."""
        if self.bad is None or not self.flagged:
            return False
        held = _count_marker(data, self.bad.marker)
        if not held:
            return False
        # Objects come in text order and so do their bad bytes: this object's first one is
        # the one after those of the objects before it (comments hold none of the data's).
        line, column, problem = self.bad.where(self.flagged[min(self.used,
                                                                len(self.flagged) - 1)])
        self.used += held
        result.problems.append(InputProblem(source, line, column,
                                            f"{problem}; {where or 'document'} not read"))
        return True


def _count_marker(value: Any, marker: str) -> int:
    """How many times ``marker`` occurs in a parsed value's strings (keys included)."""
    if isinstance(value, str):
        return value.count(marker)
    if isinstance(value, dict):
        return sum(_count_marker(k, marker) + _count_marker(v, marker) for k, v in value.items())
    if isinstance(value, list):
        return sum(_count_marker(v, marker) for v in value)
    return 0


def _add_object(data: Any, source: str, line: int, result: SourceResult, item: str | None,
                duplicates: tuple[DuplicateKey, ...] = (), skip: int = 0,
                text: str | None = None) -> None:
    where = f" ({item})" if item else ""
    if not isinstance(data, dict):
        result.problems.append(InputProblem(
            source, line, None, f"expected a Kubernetes object{where}, found {_type(data)}"))
        return
    if text is not None and is_too_deep(data):
        # JSON (a YAML document's depth is checked as it is parsed): the position is where
        # the text first nests too deep for a document of this shape.
        at_line, column = excess_at(text, MAX_DEPTH + skip)
        result.problems.append(InputProblem(source, at_line or line, column,
                                            f"{too_deep_message()}{where}"))
        return
    api, kind = data.get("apiVersion"), data.get("kind")
    if not isinstance(api, str) or not api or not isinstance(kind, str) or not kind:
        result.problems.append(InputProblem(
            source, line, None, f"object{where} has no apiVersion or kind (both must be strings)"))
        return
    meta = data.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if (not isinstance(name, str) or not name) and not _unnamed_ok(api, kind):
        shown = "missing" if name is None else f"{_type(name)} {name!r}"
        result.problems.append(InputProblem(
            source, line, None,
            f"{kind}{where}: metadata.name must be a non-empty string ({shown})"))
        return
    namespace = meta.get("namespace") if isinstance(meta, dict) else None
    if namespace is not None and not isinstance(namespace, str):
        result.problems.append(InputProblem(
            source, line, None, f"{kind} {name}{where}: metadata.namespace must be a string"))
        return
    if kind == "Secret":
        # Never keep a Secret's data in memory longer than needed, never echo it.
        result.skipped[f"{api}/{kind}"] = result.skipped.get(f"{api}/{kind}", 0) + 1
        return
    repeated = tuple(RepeatedKey(d.field_path(skip), d.message(), d.line) for d in duplicates)
    result.objects.append(RawObject(data, source, line, repeated))


def _unnamed_ok(api: str, kind: str) -> bool:
    """An IstioOperator file needs no name: istioctl install -f reads it as install
    configuration, never as a cluster object (its name defaults to installed-state)."""
    return kind == "IstioOperator" and api.startswith("install.istio.io/")


def _type(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", int: "a number",
            float: "a number", bool: "a boolean"}.get(type(value), type(value).__name__)


def relative(path: str) -> str:
    """A path as shown to users: relative to the working directory when below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel
