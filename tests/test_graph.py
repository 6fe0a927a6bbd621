"""The IR graph: typed edges between records, and the namespace call graph derived from it."""

from __future__ import annotations

from migrate.dialects.istio.reader import IstioReader
from migrate.ir.graph import (
    APPLIES_TO,
    ATTACHES,
    AUTHORIZES,
    CALLS,
    CONFIGURES,
    ROUTES_TO,
    RUNS_AS,
    SELECTS,
)
from migrate.losses import LossLog
from migrate.sources.files import read_files
from tests.conftest import SAMPLES


def shop_graph():
    return IstioReader(LossLog(), []).read(read_files([str(SAMPLES / "istio" / "shop")])).graph


def test_typed_edges():
    g = shop_graph()
    assert ("Service/orders/orders", "Deployment/orders/orders") in set(g.edges(SELECTS))
    assert ("Deployment/frontend/web", "Service/orders/orders") in set(g.edges(CALLS))
    assert ("Deployment/orders/orders", "Identity/orders/orders") in set(g.edges(RUNS_AS))
    authz = set(g.edges(AUTHORIZES))
    assert ("AuthzPolicy/payments/payments-allow", "Identity/orders/orders") in authz
    assert ("AuthzPolicy/shared-db/postgres-allow", "Namespace//catalog") in authz
    assert ("Route/catalog/catalog/http", "Service/catalog/catalog") in set(g.edges(ROUTES_TO))


def test_policy_and_route_edges():
    g = shop_graph()
    applies = set(g.edges(APPLIES_TO))
    assert ("AuthzPolicy/payments/payments-allow", "Deployment/payments/payments") in applies
    assert ("Route/catalog/catalog/http", "Service/catalog/catalog") in set(g.edges(ATTACHES))
    assert ("DestinationPolicy/catalog/catalog", "Service/catalog/catalog") in \
        set(g.edges(CONFIGURES))


def test_edges_of_a_type_are_derived_once_when_first_asked_for():
    g = shop_graph()
    assert g.g.number_of_edges() == 0  # link() derives nothing a plan may not need
    calls = list(g.edges(CALLS))
    assert calls and g.g.number_of_edges() == len(calls)
    assert list(g.edges(CALLS)) == calls  # asking again adds nothing
    assert g.g.number_of_edges() == len(calls)
    g.link()  # re-linking starts over
    assert g.g.number_of_edges() == 0 and list(g.edges(CALLS)) == calls


def test_namespace_dependencies_carry_their_reasons():
    g = shop_graph()
    deps = g.namespace_dependencies(["catalog", "frontend", "orders", "payments", "shared-db"])
    assert set(deps.edges) == {("frontend", "orders"), ("frontend", "catalog"),
                               ("orders", "payments"), ("payments", "orders"),
                               ("orders", "shared-db"), ("payments", "shared-db"),
                               ("catalog", "shared-db")}
    assert "Deployment frontend/web calls Service catalog/catalog" in \
        deps.edges["frontend", "catalog"]["reasons"]
    assert g.ingress_namespaces() == {"frontend"}


def test_namespace_lookups_return_each_record_once_whatever_was_asked_before():
    from migrate.ir.model import AuthzPolicy

    g = shop_graph()
    first = g.in_namespace(AuthzPolicy, "orders")
    for empty in ("nowhere", "elsewhere"):  # namespaces without policies
        assert g.in_namespace(AuthzPolicy, empty) == []
    assert g.in_namespace(AuthzPolicy, "orders") == first
    assert len({id(p) for p in first}) == len(first) > 0
