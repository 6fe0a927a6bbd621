"""YAML in and out: fast, line-aware loading and deterministic, parser-safe dumping.

Loading uses PyYAML's C loader when libyaml is present, and builds plain documents (maps,
lists, scalars) itself rather than through PyYAML's generic constructor, with the same
result. Each document keeps the line it starts on, so that every problem can be reported as
``file:line``. Dumping sorts nothing that the caller ordered on purpose, puts ``apiVersion,
kind, metadata, spec`` first, and quotes every string another YAML parser could read as
something else (YAML 1.1 booleans such as ``y``/``on``, dates, YAML 1.2 numbers such as
``1e3`` or ``0o17``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator

import yaml

from migrate.depth import MAX_DEPTH, too_deep_message

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _FastLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader with a faster implicit tag resolver (same tags).

    The C parser calls the Python resolver for every scalar: over a million calls for a
    5,000-service dump, about a third of reading it. SafeLoader has no path resolvers and no
    wildcard implicit resolvers, so a tag depends only on the scalar's text and whether it
    was plain: it is found once per distinct plain text of the stream (a dump repeats most).
    """

    def __init__(self, stream: Any) -> None:
        self._plain_tags: dict[str, str] = {}
        super().__init__(stream)

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            if not implicit[0]:
                return _STR
            tag = self._plain_tags.get(value)
            if tag is None:
                tag = self._plain_tags[value] = super().resolve(kind, value, implicit)
            return tag
        return _SEQ if kind is yaml.SequenceNode else _MAP

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        """No path resolvers: nothing to track (called for every node)."""

    def ascend_resolver(self) -> None:
        """No path resolvers: nothing to track (called for every node)."""


# The shortcuts hold only while SafeLoader has no path or wildcard resolvers.
_Loader: type = _FastLoader if not _BaseLoader.yaml_path_resolvers and \
    None not in _BaseLoader.yaml_implicit_resolvers else _BaseLoader
