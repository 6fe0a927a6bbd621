"""Route and policy processing grows linearly with the rules (issue 23, "Quadratic routes").

Timing lives in the benchmark (tests/benchmarks/bench_rules.py); these tests hold the
algorithms: the same answers as comparing every pair, with a number of comparisons that
grows with the rules, not with their square.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from migrate.dialects.gatewayapi import precedence
from migrate.dialects.gatewayapi.precedence import Inversion, analyse, contains, overlaps, rank
from migrate.dialects.linkerd.inbound_overlap import (
    MAX_ATOMS,
    Atom,
    atoms_of,
    group_order,
    plan_routes,
)
from migrate.ir.model import RouteMatch, Rule, StringMatch
from migrate.verify import probes
from migrate.verify.world import World


def every_pair(rules: tuple[Rule, ...]) -> list[Inversion]:
    """analyse as it was: every pair of matches compared."""
    flat = [(r.index, j, m) for r in rules for j, m in enumerate(r.matches)] + \
        [(r.index, 0, None) for r in rules if not r.matches]
    flat.sort(key=lambda e: (e[0], e[1]))
    found = []
    for x, (ri, mi, a) in enumerate(flat):
        for rj, mj, b in flat[x + 1:]:
            if rj == ri or not overlaps(a, b) or rank(b) <= rank(a):
                continue
            found.append(Inversion((ri, mi), (rj, mj), contains(a, b)))
    return found


def random_match(rng: random.Random) -> RouteMatch:
    paths = ["/", "/a", "/a/", "/a/b", "/ab", "/b", "/a/b/c", "/api", "/api/v1"]
    kind = rng.choice(["exact", "prefix", "prefix", "regex", "present", None])
    path = None if kind is None else StringMatch(
        kind, rng.choice(["/a.*", "/a/[^/]+", ".*", "/b|/a"]) if kind == "regex" else
        rng.choice(paths))
    headers = tuple((n, StringMatch(rng.choice(["exact", "prefix"]), rng.choice("xy")))
                    for n in rng.sample(["h1", "h2"], rng.randint(0, 2)))
    return RouteMatch(path=path, ignore_case=rng.random() < 0.1,
                      method=rng.choice([None, StringMatch("exact", "GET")]), headers=headers,
                      port=rng.choice([None, None, 80, 81]))


def random_rules(rng: random.Random, count: int) -> tuple[Rule, ...]:
    return tuple(Rule(i, f"r{i}", tuple(random_match(rng) for _ in range(rng.randint(0, 3))),
                      ()) for i in range(count))


@pytest.mark.parametrize("seed", range(40))
def test_analyse_finds_what_comparing_every_pair_finds(seed: int):
    rules = random_rules(random.Random(seed), 25)
    assert analyse(rules) == every_pair(rules)


def distinct_rules(count: int) -> tuple[Rule, ...]:
    """One VirtualService's worth of rules on distinct paths, then a catch-all."""
    rules = [Rule(i, f"r{i}", (RouteMatch(path=StringMatch("prefix", f"/p{i}/"),
                                          headers=(("x-v", StringMatch("exact", f"v{i}")),)),),
                  ()) for i in range(count)]
    return (*rules, Rule(count, "default", (), ()))


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> dict[str, int]:
    """Replace ``owner.name`` by a wrapper counting its calls in the returned dict."""
    calls = {"n": 0}
    real = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def test_analyse_compares_a_number_of_pairs_linear_in_the_rules(monkeypatch):
    calls = count_calls(monkeypatch, precedence, "overlaps")
    counts = {}
    for size in (500, 2000):
        calls["n"] = 0
        analyse(distinct_rules(size))
        counts[size] = calls["n"]
    # Each rule against the catch-all and its own few path relatives: about 2 per rule
    # (every pair would be 2,001,000 comparisons at 2,000 rules).
    assert counts[2000] <= 4 * 2000 and counts[2000] <= 4.5 * counts[500]


# -- Linkerd inbound routes: intersections, covers and order, indexed by path ----------------
def every_pair_plan(grants: list[list[Atom]]) -> tuple[list, bool]:
    """plan_routes as it was: every atom met with every earlier one, every grant tested for
    every atom, every pair of groups compared (the order given the edges is the module's)."""
    family = list(dict.fromkeys(a for atoms in grants for a in atoms))
    seen = set(family)
    capped, k = False, 0
    while k < len(family) and not capped:
        met = [c for c in (family[k].meet(b) for b in family[:k]) if c is not None]
        for c in met:
            if c in seen:
                continue
            capped = len(family) >= MAX_ATOMS
            if capped:
                break
            seen.add(c)
            family.append(c)
        k += 1
    covers = [tuple(g for g, atoms in enumerate(grants) if any(a.contains(t) for a in atoms))
              for t in family]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, cover in enumerate(covers):
        groups.setdefault(cover, []).append(i)
    members = list(groups.values())
    sets = [set(covers[m[0]]) for m in members]
    edges = {(x, y) for x in range(len(members)) for y in range(len(members))
             if sets[x] > sets[y] and any(family[b].contains(family[a]) and
                                          not family[a].contains(family[b])
                                          for a in members[x] for b in members[y])}
    order = group_order(members, edges)
    return [([family[i] for i in members[g]], list(covers[members[g][0]])) for g in order], capped


@pytest.mark.parametrize("seed", range(30))
def test_inbound_routes_are_those_every_pair_gives(seed: int):
    rng = random.Random(seed)
    paths = ["*", "/a*", "/a/*", "/a/b", "/ab*", "*b", "*/b", "/a/b*", "/b*", "/a", "/", "/a*b"]
    grants = [atoms_of(rng.sample(paths, rng.randint(1, 3)),
                       rng.choice([[], ["GET"], ["GET", "POST"]]))
              for _ in range(rng.randint(1, 8))]
    got = plan_routes(grants)
    assert (got.routes, got.capped) == every_pair_plan(grants)


def test_inbound_routes_meet_a_number_of_atoms_linear_in_the_grants(monkeypatch):
    calls = count_calls(monkeypatch, Atom, "meet")
    counts = {}
    for size in (500, 2000):
        calls["n"] = 0
        plan_routes([atoms_of([f"/p{i}/*"], ["GET"]) for i in range(size)])
        counts[size] = calls["n"]
    # Distinct prefixes never meet: no pair needs meeting (every pair was 1,999,000).
    assert counts[2000] <= 2000 and counts[2000] <= 4.5 * max(counts[500], 1)


# -- Authorization probes: the first ones in order, not all of them sorted ------------------
def test_authorization_probes_are_made_in_order_not_all_made(monkeypatch):
    rules = 300
    objects = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
             "metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}}},
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"selector": {"matchLabels": {"app": "web"}}, "action": "ALLOW", "rules": [
             {"from": [{"source": {"principals": [f"cluster.local/ns/shop/sa/c{i}"]}}],
              "to": [{"operation": {"paths": [f"/p{i}/*"], "methods": ["GET"]}}]}
             for i in range(rules)]}},
    ]
    made = count_calls(monkeypatch, probes, "Probe")
    got = probes.authz_probes(objects, World(objects))
    # Every request of every rule times every caller would be 3 x 300 x 302 probes.
    assert made["n"] == len(got) == probes.MAX_PER_SERVICE
    assert got == sorted(got) and len(set(got)) == len(got)
