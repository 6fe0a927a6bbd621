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
from pathlib import Path
from typing import IO, Any, Iterable

from migrate.errors import InputProblem, SourceError
from migrate.sources.model import RawObject, SourceResult
from migrate.yamlio import DocumentError, document_spans, load_documents, split_documents

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
    except UnicodeDecodeError as exc:
        # Salvage the documents that are valid UTF-8; report the first bad byte's place.
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        result.problems.append(InputProblem(source, line, column,
                                            "not UTF-8 text (byte 0x%02x)" % data[exc.start]))
        text = data.decode("utf-8", errors="replace")
        _read_chunks(text, source, result, reject_replacement=True)
        return
    if source.endswith(".json") or text.lstrip().startswith(("{", "[")):
        try:
            parsed = json.loads(text)
        except ValueError:
            pass  # not plain JSON after all (YAML flow style or JSON lines): parse as YAML
        else:
            if len(text) > MAX_OBJECT_CHARS and not _is_list(parsed):
                result.problems.append(_too_large(source, 1, len(text)))
            else:
                _add_document(parsed, source, 1, result)
            return
    if len(text) > MAX_OBJECT_CHARS and _has_oversized_document(text):
        # Only a stream holding an oversized document is read chunk by chunk (slower): the
        # others, however large, take the one-pass parse below.
        _read_chunks(text, source, result, reject_replacement=False)
        return
    # The C parser reads the bytes as they are (known to be UTF-8 now); given the text, it
    # would first encode a copy of the whole stream: two copies fewer held while parsing.
    del text
    try:
        for doc in load_documents(data):
            _add_document(doc.data, source, doc.line, result)
    except DocumentError:
        _read_chunks(data.decode("utf-8-sig"), source, result, reject_replacement=False)


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


def _read_chunks(text: str, source: str, result: SourceResult, reject_replacement: bool) -> None:
    """Parse a stream one ``---`` chunk at a time so one bad document spares the others."""
    # Documents already added from this source before the error would be added twice, and
    # so would the problems already reported for them.
    result.objects[:] = [o for o in result.objects if o.source != source]
    result.problems[:] = [p for p in result.problems if p.source != source or reject_replacement]
    for offset, chunk in split_documents(text):
        if reject_replacement and "\ufffd" in chunk:
            continue  # already reported as not UTF-8
        if len(chunk) > MAX_OBJECT_CHARS and not _LIST_HEAD.search(chunk):
            result.problems.append(_too_large(source, offset + 1, len(chunk)))
            continue
        try:
            for doc in load_documents(chunk, line_offset=offset):
                _add_document(doc.data, source, doc.line, result)
        except DocumentError as exc:
            result.problems.append(InputProblem(source, exc.line, exc.column, exc.message))


def _is_list(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("items"), list)


def _too_large(source: str, line: int, size: int) -> InputProblem:
    return InputProblem(
        source, line, None,
        f"document of {size / 1024 / 1024:.1f} MiB is larger than any Kubernetes object can be "
        f"({MAX_OBJECT_CHARS // 1024 // 1024} MiB, the API server's request limit); not read")


def _add_document(data: Any, source: str, line: int, result: SourceResult) -> None:
    if data is None:
        return
    if not isinstance(data, dict):
        result.problems.append(InputProblem(
            source, line, None, f"expected a Kubernetes object (a mapping), found {_type(data)}"))
        return
    if data.get("kind") == "List" or (
        isinstance(data.get("items"), list) and str(data.get("kind", "")).endswith("List")
    ):
        items = data.get("items")
        if not isinstance(items, list):
            result.problems.append(
                InputProblem(source, line, None, "kind: List without an items list"))
            return
        for index, item in enumerate(items):
            _add_object(item, source, line, result, f"items[{index}]")
        return
    _add_object(data, source, line, result, None)


def _add_object(data: Any, source: str, line: int, result: SourceResult, item: str | None) -> None:
    where = f" ({item})" if item else ""
    if not isinstance(data, dict):
        result.problems.append(InputProblem(
            source, line, None, f"expected a Kubernetes object{where}, found {_type(data)}"))
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
    result.objects.append(RawObject(data, source, line))


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