_BaseDumper: type = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# Strings that some YAML parser (1.1 or 1.2, strict or lenient) reads as non-strings.
_AMBIGUOUS = re.compile(
    r"""^(?:
        [yYnN]|yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF
        |null|Null|NULL|~|
        |[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
        |[-+]?0[xX][0-9a-fA-F_]+|[-+]?0[oO]?[0-7_]+|[-+]?0[bB][01_]+
        |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)
        |[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?
        |[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt ].*)?
    )$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class DuplicateKey:
    """A key a mapping of a document sets twice; the last value is the one kept."""

    path: tuple[str | int, ...]
    """Where the mapping is in the document (keys and list indexes)."""
    key: Any
    line: int | None
    """1-based line of the repeated key, when known."""
    syntax: str = "yaml"
    """``yaml`` or ``json``: which decoder's strict wording :meth:`message` uses."""

    def field_path(self, skip: int = 0) -> str:
        """``spec.rules[0].action``: the repeated field, without the first ``skip`` parts."""
        out = ""
        for part in (*self.path[skip:], self.key):
            if isinstance(part, int) and not isinstance(part, bool):
                out += f"[{part}]"
            else:
                out += f".{part}" if out else str(part)
        return out

    def message(self) -> str:
        """The error strict decoding gives for it.

        YAML: sigs.k8s.io/yaml ``YAMLToJSONStrict`` (goyaml.v2 ``UnmarshalStrict``), which the
        API server runs on a YAML body under ``fieldValidation=Strict`` (kubernetes/kubernetes
        staging/src/k8s.io/apimachinery/pkg/runtime/serializer/json/json.go, ``unmarshal``):
        ``error converting YAML to JSON: yaml: unmarshal errors:`` then ``line N: key "x"
        already set in map``. JSON: sigs.k8s.io/json ``UnmarshalStrict``
        (internal/golang/encoding/json/decode.go, ``objectInterface``): ``json: duplicate
        field "x"``.
        """
        if self.syntax == "json":
            return f"json: duplicate field {_go_quote(self.key)}"
        where = f"line {self.line}: " if self.line is not None else ""
        return ("error converting YAML to JSON: yaml: unmarshal errors: "
                f"{where}key {_go_quote(self.key)} already set in map")


def _go_quote(key: Any) -> str:
    """A key as Go's ``%#v`` prints it: strings quoted, other scalars bare."""
    if isinstance(key, str):
        return json.dumps(key, ensure_ascii=False)
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


@dataclass(frozen=True)
class Document:
    """One parsed YAML document and where it starts."""

    data: Any
    line: int
    """1-based line of the document's first node."""
    duplicates: tuple[DuplicateKey, ...] = ()
    """Keys set twice in one mapping (the data holds the last value of each)."""


class DocumentError(Exception):
    """A document that cannot be parsed; carries the 1-based line and column."""

    def __init__(self, message: str, line: int | None, column: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


# Aliases can make a small document expand without bound ("billion laughs"); every later
# stage walks the expanded tree, so a document that expands past this many nodes is refused.
MAX_EXPANDED_NODES = 2_000_000
_ALIAS = re.compile(r"(?:^|[\s\[{,:-])\*[^\s,\]}]+")
_ALIAS_BYTES = re.compile(_ALIAS.pattern.encode())


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes in the document once aliases are expanded (memoized, so linear in the input)."""
    known = memo.get(id(node))
    if known is not None:
        return known
    memo[id(node)] = 1  # a recursive alias counts once instead of looping
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(v, memo) for v in node.value)
    else:
        size = 1
    memo[id(node)] = size
    return size


_TAG = "tag:yaml.org,2002:"
_STR, _MAP, _SEQ = f"{_TAG}str", f"{_TAG}map", f"{_TAG}seq"
# Scalar tags whose SafeConstructor method is a plain function of the node.
_SCALARS = frozenset(f"{_TAG}{t}" for t in ("null", "bool", "int", "float", "timestamp",
                                           "binary"))
# The fast construction handles every depth a document may have; a deeper one is left to
# the fallback, which refuses it (_too_deep_node) before PyYAML's constructor recurses.
_MAX_FAST_DEPTH = MAX_DEPTH - 1
_MERGE = f"{_TAG}merge"


class _Unusual(Exception):
    """A node the fast construction leaves to PyYAML's own constructor."""


def _construct(loader: Any, node: yaml.Node, seen: set[int], keys: dict[str, str],
               repeated: list[yaml.Node], depth: int = 0) -> Any:
    """What PyYAML's SafeConstructor builds from ``node``, for plain documents.

    PyYAML's constructor is Python even under the C loader, and dispatches every node
    through generic code (a generator per mapping): about a third of reading a YAML dump.
    Plain mappings, sequences and scalars, which is what Kubernetes manifests are, are built
    here directly: scalars by SafeConstructor's own methods, so values are the same. Anything
    else raises :class:`_Unusual` and the caller builds the document the usual way: other tags
    (``!!set``, ``!!omap``, unknown ones), merge keys (``<<``), non-scalar keys, a node reached
    twice (an alias), nesting deeper than :data:`~migrate.depth.MAX_DEPTH` (which the
    caller refuses). A mapping that sets a key twice keeps the last value, as PyYAML's
    constructor does, and is appended to ``repeated``: found by comparing sizes, so a
    document without one pays a length test per mapping.

    String keys are shared through ``keys`` across the stream, as ``json.loads`` shares them
    within a document: a dump repeats a few hundred keys millions of times, and one string
    each was about a tenth of the parsed dump's memory.
    """
    cls, tag = node.__class__, node.tag
    if cls is yaml.ScalarNode:
        if tag == _STR:
            return node.value
        if tag in _SCALARS:
            return loader.yaml_constructors[tag](loader, node)
        raise _Unusual
    if depth > _MAX_FAST_DEPTH or id(node) in seen:
        raise _Unusual
    seen.add(id(node))
    scalar = yaml.ScalarNode
    if cls is yaml.MappingNode and tag == _MAP:
        out = {}
        for key_node, value_node in node.value:
            if key_node.__class__ is not scalar:
                raise _Unusual  # unhashable, or a merge of several mappings
            if key_node.tag == _STR:
                key = key_node.value
                key = keys.setdefault(key, key)
            else:
                key = _construct(loader, key_node, seen, keys, repeated)
            # Most values are plain strings: taken here rather than through a call each.
            if value_node.__class__ is scalar and value_node.tag == _STR:
                out[key] = value_node.value
            else:
                out[key] = _construct(loader, value_node, seen, keys, repeated, depth + 1)
        if len(out) != len(node.value):
            repeated.append(node)
        return out
    if cls is yaml.SequenceNode and tag == _SEQ:
        return [item.value if item.__class__ is scalar and item.tag == _STR
                else _construct(loader, item, seen, keys, repeated, depth + 1)
                for item in node.value]
    raise _Unusual


def _document(loader: Any, node: yaml.Node, keys: dict[str, str], line_offset: int = 0,
              duplicates: list[DuplicateKey] | None = None) -> Any:
    """The document's data, as ``loader.construct_document(node)`` makes it; the keys its
    mappings set twice are appended to ``duplicates``.

    Raises:
        DocumentError: the document nests deeper than :data:`~migrate.depth.MAX_DEPTH`.
    """
    repeated: list[yaml.Node] = []
    try:
        data = _construct(loader, node, set(), keys, repeated)
    except _Unusual:
        deep = _too_deep_node(node)
        if deep is not None:
            raise DocumentError(too_deep_message(), deep.start_mark.line + 1 + line_offset,
                                deep.start_mark.column + 1) from None
        data = loader.construct_document(node)
        repeated.append(node)  # not known without looking: PyYAML keeps the last silently
    if repeated and duplicates is not None:
        duplicates.extend(node_duplicates(loader, node, line_offset))
    return data


def _too_deep_node(root: yaml.Node, limit: int = MAX_DEPTH) -> yaml.Node | None:
    """The first node nested past ``limit`` levels (aliases followed), or None.

    Level by level rather than recursively, so any depth is safe; a node reached twice in
    one level (an alias) is visited once there, and an alias to an enclosing node (a
    cycle) never ends, so it is reported as too deep.
    """
    level = [root]
    depth = 1
    while level:
        if depth > limit:
            return level[0]
        following: dict[int, yaml.Node] = {}
        for node in level:
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    for child in (key, value):
                        if not isinstance(child, yaml.ScalarNode):
                            following.setdefault(id(child), child)
            elif isinstance(node, yaml.SequenceNode):
                for child in node.value:
                    if not isinstance(child, yaml.ScalarNode):
                        following.setdefault(id(child), child)
        level = list(following.values())
        depth += 1
    return None


def node_duplicates(loader: Any, root: yaml.Node, line_offset: int = 0,
                    syntax: str = "yaml") -> tuple[DuplicateKey, ...]:
    """Every key a mapping of the node tree sets twice, in line order.

    Scalar keys are compared as constructed values (``1`` and ``01`` are one key, as they are
    in the data); merge keys (``<<``) are not keys of their own. A node reached through an
    alias is reported once.
    """
    out: list[DuplicateKey] = []
    stack: list[tuple[yaml.Node, tuple[str | int, ...]]] = [(root, ())]
    visited: set[int] = set()
    while stack:
        node, path = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE:
                    continue
                try:
                    key = key_node.value if key_node.tag == _STR else \
                        loader.construct_object(key_node)
                    repeated = key in seen
                except (TypeError, yaml.YAMLError):
                    continue
                if repeated:
                    out.append(DuplicateKey(path, key, key_node.start_mark.line + 1 + line_offset,
                                            syntax))
                seen.add(key)
                stack.append((value_node, (*path, key if isinstance(key, (str, int)) else
                                           str(key))))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, i)) for i, item in enumerate(node.value))
    return tuple(sorted(out, key=lambda d: (d.line or 0, d.field_path())))


