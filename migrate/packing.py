"""Plain data held as bytes until it is needed again.

A plan holds every emitted manifest and every source object it restores on rollback until
they are written; as dicts they were most of its peak memory (docs/performance.md). Packed,
they take about a quarter of that. ``marshal`` is the fastest way to pack the plain data
(dicts, lists, strings, numbers) they are made of; anything it cannot take (a YAML
timestamp read into a ``datetime``) is pickled instead.
"""

from __future__ import annotations

import marshal
import pickle
from typing import Any

# marshal output starts with a type code, never a zero byte: a zero marks a pickle.
_PICKLED = b"\x00"


def pack(value: Any) -> bytes:
    """``value`` as bytes that :func:`unpack` turns into an equal copy."""
    try:
        return marshal.dumps(value)
    except ValueError:  # "unmarshallable object": not plain data
        return _PICKLED + pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


def unpack(data: bytes) -> Any:
    """A new copy of what :func:`pack` was given."""
    if data[:1] == _PICKLED:
        return pickle.loads(data[1:])
    return marshal.loads(data)
