"""Route and policy processing grows linearly with the rules (issue 23, "Quadratic routes").

Timing lives in the benchmark (tests/benchmarks/bench_rules.py); these tests hold the
algorithms: the same answers as comparing every pair, with a number of comparisons that
grows with the rules, not with their square.
"""

from __future__ import annotations

import random

import pytest

from migrate.dialects.gatewayapi import precedence
from migrate.dialects.gatewayapi.precedence import Inversion, analyse, contains, overlaps, rank
from migrate.ir.model import RouteMatch, Rule, StringMatch


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


def test_analyse_compares_a_number_of_pairs_linear_in_the_rules(monkeypatch):
    calls = {"n": 0}
    real = precedence.overlaps

    def counted(a, b):
        calls["n"] += 1
        return real(a, b)

    monkeypatch.setattr(precedence, "overlaps", counted)
    counts = {}
    for size in (500, 2000):
        calls["n"] = 0
        analyse(distinct_rules(size))
        counts[size] = calls["n"]
    # Each rule against the catch-all and its own few path relatives: about 2 per rule
    # (every pair would be 2,001,000 comparisons at 2,000 rules).
    assert counts[2000] <= 4 * 2000 and counts[2000] <= 4.5 * counts[500]
