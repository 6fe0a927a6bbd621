"""What each loss code may change (mappings/aspects.yaml), loaded and validated.

The equivalence check explains a divergence only by a loss whose declared aspect, and for
authorization direction, matches it: a mirror loss cannot cover a weight change, and a dropped
DENY rule (the target admits more) cannot cover a caller the target now refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from migrate import mappings
from migrate.losscodes import CODES
from migrate.mappings import MappingError

ROUTING = ("match", "backends", "mirror", "retries", "timeout", "request_headers", "response_headers",
           "rewrite", "redirect", "fault")
"""Every aspect of what a route does with a request; ``match`` is which rule it hits."""
ASPECTS = ROUTING + ("authorization",)
DIRECTIONS = ("allow-more", "refuse-more", "either")
_SHORTHANDS = {"routing": ROUTING, "everything": ASPECTS}
_FILE = "aspects.yaml"


@dataclass(frozen=True)
class Declaration:
    """What a loss code may change."""

    code: str
    aspects: frozenset[str]
    authz: str = ""
    """allow-more, refuse-more or either; empty when authorization is not among the aspects."""
    plaintext_only: bool = False
    """The loss concerns only callers without a mesh identity (an mTLS mode)."""
    windowed: bool = False
    """The loss holds only between the steps its message names ("from step N to step M"):
    the coexistence check uses it within them, the final-state equivalence check never."""

    def covers(self, aspect: str, direction: str = "", identified: bool = False) -> bool:
        """Whether the loss may explain a divergence of this aspect (and, for authorization,
        this direction: ``allow-more`` or ``refuse-more``, for a caller with a mesh identity
        or without)."""
        if aspect not in self.aspects:
            return False
        if aspect != "authorization":
            return True
        return self.authz in ("either", direction) and not (identified and
                                                            self.plaintext_only)

    def describe(self) -> str:
        """One line for docs/losses.md."""
        if not self.aspects:
            return "nothing the equivalence check observes (it explains no divergence)"
        names = [a for a in ASPECTS if a in self.aspects and a != "authorization"]
        text = ", ".join("which rule a request hits" if n == "match" else n.replace("_", " ")
                         for n in names)
        if "authorization" in self.aspects:
            way = {"allow-more": "the target may admit callers the source refused",
                   "refuse-more": "the target may refuse callers the source admitted",
                   "either": "the target may admit or refuse more"}[self.authz]
            if self.plaintext_only:
                way += ", for callers without a mesh identity only"
            text += ("; " if text else "") + f"authorization ({way})"
        if self.windowed:
            text += ", only between the steps its message names (coexistence check only)"
        return text


@lru_cache(maxsize=None)
def declarations() -> dict[str, Declaration]:
    """Every loss code's declaration, by code.

    Raises:
        MappingError: a code of features.yaml or losscodes.py is not declared, a declared
            code is unknown, or an aspect or direction is not one of the known ones.
    """
    raw = mappings._load(_FILE).get("codes") or {}
    known = {f.code for f in mappings.features().values()} | set(CODES)
    missing, unknown = sorted(known - set(raw)), sorted(set(raw) - known)
    if missing or unknown:
        raise MappingError(f"{_FILE}: codes without a declaration {missing}, "
                           f"unknown codes {unknown}")
    out: dict[str, Declaration] = {}
    for code, entry in raw.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("aspects"), list):
            raise MappingError(f"{_FILE}: {code}: needs an aspects list")
        aspects: set[str] = set()
        for name in entry["aspects"]:
            if name not in ASPECTS and name not in _SHORTHANDS:
                raise MappingError(f"{_FILE}: {code}: unknown aspect {name!r} (known: "
                                   f"{', '.join(ASPECTS + tuple(_SHORTHANDS))})")
            aspects.update(_SHORTHANDS.get(name, (name,)))
        direction = str(entry.get("authz") or "")
        if ("authorization" in aspects) != bool(direction) or \
                (direction and direction not in DIRECTIONS):
            raise MappingError(f"{_FILE}: {code}: authz must be one of {DIRECTIONS} exactly "
                               "when authorization is among the aspects")
        callers = entry.get("callers")
        if callers not in (None, "plaintext") or (callers and not direction):
            raise MappingError(f"{_FILE}: {code}: callers may only be plaintext, with authz")
        window = entry.get("window", False)
        if not isinstance(window, bool):
            raise MappingError(f"{_FILE}: {code}: window must be true or false")
        out[code] = Declaration(code, frozenset(aspects), direction, callers == "plaintext",
                                window)
    return out