def json_duplicates(text: str) -> tuple[DuplicateKey, ...] | None:
    """The keys a JSON text's objects set twice, with lines, or None when it cannot tell.

    Lines come from the YAML parser's node tree (JSON is YAML's flow style); a text it does
    not accept as YAML gives None and the caller reports what it knows without lines.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None or _too_deep_node(node) is not None:
            return None
        return node_duplicates(loader, node, syntax="json")
    except (yaml.YAMLError, ValueError, TypeError):
        return None
    finally:
        loader.dispose()


def load_documents(text: str | bytes, line_offset: int = 0) -> Iterator[Document]:
    """Yield each document of a YAML stream with its starting line.

    ``text`` may be UTF-8 bytes (checked to decode beforehand): the C parser reads them as
    they are, where a ``str`` is first encoded into a copy of the whole stream.

    Raises:
        DocumentError: at the first document that does not parse, or whose aliases expand
            past :data:`MAX_EXPANDED_NODES`.
    """
    loader = _Loader(text)
    # Only pay for the check when needed; an alias needs a "*", and looking for one character
    # is far cheaper than the pattern's scan of a stream that has none.
    if isinstance(text, bytes):
        check_aliases = b"*" in text and _ALIAS_BYTES.search(text) is not None
    else:
        check_aliases = "*" in text and _ALIAS.search(text) is not None
    keys: dict[str, str] = {}
    try:
        while loader.check_node():
            node = loader.get_node()
            # Depth first: _expanded_size recurses once per level.
            deep = _too_deep_node(node) if check_aliases else None
            if deep is not None:
                raise DocumentError(too_deep_message(), deep.start_mark.line + 1 + line_offset,
                                    deep.start_mark.column + 1)
            if check_aliases and _expanded_size(node, {}) > MAX_EXPANDED_NODES:
                raise DocumentError(
                    f"YAML aliases expand this document past {MAX_EXPANDED_NODES:,} nodes "
                    "(an alias bomb?); not read", node.start_mark.line + 1 + line_offset,
                    node.start_mark.column + 1)
            duplicates: list[DuplicateKey] = []
            data = _document(loader, node, keys, line_offset, duplicates)
            yield Document(data, node.start_mark.line + 1 + line_offset, tuple(duplicates))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 + line_offset if mark else None
        column = mark.column + 1 if mark else None
        problem = exc.problem or str(exc)
        if "exceeded maximum nesting depth" in problem:
            # libyaml's own limit (1,000 levels) stops the parse before any node is built.
            raise DocumentError(too_deep_message(), line, column) from None
        if exc.context:
            problem = f"{problem} ({exc.context})"
        raise DocumentError(f"malformed YAML: {problem}", line, column) from None
    except yaml.YAMLError as exc:
        raise DocumentError(f"malformed YAML: {exc}", None, None) from None
    except (ValueError, TypeError, RecursionError) as exc:
        # Constructors raise these for values such as unhashable keys or deep nesting.
        raise DocumentError(f"unusable YAML value: {exc}", None, None) from None
    finally:
        loader.dispose()


_SEPARATOR = re.compile(r"^(?:---|\.\.\.)(?:[ \t].*)?$", re.MULTILINE)


def document_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) offsets of the chunks :func:`split_documents` cuts, blank ones included,
    without copying them out of ``text``."""
    start = 0
    for match in _SEPARATOR.finditer(text):
        yield start, match.start()
        start = match.end() + 1
    yield start, len(text)


