"""Durations as Istio writes them (protobuf Duration: ``1.5s``, ``100ms``, ``1m``) and as
Gateway API and Linkerd annotations accept them (``^([0-9]{1,5}(h|m|s|ms)){1,4}$``)."""

from __future__ import annotations

import re
from functools import lru_cache

_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1, "us": 0.001, "µs": 0.001,
            "ns": 0.000001}


# Both are pure and a mesh repeats a handful of durations over thousands of rules.
@lru_cache(maxsize=1024)
def to_millis(text: str) -> int | None:
    """Milliseconds in a duration string, or None when it does not parse."""
    text = text.strip()
    if not text or _PART.sub("", text):
        return None
    total = sum(float(n) * _UNIT_MS[u] for n, u in _PART.findall(text))
    return int(round(total))


@lru_cache(maxsize=1024)
def gateway_duration(text: str) -> str | None:
    """The same duration in Gateway API form (``1500ms``, ``10s``, ``2m``), or None."""
    ms = to_millis(text)
    if ms is None:
        return None
    if ms == 0:
        return "0s"
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0 and ms // size < 100_000:
            return f"{ms // size}{unit}"
    return f"{ms}ms" if ms < 100_000 else f"{ms // 1000}s"
