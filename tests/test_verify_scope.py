"""The narrow rules the mutation test (issue 14 item 5) showed were too wide: each case would
pass on the old code's reading, and must not now."""

from __future__ import annotations

from migrate.verify.compare import _prefix_differs, _unlisted, same_retries
from migrate.verify.model import Client, Outcome, Probe


def _probe(client: Client, path: str = "/") -> Probe:
    return Probe("shop", "web", 80, path, "GET", (), client, "authorization")


def test_implicit_default_retries_equal_no_retries_only():
    default = Outcome("routed", retries=2, detail="default")
    assert same_retries(default, Outcome("routed", retries=0))
    assert same_retries(Outcome("routed", retries=0), default)
    # A configured policy of 2 attempts (on 5xx, say) is not Istio's default of 2.
    assert not same_retries(Outcome("routed", retries=2), default)
    assert not same_retries(default, Outcome("routed", retries=2, detail="5xx"))
    assert same_retries(default, Outcome("routed", retries=2, detail="default"))


def test_namespace_loss_without_services_explains_only_that_namespace():
    message = ("namespace istio-system became the Consul services (none: the input has no "
               "Service there); Consul CE intentions cannot name a Kubernetes namespace")
    assert _unlisted(message, _probe(Client("istio-system", "default")))
    assert not _unlisted(message, _probe(Client("meshmigrate-probe", "unknown")))
    listed = "namespace front became the Consul services web, api; Consul CE intentions ..."
    assert not _unlisted(listed, _probe(Client("front", "web")))
    assert _unlisted(listed, _probe(Client("front", "batch")))


def test_consul_path_prefix_is_read_for_the_segment_loss():
    router = {"spec": {"routes": [{"match": {"http": {"pathPrefix": "/api"}}}]}}
    path = "spec.routes[0].match.http.pathPrefix"
    assert _prefix_differs(router, path, "/apix")
    assert not _prefix_differs(router, path, "/api/x")
    assert not _prefix_differs(router, path, "/api")