def split_documents(text: str) -> list[tuple[int, str]]:
    """Split a stream at ``---`` / ``...`` lines: (0-based starting line, chunk) pairs.

    Used only after a parse error, to salvage every other document of the file.
    """
    chunks: list[tuple[int, str]] = []
    start = 0
    start_line = 0
    counted, lines = 0, 0  # newlines before ``counted``: counted once, not from 0 each time
    for match in _SEPARATOR.finditer(text):
        chunks.append((start_line, text[start : match.start()]))
        lines += text.count("\n", counted, match.end())
        counted = match.end()
        start_line = lines + 1
        start = match.end() + 1
    chunks.append((start_line, text[start:]))
    return [(line, chunk) for line, chunk in chunks if chunk.strip()]


class _Dumper(_BaseDumper):  # type: ignore[misc, valid-type]
    """SafeDumper (C emitter when available) that quotes ambiguous strings."""

    def ignore_aliases(self, data: Any) -> bool:
        # Manifests must not carry anchors: kubectl accepts them, reviewers stumble on them.
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if _AMBIGUOUS.match(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _represent_str)

_TOP = ("apiVersion", "kind", "metadata", "spec")


def _ordered(doc: dict[str, Any]) -> dict[str, Any]:
    head = {k: doc[k] for k in _TOP if k in doc}
    rest = {k: doc[k] for k in sorted(doc) if k not in head}
    return {**head, **rest}


def _pyyaml_dump(data: Any) -> str:
    return str(yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                         allow_unicode=True, width=1000))


def dump_documents(docs: list[dict[str, Any]]) -> str:
    """Dump manifests as one multi-document YAML string, byte-stable for equal input."""
    return "---\n".join(dump_document(doc) for doc in docs)


