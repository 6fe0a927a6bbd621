"""Overlapping path and method rules on one Linkerd Server, made to authorize as Istio does.

Istio ORs ALLOW rules: a request is let in when any rule matching it names the caller
(istio/api security/v1beta1/authorization_policy.proto). A Linkerd Server with inbound
HTTPRoutes instead sends each request to exactly one route and checks only that route's
authorizations (plus those on the Server itself; fact ``linkerd.inbound-route-authorization``):
linkerd2-proxy linkerd/app/inbound/src/policy/http.rs ``authorize`` calls ``route::find`` and
then looks for an authorization on the route it found (Server-wide authorizations are added to
every route; https://linkerd.io/2/reference/authorization-policy/ and
https://linkerd.io/2/tasks/configuring-per-route-policy/ describe route-targeted
AuthorizationPolicies). So with ``a`` allowed on ``/*`` and ``b`` on ``/api*`` as two routes,
one of them wins ``/api/x`` and the other caller is refused.

Which route wins (linkerd2-proxy linkerd/http/route/src/lib.rs ``find``,
src/http/match.rs ``RequestMatch`` and src/http/match/path.rs ``PathMatch``; fact
``linkerd.route-match-order``, the key of
:func:`~migrate.dialects.gatewayapi.precedence.linkerd_key`): the greatest path characters
matched, then header count, then query-parameter count, then whether a method matched; an
Exact or RegularExpression path counts the whole request path, a match without a path counts
as the prefix ``/`` (one character). Ties keep the first route in the order the policy
controller sends them: oldest ``creationTimestamp``, then name (linkerd2 policy-controller
grpc/src/inbound/http.rs ``to_route_list``; fact ``linkerd.route-tie-order``). Unlike the
Gateway API spec, the proxy ranks Exact and RegularExpression paths alike, so two path rules
on a request always tie on the path. The atoms below carry no header or query matches, so
only the path and the method decide between them.

The fix, per Server:

1. Every grant (one source alternative of one rule) is a set of *atoms*: one path form
   and at most one method. Path forms are an exact path, or "starts with ``p`` and ends
   with ``s``" (Istio's ``p*``, ``*s``, ``*`` and, after intersecting, both at once).
2. The atoms are closed under intersection, so for any request the atoms matching it have
   a least element (their intersection), which is contained in all of them.
3. Each atom's route authorizes every grant with an atom containing it. The least atom's
   route therefore authorizes exactly the callers Istio lets in for that request.
4. That least atom also wins in Linkerd: an atom inside another has a path whenever the
   other has one and a method whenever the other has one, so it never ranks lower; ties go
   to the earlier route, and routes are named (and so applied, the builder writes files in
   name order) contained-first, which makes them both older-or-equal and first by name.

Atoms with the same set of grants share one route, as before this module existed.

The apply order argument holds within one plan's steps. A route created by hand, or left
from an older plan, is older than the routes a new plan adds and wins ties against them.
"""

from __future__ import annotations

import heapq
import re
from bisect import bisect_left, insort
from dataclasses import dataclass
from typing import Any, Callable

ANY = ""
"""Marks an unconstrained prefix or suffix."""

MAX_ATOMS = 256
"""Intersections per Server before giving up on exact carry-over (reported)."""


