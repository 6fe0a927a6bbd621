"""How deeply a document may nest, and a check of it that recursion cannot break.

Kubernetes objects are shallow: the deepest document among the corpus of real mesh
configurations is 14 levels, the deepest CRD schema (Istio's) 28. Every stage walks
documents recursively (reading, the field ledger, packing, YAML dumping, at up to three
Python frames a level in PyYAML's representer), and Python stops at 1,000 frames. A limit
of 200 levels is seven times the deepest real document and keeps every walk below 700
frames, so a deeper document is refused as an input problem when it is read and nothing
after the source ever sees one. The API server's own limit is far higher (Go's
encoding/json stops at 10,000 levels; kubernetes/kubernetes
staging/src/k8s.io/apimachinery/pkg/runtime/serializer/cbor/internal/modes/decode.go notes
"JSON implementation limit is 10000"), so a cluster may serve what a file may not hold.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 200
"""Most mappings and lists nested in one another in a document (the document counts as 1)."""


class TooDeep(Exception):
    """A value nests deeper than :data:`MAX_DEPTH`."""


def too_deep_message(limit: int = MAX_DEPTH) -> str:
    """The input problem's text."""
    return (f"nested deeper than {limit} levels (real Kubernetes objects nest under 30); "
            "not read")


def count_keys(value: Any, limit: int = MAX_DEPTH) -> int:
    """Keys of every mapping in ``value`` (a parsed document), checking its depth on the way.

    Recursion is bounded by ``limit`` (the walk stops there), so it is safe at any depth.

    Raises:
        TooDeep: ``value`` nests deeper than ``limit`` mappings and lists.
    """
    if limit <= 0:
        raise TooDeep
    if value.__class__ is dict:
        keys = len(value)
        members: Any = value.values()
    else:
        keys = 0
        members = value
    for item in members:
        cls = item.__class__
        if (cls is dict or cls is list) and item:
            keys += count_keys(item, limit - 1)
    return keys


def is_too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether a parsed value nests deeper than ``limit`` (safe at any depth)."""
    if value.__class__ is not dict and value.__class__ is not list:
        return False
    try:
        count_keys(value, limit)
    except TooDeep:
        return True
    return False