def dump_document(doc: Any) -> str:
    """Dump one value (a manifest or any plain data) deterministically.

    A mapping of plain values (mappings, lists, strings, integers, booleans, nulls) is
    written by :func:`_block`, which gives PyYAML's bytes: PyYAML represents every node in
    Python even with the C emitter, and a plan writes one file per manifest (10 to 20 times
    the plan's own time at 5,000 services, before). Anything else is PyYAML's to write.
    """
    if isinstance(doc, dict) and doc:
        lines: list[str] = []
        try:
            _block_mapping(_ordered(doc), "", "", lines)
        except _Unusual:
            pass
        else:
            return "\n".join(lines) + "\n"
    return _pyyaml_dump(_ordered(doc) if isinstance(doc, dict) else doc)


# Past this length a scalar may be folded at the line width (1000) or, as a key, not be a
# simple key (128): such documents go to PyYAML whole. So do strings holding a line break of
# any kind, which a quoted scalar continues on a line indented as deep as its context.
_MAX_FAST_SCALAR = 120
_BREAKS = re.compile("[\n\r\x85\u2028\u2029]")


# Strings of these characters only, not starting with an indicator, are written plain (or,
# when _AMBIGUOUS, double-quoted as they are) unless an implicit resolver of PyYAML reads
# them as another type; any other string is asked of PyYAML once.
_SIMPLE = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./=+,-]*")
_RESOLVERS: dict[str, Any] = _Dumper.yaml_implicit_resolvers


def _simple_text(value: str) -> str | None:
    """How PyYAML writes a simple string, as a key or a value; None when not simple."""
    if len(value) > _MAX_FAST_SCALAR or not _SIMPLE.fullmatch(value) or \
            value.startswith("..."):
        return None
    if _AMBIGUOUS.match(value):
        return f'"{value}"'
    for _tag, pattern in _RESOLVERS.get(value[0], ()):
        if pattern.match(value):
            return None
    return value


@lru_cache(maxsize=32768)
def _string_text(value: str, key: bool) -> str:
    """How PyYAML writes a string on one line: as a block mapping key, or as a value (of a
    mapping or a sequence item, which PyYAML writes alike)."""
    simple = _simple_text(value)
    if simple is not None:
        return simple
    if len(value) > _MAX_FAST_SCALAR or _BREAKS.search(value):
        raise _Unusual
    # "<key>: 0\n" or "- <value>\n"; anything else (a complex "? " key, a literal block, a
    # folded scalar) leaves the document to PyYAML.
    text, head, tail = (_pyyaml_dump({value: 0}), "", ": 0\n") if key else \
        (_pyyaml_dump([value]), "- ", "\n")
    if text.count("\n") != 1 or text.startswith("? ") or not text.startswith(head) or \
            not text.endswith(tail):
        raise _Unusual
    return text[len(head):-len(tail)]


def _scalar_text(value: Any) -> str:
    cls = value.__class__
    if cls is str:
        return _string_text(value, False)
    if cls is bool:
        return "true" if value else "false"
    if cls is int:
        return str(value)
    if value is None:
        return "null"
    if cls is dict and not value:
        return "{}"
    if cls is list and not value:
        return "[]"
    raise _Unusual  # floats, dates, bytes and other types: PyYAML's own representers


def _block_mapping(mapping: dict[Any, Any], indent: str, lead: str, lines: list[str]) -> None:
    """Lines of a non-empty block mapping whose keys start at ``indent`` (the first line at
    ``lead``, which is ``indent`` except after a sequence's ``- ``)."""
    prefix = lead
    for key, value in mapping.items():
        if key.__class__ is not str:
            raise _Unusual
        head = f"{prefix}{_string_text(key, True)}:"
        prefix = indent
        cls = value.__class__
        if cls is dict and value:
            lines.append(head)
            _block_mapping(value, indent + "  ", indent + "  ", lines)
        elif cls is list and value:
            lines.append(head)
            _block_sequence(value, indent, indent, lines)  # PyYAML's indentless sequences
        else:
            lines.append(f"{head} {_scalar_text(value)}")


def _block_sequence(items: list[Any], indent: str, lead: str, lines: list[str]) -> None:
    """Lines of a non-empty block sequence whose dashes sit at ``indent`` (the first at
    ``lead``)."""
    prefix = lead
    for item in items:
        dash = f"{prefix}- "
        prefix = indent
        cls = item.__class__
        if cls is dict and item:
            _block_mapping(item, indent + "  ", dash, lines)
        elif cls is list and item:
            _block_sequence(item, indent + "  ", dash, lines)
        else:
            lines.append(f"{dash}{_scalar_text(item)}")
