"""First-match (Istio) versus most-specific-wins (Gateway API) rule selection.

Istio evaluates VirtualService rules in list order and the first match wins
(istio/api networking/v1/virtual_service.proto; fact ``istio.virtualservice-first-match``).
Gateway API picks the most specific match across all rules of all routes on a parent, and
leaves regular expressions to the implementation (fact ``gateway-api.route-precedence``).
The ranking here is Linkerd's, the Gateway API implementation whose routes these rules are
written as or read from (fact ``linkerd.route-match-order``, mappings/facts.yaml): the path
characters matched, then header matches, then query-parameter matches, then a method; Exact
and RegularExpression paths count the whole request path, so an Exact path ties with a
PathPrefix of the same length (linkerd2-proxy linkerd/http/route/src/http/match.rs
``RequestMatch`` and match/path.rs ``PathMatch``). :func:`linkerd_key` builds that key in the
register's order; the Linkerd evaluator (migrate/verify/gateway.py) uses the same function.

:func:`analyse` finds every pair of rules (earlier ``a``, later ``b``) where a request matches
both and the target would choose ``b`` while Istio chose ``a``. When every request ``b``
matches is also matched by ``a``, Istio never used ``b``: dropping ``b``'s match keeps the
meaning. Otherwise the meaning changes and the pair is reported.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass, replace

from functools import lru_cache

from migrate import facts
from migrate.ir.model import Route, RouteMatch, Rule, StringMatch
from migrate.losses import LossLog, Severity

_WHOLE = 1 << 30
"""Path rank of a regular expression of unknown length: it counts the whole request path,
which is at least as long as any prefix matching the same request."""


@dataclass(frozen=True)
class Inversion:
    """A pair of matches whose winner differs between first-match and specificity."""

    earlier: tuple[int, int]
    """(rule index, match index) Istio picks."""
    later: tuple[int, int]
    """(rule index, match index) the target would pick."""
    shadowed: bool
    """True when ``later`` is wholly covered by ``earlier`` (Istio never used it)."""


@lru_cache(maxsize=1)
def _key_order() -> tuple[int, ...]:
    # fact: linkerd.route-match-order
    names = ("path", "headers", "query", "method")
    order = facts.value("linkerd.route-match-order", "order")
    if sorted(order) != sorted(names):
        raise ValueError(f"linkerd.route-match-order: order must list {names}, not {order}")
    return tuple(names.index(n) for n in order)


def linkerd_key(path: int, headers: int, query: int, method: bool) -> tuple[int, ...]:
    """The key Linkerd's proxy compares route matches by (greater wins), in the order the fact
    register gives (``linkerd.route-match-order``): ``path`` is the :func:`path_score` of the
    path characters matched, ``headers`` and ``query`` the numbers of header and query-parameter matches,
    ``method`` whether the match names a method."""
    parts = (path, headers, query, int(method))
    return tuple(parts[i] for i in _key_order())


@lru_cache(maxsize=1)
def _exact_bonus() -> int:
    # fact: linkerd.route-match-order
    return 1 if facts.value("linkerd.route-match-order", "exact_outranks_prefix") else 0


def path_score(kind: str, length: int) -> int:
    """The path part of :func:`linkerd_key`: ``length`` path characters matched by a match of
    ``kind`` (``exact``, ``prefix`` or ``regex``). An Exact path ranks with a prefix of the same
    length unless the register says Exact outranks it (``exact_outranks_prefix``)."""
    return 2 * length + (_exact_bonus() if kind == "exact" else 0)


def prefix_length(value: str) -> int:
    """Path characters a PathPrefix counts in Linkerd: its length less trailing ``/``, and one
    for ``/`` itself, which is also what a match without a path counts (linkerd2-proxy
    match/path.rs ``match_length``, match.rs ``RequestMatch::default``)."""
    # fact: linkerd.route-match-order
    trimmed = value.rstrip("/")
    return len(trimmed) if trimmed else 1


def rank(m: RouteMatch | None) -> tuple[int, ...]:
    """How specific a match is for Linkerd (:func:`linkerd_key`), whatever the request.

    An Exact path counts its own length, so it ties with a PathPrefix of the same length (the
    exact part of a PathPrefix read as exact plus segment prefix ranks the same as a real
    Exact). A RegularExpression (and a case-insensitive prefix, written as one) counts the
    request path, known only per request: it ranks above every prefix, and above an Exact it
    in fact ties with on the paths both match (an approximation on the side of reporting).
    """
    if m is None:
        return linkerd_key(path_score("prefix", 1), 0, 0, False)
    if m.path is None:
        path = path_score("prefix", 1)
    elif m.path.kind == "exact":
        # Case-insensitive too: the regex it is written as matches that length only.
        path = path_score("exact", len(m.path.value))
    elif m.path.kind == "regex" or m.ignore_case:
        path = path_score("regex", _WHOLE)
    elif m.path.kind == "prefix":
        path = path_score("prefix", prefix_length(m.path.value))
    else:
        path = path_score("prefix", 1)
    return linkerd_key(path, len(m.headers), len(m.query), m.method is not None)


def _fullmatch(pattern: str, text: str) -> bool | None:
    try:
        return re.fullmatch(pattern, text) is not None
    except re.error:
        return None


def _str_contains(a: StringMatch | None, b: StringMatch | None) -> bool:
    """Every value ``b`` accepts, ``a`` accepts too (Istio string-match semantics)."""
    if a is None or a.kind == "present":
        return True if a is None else b is not None
    if b is None or b.kind == "present":
        return False
    if a.kind == "exact":
        return b.kind == "exact" and a.value == b.value
    if a.kind == "prefix":
        return b.kind in ("exact", "prefix") and b.value.startswith(a.value)
    # a is a regex
    if b.kind == "exact":
        return bool(_fullmatch(a.value, b.value))
    return b.kind == "regex" and a.value == b.value


def _str_overlap(a: StringMatch | None, b: StringMatch | None) -> bool:
    """Some value is accepted by both (conservative: unknown regex overlaps count)."""
    if a is None or b is None or a.kind == "present" or b.kind == "present":
        return True
    if a.kind == "exact" and b.kind == "exact":
        return a.value == b.value
    if a.kind == "exact" and b.kind == "prefix":
        return a.value.startswith(b.value)
    if b.kind == "exact" and a.kind == "prefix":
        return b.value.startswith(a.value)
    if a.kind == "prefix" and b.kind == "prefix":
        return a.value.startswith(b.value) or b.value.startswith(a.value)
    if a.kind == "regex" and b.kind == "exact":
        return _fullmatch(a.value, b.value) is not False
    if b.kind == "regex" and a.kind == "exact":
        return _fullmatch(b.value, a.value) is not False
    if {a.kind, b.kind} == {"prefix", "regex"}:
        prefix, regex = (a, b) if a.kind == "prefix" else (b, a)
        head = _literal_head(regex.value)
        return head.startswith(prefix.value) or prefix.value.startswith(head)
    return True


_META = frozenset("\\.^$*+?()[]{}|")


def _literal_head(regex: str) -> str:
    """The literal text every value a (whole-value) regular expression matches starts with:
    its characters up to the first metacharacter, less the last one when a ``?``, ``*`` or
    ``{`` makes it optional; empty when the pattern has an alternation anywhere (a ``|`` may
    sit outside any group) or starts with a metacharacter."""
    if "|" in regex:
        return ""
    for i, ch in enumerate(regex):
        if ch in _META:
            return regex[:i - 1] if ch in "?*{" and i else regex[:i]
    return regex


def _map_contains(a: tuple[tuple[str, StringMatch], ...],
                  b: tuple[tuple[str, StringMatch], ...]) -> bool:
    have = dict(b)
    return all(name in have and _str_contains(m, have[name]) for name, m in a)


def _map_overlap(a: tuple[tuple[str, StringMatch], ...],
                 b: tuple[tuple[str, StringMatch], ...]) -> bool:
    other = dict(b)
    return all(_str_overlap(m, other[name]) for name, m in a if name in other)


def contains(a: RouteMatch | None, b: RouteMatch | None) -> bool:
    """Every request ``b`` matches, ``a`` matches too (None matches everything)."""
    if a is None:
        return True
    if b is None:
        return a.path in (None, StringMatch("prefix", "/")) and not (
            a.method or a.headers or a.query or a.port)
    if a.ignore_case != b.ignore_case and a.path and b.path:
        return a.ignore_case and _str_contains(
            StringMatch(a.path.kind, a.path.value.lower()),
            StringMatch(b.path.kind, b.path.value.lower()))
    return (_str_contains(a.path, b.path) and _str_contains(a.method, b.method)
            and _map_contains(a.headers, b.headers) and _map_contains(a.query, b.query)
            and (a.port is None or a.port == b.port))


def overlaps(a: RouteMatch | None, b: RouteMatch | None) -> bool:
    """Some request matches both."""
    if a is None or b is None:
        return True
    if a.port is not None and b.port is not None and a.port != b.port:
        return False
    if a.ignore_case or b.ignore_case:
        path_ok = True
    else:
        path_ok = _str_overlap(a.path, b.path)
    return (path_ok and _str_overlap(a.method, b.method)
            and _map_overlap(a.headers, b.headers) and _map_overlap(a.query, b.query))


def analyse(rules: tuple[Rule, ...]) -> list[Inversion]:
    """Every (earlier, later) match pair the target would resolve differently from Istio.

    Only pairs whose paths can overlap are compared (:func:`_path_candidates`), in the order
    a comparison of every pair would find them: a VirtualService with thousands of rules on
    distinct paths took seconds per thousand rules squared before.
    """
    flat: list[tuple[int, int, RouteMatch | None]] = []
    for rule in rules:
        if rule.matches:
            flat.extend((rule.index, j, m) for j, m in enumerate(rule.matches))
        else:
            flat.append((rule.index, 0, None))
    found: list[Inversion] = []
    for x, y in _path_candidates([m for _, _, m in flat]):
        (ri, mi, a), (rj, mj, b) = flat[x], flat[y]
        if rj == ri or not overlaps(a, b) or rank(b) <= rank(a):
            continue
        found.append(Inversion((ri, mi), (rj, mj), contains(a, b)))
    return found


def _literal_path(m: RouteMatch | None) -> str | None:
    """The path of a match that only a literal path can overlap (exact or prefix, case
    sensitive), or None for one that may overlap anything (no path, regex, ignore-case)."""
    if m is None or m.ignore_case or m.path is None or m.path.kind not in ("exact", "prefix"):
        return None
    return m.path.value


def _path_candidates(matches: list[RouteMatch | None]) -> list[tuple[int, int]]:
    """Index pairs ``(x, y)``, ``x < y``, sorted, that include every pair whose paths
    :func:`overlaps` could accept.

    Two literal paths (exact or prefix) overlap only when one is a prefix of the other
    (:func:`_str_overlap`): for each, the literal paths it starts with are found by looking
    up its own prefixes, and those starting with it form one range of the sorted paths. A
    match without a literal path is paired with every other. Linear in the matches for
    distinct paths; never more pairs than the comparison of all pairs.
    """
    literal: dict[str, list[int]] = {}
    wild: list[int] = []
    for i, m in enumerate(matches):
        path = _literal_path(m)
        if path is None:
            wild.append(i)
        else:
            literal.setdefault(path, []).append(i)
    pairs: set[tuple[int, int]] = set()
    everyone = range(len(matches))
    for w in wild:
        pairs.update((min(w, z), max(w, z)) for z in everyone if z != w)
    values = sorted(literal)
    for value, indexes in literal.items():
        related: list[int] = []
        for end in range(len(value)):  # shorter paths this one starts with
            related.extend(literal.get(value[:end], ()))
        start = bisect_left(values, value)  # this path and the longer ones starting with it
        for other in values[start:]:
            if not other.startswith(value):
                break
            related.extend(literal[other])
        for i in indexes:
            pairs.update((min(i, z), max(i, z)) for z in related if z != i)
    return sorted(pairs)


def merge_routes(entries: list[tuple[Route, Rule]], losses: LossLog, target: str
                 ) -> list[tuple[Route, Rule]]:
    """Rules of several Gateway API routes on one parent as one first-match list, for a
    first-match target (an Istio VirtualService, a Consul ServiceRouter).

    Each rule is split per match and the list stably sorted most specific first (Gateway API
    precedence, :func:`rank`). Equally specific overlapping matches of different routes were
    decided by route age, which the input does not carry: each such pair is ``ROUTE_ORDER``.
    ``target`` names the emitted object in the message (``the ServiceRouter``).
    """
    split: list[tuple[Route, Rule]] = []
    for route, rule in entries:
        if len(rule.matches) <= 1:
            split.append((route, rule))
            continue
        for m in rule.matches:  # each match takes its own place in the precedence order
            split.append((route, replace(rule, matches=(m,))))

    def key(entry: tuple[Route, Rule]) -> tuple[int, ...]:
        return tuple(-x for x in rank(entry[1].matches[0] if entry[1].matches else None))

    # fact: linkerd.route-tie-order
    ordered = sorted(split, key=key)
    for i, (ra, a) in enumerate(ordered):
        for rb, b in ordered[i + 1:]:
            ma = a.matches[0] if a.matches else None
            mb = b.matches[0] if b.matches else None
            if ra.origin.ref != rb.origin.ref and rank(ma) == rank(mb) and overlaps(ma, mb):
                losses.report(
                    "ROUTE_ORDER", Severity.DEGRADED, "route.http", rb.origin.ref, b.origin_path,
                    f"{b.origin_path} of {rb.origin.ref} and {a.origin_path} of {ra.origin.ref} "
                    "are equally specific; Gateway API let the older route win, which the input "
                    f"does not say; {target} tries {ra.origin.ref} first",
                    "Make the two matches distinct, or check which route is older and reorder "
                    f"the rules of {target} by hand.")
    return ordered



_ISTIO_URI_RANK = {"exact": 3, "prefix": 2, "regex": 1}
ISTIO_NO_MATCH = (-2, 0, 0, 0, 0)
"""Istio's rank of a rule without any match: after every other rule."""


# fact: istio.gateway-route-order
def istio_gateway_rank(uri: StringMatch | None, method: bool, headers: int, query: int
                       ) -> tuple[int, int, int, int, int]:
    """How Istio orders the rules it converts from Gateway API routes (higher first).

    istio/istio pilot/pkg/config/kube/gateway/conversion.go ``sortHTTPRoutes``, ``getURIRank``,
    ``getURILength``: the path kind first (Exact > Prefix > RegularExpression > no path), then
    the longer path string, then a method match, then more header matches, then more query
    matches; a stable sort keeps rule order for the rest. Unlike :func:`rank` (Linkerd, which
    scores a regular expression by the request path it consumed), a regular expression ranks
    below every prefix, even ``/``. ``uri`` is the path match in Istio's own form (a PathPrefix
    without its trailing ``/``, a gRPC service/method as Istio spells it).
    """
    if uri is None:
        return (-1, 0, int(method), headers, query)
    return (_ISTIO_URI_RANK.get(uri.kind, -1), len(uri.value), int(method), headers, query)