@dataclass(frozen=True, order=True)
class PathForm:
    """A set of request paths: ``exact`` alone, else those starting with ``prefix`` and
    ending with ``suffix`` (which may overlap: ``/ab`` starts with ``/ab`` and ends with
    ``b``)."""

    exact: str | None = None
    prefix: str = ANY
    suffix: str = ANY

    @property
    def is_any(self) -> bool:
        """Whether every path is in the set."""
        return self.exact is None and not self.prefix and not self.suffix

    def contains(self, other: PathForm) -> bool:
        """Every path in ``other`` is in this set."""
        if self.exact is not None:
            return other.exact == self.exact
        if other.exact is not None:
            return other.exact.startswith(self.prefix) and other.exact.endswith(self.suffix)
        # Paths in ``other`` are prefix + anything + suffix, so containment needs the
        # prefixes and suffixes themselves to nest.
        return other.prefix.startswith(self.prefix) and other.suffix.endswith(self.suffix)

    def meet(self, other: PathForm) -> PathForm | None:
        """The paths in both sets (None: none)."""
        if self.exact is not None:
            return self if other.contains(self) else None
        if other.exact is not None:
            return other if self.contains(other) else None
        prefix = _longer(self.prefix, other.prefix, str.startswith)
        suffix = _longer(self.suffix, other.suffix, str.endswith)
        if prefix is None or suffix is None:
            return None
        return PathForm(None, prefix, suffix)

    def matches(self) -> list[dict[str, str] | None]:
        """Gateway API path matches covering exactly this set (None: no path match)."""
        if self.exact is not None:
            return [{"type": "Exact", "value": self.exact}]
        if self.is_any:
            return [None]
        # RegularExpression matches must span the whole path in Linkerd, and ``.*`` is
        # greedy, so these plain forms need no anchors.
        out: list[dict[str, str] | None] = [
            {"type": "RegularExpression",
             "value": re.escape(self.prefix) + ".*" + re.escape(self.suffix)}]
        if self.prefix and self.suffix:
            # Paths where the prefix and the suffix share characters are shorter than both
            # together, so the regex misses them: list them as exact paths.
            for k in range(1, min(len(self.prefix), len(self.suffix)) + 1):
                if self.prefix.endswith(self.suffix[:k]):
                    out.append({"type": "Exact", "value": self.prefix + self.suffix[k:]})
        return out


def _longer(a: str, b: str, nests: Callable[[str, str], bool]) -> str | None:
    """The longer of two prefixes (or suffixes) when one extends the other, else None."""
    if nests(a, b):
        return a
    if nests(b, a):
        return b
    return None


@dataclass(frozen=True, order=True)
class Atom:
    """One path form and at most one method: the unit overlaps are worked out on."""

    path: PathForm
    method: str | None = None

    def contains(self, other: Atom) -> bool:
        """Every request ``other`` matches, this atom matches too."""
        return (self.method is None or self.method == other.method) and \
            self.path.contains(other.path)

    def meet(self, other: Atom) -> Atom | None:
        """The requests both match, as an atom (None: none)."""
        if self.method and other.method and self.method != other.method:
            return None
        path = self.path.meet(other.path)
        if path is None:
            return None
        return Atom(path, self.method or other.method)

    @property
    def universal(self) -> bool:
        """Whether it matches every request (such a grant is a Server-wide one)."""
        return self.method is None and self.path.is_any

    def matches(self) -> list[dict[str, Any]]:
        """The HTTPRoute matches for this atom."""
        out = []
        for path in self.path.matches():
            m: dict[str, Any] = {}
            if path:
                m["path"] = path
            if self.method:
                m["method"] = self.method
            out.append(m)
        return out


def path_form(path: str) -> PathForm:
    """Istio authorization path syntax: exact, ``prefix*``, ``*suffix``, ``*`` (present).

    Istio's prefix is a raw string prefix (``/api/*`` matches ``/api/x``, not ``/api``;
    istio/api security/v1beta1/authorization_policy.proto), hence regular expressions
    rather than segment-aware PathPrefix matches. Every request has a non-empty path, so
    ``*`` is every request.
    """
    if path == "*":
        return PathForm()
    if path.endswith("*"):
        return PathForm(None, path[:-1], ANY)
    if path.startswith("*"):
        return PathForm(None, ANY, path[1:])
    return PathForm(path)


def atoms_of(paths: list[str], methods: list[str]) -> list[Atom]:
    """The atoms of one operation (its paths OR-ed, times its methods OR-ed)."""
    forms = [path_form(p) for p in paths] or [PathForm()]
    return [Atom(f, m.upper() if m else None) for f in forms for m in (methods or [None])]


@dataclass(frozen=True)
class RoutePlan:
    """The inbound routes of one Server: atoms per route and the grants each authorizes."""

    routes: list[tuple[list[Atom], list[int]]]
    """(atoms, grant indices) per route, in the order they must be named and applied."""
    capped: bool
    """The intersections exceeded :data:`MAX_ATOMS`; some overlaps were left as they are."""


