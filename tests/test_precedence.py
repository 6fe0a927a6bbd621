"""First-match (Istio) versus specificity (Gateway API, as Linkerd ranks it)."""

from __future__ import annotations

from migrate.dialects.gatewayapi.precedence import analyse, contains, overlaps, rank
from migrate.ir.model import RouteMatch, Rule, StringMatch


def rule(index, *matches):
    return Rule(index=index, name="", matches=tuple(matches), backends=())


def prefix(v, **kw):
    return RouteMatch(path=StringMatch("prefix", v), **kw)


def exact(v, **kw):
    return RouteMatch(path=StringMatch("exact", v), **kw)


HEADER = (("end-user", StringMatch("exact", "jason")),)


def test_exact_under_earlier_prefix_is_shadowed():
    found = analyse((rule(0, prefix("/api")), rule(1, exact("/api/health"))))
    assert len(found) == 1
    assert found[0].earlier == (0, 0) and found[0].later == (1, 0) and found[0].shadowed


def test_specific_rule_first_is_not_an_inversion():
    assert analyse((rule(0, exact("/api/health")), rule(1, prefix("/api")))) == []


def test_header_rule_before_catch_all_keeps_meaning():
    assert analyse((rule(0, RouteMatch(headers=HEADER)), rule(1))) == []


def test_catch_all_first_shadows_everything_after():
    found = analyse((rule(0), rule(1, RouteMatch(headers=HEADER))))
    assert [(f.later, f.shadowed) for f in found] == [((1, 0), True)]


def test_partial_overlap_is_reported_not_shadowed():
    # /api with header vs /api/v2 without: a request to /api/v2 with the header matches both;
    # the later rule has a longer path (more specific) but is not covered by the earlier one.
    earlier = prefix("/api", headers=HEADER)
    later = prefix("/api/v2")
    found = analyse((rule(0, earlier), rule(1, later)))
    assert [(f.earlier, f.later, f.shadowed) for f in found] == [((0, 0), (1, 0), False)]


def test_disjoint_matches_never_conflict():
    assert not overlaps(exact("/a"), exact("/b"))
    assert not overlaps(RouteMatch(method=StringMatch("exact", "GET")),
                        RouteMatch(method=StringMatch("exact", "POST")))
    assert analyse((rule(0, prefix("/a")), rule(1, exact("/b/c")))) == []


def test_regex_ranks_as_whole_path_and_containment_is_tested():
    assert rank(RouteMatch(path=StringMatch("regex", "/x.*"))) > rank(prefix("/xyz/abc"))
    assert contains(RouteMatch(path=StringMatch("regex", "/v[0-9]+/.*")), exact("/v2/a"))
    assert not contains(RouteMatch(path=StringMatch("regex", "/v[0-9]+/.*")), exact("/w/a"))


def regex(v, **kw):
    return RouteMatch(path=StringMatch("regex", v), **kw)


def test_prefix_and_regex_overlap_only_where_the_regex_literal_head_allows():
    # A whole-path regex starting with a literal only matches paths with that start.
    assert not overlaps(prefix("/api/"), regex("/static/.*"))
    assert overlaps(prefix("/"), regex("/static/.*"))
    assert overlaps(prefix("/static/img/"), regex("/static/.*"))
    assert overlaps(prefix("/ap"), regex("/apix?/y"))      # the optional x is not required
    # Alternations and leading groups say nothing: conservatively an overlap.
    assert overlaps(prefix("/api/"), regex("/static/.*|/api/.*"))
    assert overlaps(prefix("/api/"), regex("(?i)/STATIC/.*"))
    assert not analyse((rule(0, prefix("/api/")), rule(1, regex("/static/.*"))))