def plan_routes(grants: list[list[Atom]]) -> RoutePlan:
    """Routes for grants given as atom lists (index = grant number)."""
    family: list[Atom] = []
    seen: set[Atom] = set()
    for atoms in grants:
        for a in atoms:
            if a not in seen:
                seen.add(a)
                family.append(a)
    capped = False
    k = 0
    met = _KeyIndex()
    while k < len(family) and not capped:
        # Only earlier atoms whose paths can meet this one's (the comparison of every pair
        # was quadratic in a policy's rules), taken in the order that comparison took them,
        # so the family grows in the same order.
        for b in sorted(met.related(family[k])):
            c = family[k].meet(family[b])
            if c is not None and c not in seen:
                if len(family) >= MAX_ATOMS:
                    capped = True
                    break
                seen.add(c)
                family.append(c)
        met.add(family[k], k)
        k += 1
    granted = _KeyIndex()
    for g, atoms in enumerate(grants):
        for a in atoms:
            granted.add(a, g)
    covers = [tuple(sorted({g for g in granted.containers(atom)
                            if any(a.contains(atom) for a in grants[g])}))
              for atom in family]
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, cover in enumerate(covers):
        groups.setdefault(cover, []).append(index)
    members = list(groups.values())
    order = _contained_first(family, members, [set(covers[m[0]]) for m in members])
    routes = [([family[i] for i in members[g]], list(covers[members[g][0]])) for g in order]
    return RoutePlan(routes, capped)


def _key(atom: Atom) -> str:
    """The literal start of every path an atom matches: its exact path, or its prefix."""
    return atom.path.exact if atom.path.exact is not None else atom.path.prefix


class _KeyIndex:
    """Atoms (or their owners) by :func:`_key`, for the pairs whose paths can relate.

    An atom contains another only when its key starts the other's key, and two atoms meet
    only when one's key starts the other's (:meth:`PathForm.contains`, :meth:`PathForm.meet`):
    the candidates are found by looking up the key's own prefixes and, for :meth:`related`,
    the range of longer keys starting with it, instead of comparing every pair.
    """

    def __init__(self) -> None:
        self.by_key: dict[str, list[int]] = {}
        self.keys: list[str] = []

    def add(self, atom: Atom, owner: int) -> None:
        """Index ``owner`` (an atom's or a grant's number) under the atom's key."""
        key = _key(atom)
        if key not in self.by_key:
            self.by_key[key] = []
            insort(self.keys, key)
        self.by_key[key].append(owner)

    def containers(self, atom: Atom) -> set[int]:
        """Owners indexed under a key that starts ``atom``'s key (those that may contain it)."""
        key = _key(atom)
        found: set[int] = set()
        for end in range(len(key) + 1):
            found.update(self.by_key.get(key[:end], ()))
        return found

    def related(self, atom: Atom) -> set[int]:
        """Owners whose key starts ``atom``'s key or starts with it (those that may meet it)."""
        found = self.containers(atom)
        key = _key(atom)
        for other in self.keys[bisect_left(self.keys, key):]:
            if not other.startswith(key):
                break
            found.update(self.by_key[other])
        return found


def _contained_first(family: list[Atom], members: list[list[int]],
                     covers: list[set[int]]) -> list[int]:
    """Group indices, each group after every group holding an atom strictly inside one of
    its atoms, else in first-seen order.

    Such an order always exists: an atom inside another is covered by every grant covering
    the other, so a group that must come first has strictly more grants (a partial order).
    That is also why only such pairs of groups need comparing; and only atoms whose keys
    nest (:class:`_KeyIndex`) can be inside one another.
    """
    group_of = {a: x for x, atoms in enumerate(members) for a in atoms}
    index = _KeyIndex()
    for a, atom in enumerate(family):
        index.add(atom, a)
    edges: set[tuple[int, int]] = set()
    for a, atom in enumerate(family):
        x = group_of[a]
        for b in index.containers(atom):
            y = group_of[b]
            if (x, y) not in edges and covers[x] > covers[y] and \
                    family[b].contains(atom) and not atom.contains(family[b]):
                edges.add((x, y))
    return group_order(members, edges)


def group_order(members: list[list[int]], edges: set[tuple[int, int]]) -> list[int]:
    """Group indices with ``x`` before ``y`` for every edge ``(x, y)``, else in first-seen
    order (the group's first atom)."""
    n = len(members)
    after: list[list[int]] = [[] for _ in range(n)]
    indegree = [0] * n
    for x, y in sorted(edges):
        after[x].append(y)
        indegree[y] += 1
    ready = [(min(members[x]), x) for x in range(n) if indegree[x] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, x = heapq.heappop(ready)
        order.append(x)
        for y in after[x]:
            indegree[y] -= 1
            if indegree[y] == 0:
                heapq.heappush(ready, (min(members[y]), y))
    return order
