"""The fact register (mappings/facts.yaml, migrate/facts.py): it loads and refuses malformed
entries, every fact id named in code exists and every fact is named in code or tests, and one
test per fact corrected in issue 21 (``test_fact_<id>``), each with output that the old belief
got wrong."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from migrate import facts
from migrate.dialects.consul.coexist import CONSUL
from migrate.dialects.consul.reader import ConsulReader
from migrate.dialects.gatewayapi import precedence
from migrate.dialects.gatewayapi.precedence import rank
from migrate.dialects.istio.coexist import ISTIO
from migrate.ir.model import RouteMatch, StringMatch, Workload
from migrate.losses import LossLog
from migrate.mappings import MappingError
from migrate.sources.files import read_files
from migrate.verify import gateway
from migrate.verify.model import Probe
from tests.helpers import manifests, plan_yaml, texts

ROOT = Path(__file__).resolve().parent.parent
# Code names a fact as ``# fact: <id>`` (comments) or ``fact ``<id>``" (docstrings).
NAMED = re.compile(r"fact(?::\s*|\s+``)([a-z-]+\.[a-z0-9]+(?:-[a-z0-9]+)*)")


def _named_in(folder: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        for fid in NAMED.findall(path.read_text(encoding="utf-8")):
            found.setdefault(fid, set()).add(str(path.relative_to(ROOT)))
    return found


# -- the register ------------------------------------------------------------------------
def test_register_loads_with_sources_for_every_fact():
    reg = facts.register()
    assert len(reg) >= 25
    for f in reg.values():
        assert f.statement and f.versions and f.source.cite()
        assert f.source.url or (f.source.repo and f.source.ref and f.source.path)


def test_every_fact_named_in_code_exists_and_every_fact_is_named():
    in_code = _named_in("migrate")
    in_tests = _named_in("tests")
    tests_text = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("*.py"))
    unknown = {fid: sorted(where) for fid, where in {**in_tests, **in_code}.items()
               if fid not in facts.register()}
    assert unknown == {}, "ids named in code but missing from mappings/facts.yaml"
    unused = [fid for fid in facts.register()
              if fid not in in_code and fid not in tests_text
              and f"test_fact_{fid.replace('.', '_').replace('-', '_')}" not in tests_text]
    assert unused == [], "register entries no code or test names"


@pytest.mark.parametrize("entry, message", [
    ({"mesh": "linkerd", "statement": "s", "versions": "all"}, "no source"),
    ({"mesh": "istio", "statement": "s", "versions": "all",
      "source": {"url": "https://x"}}, "prefix the id"),
    ({"mesh": "linkerd", "statement": "s", "versions": "all",
      "source": {"url": "https://buoyant.io/blog/x"}}, "never a blog"),
    ({"mesh": "linkerd", "statement": "s", "versions": "all",
      "source": {"repo": "linkerd/linkerd2", "path": "x.rs"}}, "repo, ref and path"),
])
def test_malformed_entries_are_refused_with_their_id(entry: dict[str, Any], message: str):
    with pytest.raises(MappingError, match=rf"linkerd\.x-y: .*{message}"):
        facts._fact("linkerd.x-y", entry)


def test_an_unknown_fact_is_a_clear_error():
    with pytest.raises(KeyError, match="linkerd.nope"):
        facts.value("linkerd.nope", "order")


# -- linkerd.route-match-order --------------------------------------------------------------
def _m(path: StringMatch | None = None, method: str | None = None,
       headers: int = 0, query: int = 0) -> RouteMatch:
    return RouteMatch(path=path, method=StringMatch("exact", method) if method else None,
                      headers=tuple((f"h{i}", StringMatch("exact", "1")) for i in range(headers)),
                      query=tuple((f"q{i}", StringMatch("exact", "1")) for i in range(query)))


def _app(name: str, labels: str, ns: str = "shop") -> str:
    """A Service and the Deployment it selects, as YAML documents."""
    return f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec: {{selector: {labels}, ports: [{{name: http, port: 8080}}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {labels}}}
  template:
    metadata: {{labels: {labels}}}
    spec: {{containers: [{{name: {name}, image: {name}, ports: [{{containerPort: 8080}}]}}]}}
"""


SHOP = """apiVersion: v1
kind: Namespace
metadata: {name: shop, annotations: {linkerd.io/inject: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{name: http, port: 8080}]}
""" + _app("api-v2", "{app: api, version: v2}") + _app("api-get", "{app: api, version: get}")
LINKERD_SPLIT = SHOP + """---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {name: api, namespace: shop}
spec:
  parentRefs: [{group: core, kind: Service, name: api, port: 8080}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}, method: GET}]
    backendRefs: [{name: api-get, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x-canary, value: "1"}]}]
    backendRefs: [{name: api-v2, port: 8080}]
"""


def test_fact_linkerd_route_match_order():
    """Headers and query parameters outrank a method (the old belief put the method first),
    and an Exact path ties with a PathPrefix of its length (the old belief let Exact win)."""
    assert facts.value("linkerd.route-match-order", "order") == ["path", "headers", "query",
                                                                 "method"]
    prefix = StringMatch("prefix", "/api")
    assert rank(_m(prefix, headers=1)) > rank(_m(prefix, method="GET"))
    assert rank(_m(prefix, query=1)) > rank(_m(prefix, method="GET"))
    assert rank(_m(prefix, headers=1)) > rank(_m(prefix, query=2))
    assert rank(_m(StringMatch("exact", "/api"))) == rank(_m(StringMatch("prefix", "/api/")))
    assert rank(_m(StringMatch("exact", "/api/x"))) > rank(_m(prefix, headers=3))
    assert rank(None) == rank(_m(StringMatch("prefix", "/"))) == rank(_m())
    # The evaluator ranks with the same function: the header rule wins a GET with the header.
    route = {"kind": "HTTPRoute"}
    probe = Probe("shop", "api", 8080, "/api/x", "GET", (("x-canary", "1"),))
    by_method = gateway.score(route, {"path": {"type": "PathPrefix", "value": "/api"},
                                      "method": "GET"}, probe)
    by_header = gateway.score(route, {"path": {"type": "PathPrefix", "value": "/api"},
                                      "headers": [{"name": "x-canary", "value": "1"}]}, probe)
    assert by_method is not None and by_header is not None and by_header > by_method
    exact = gateway.score(route, {"path": {"type": "Exact", "value": "/api"}},
                          Probe("shop", "api", 8080, "/api", "GET", ()))
    prefixed = gateway.score(route, {"path": {"type": "PathPrefix", "value": "/api"}},
                             Probe("shop", "api", 8080, "/api", "GET", ()))
    assert exact is not None and exact == prefixed
    # End to end: the first-match VirtualService tries the header rule before the method rule,
    # and the equivalence check (Linkerd evaluator on the source) agrees.
    result = plan_yaml(LINKERD_SPLIT, source="linkerd", target="istio")
    [vs] = [m for m in manifests(result, "VirtualService") if m["metadata"]["name"] == "api"]
    kinds = [("headers" if "headers" in r["match"][0] else "method") for r in vs["spec"]["http"]]
    assert kinds == ["headers", "headers", "method", "method"]  # each PathPrefix is 2 rules
    eq = result.plan.equivalence
    assert eq is not None and eq.unexplained == []


def test_writers_and_evaluator_rank_from_the_register(monkeypatch: pytest.MonkeyPatch):
    """One place decides: given the Gateway API order (method before headers, Exact above a
    PathPrefix of its length), both the IR ranking and the evaluator's score follow it."""
    spec = {"order": ["path", "method", "headers", "query"], "exact_outranks_prefix": True}
    real = facts.value
    monkeypatch.setattr(facts, "value", lambda fid, key: spec[key]
                        if fid == "linkerd.route-match-order" else real(fid, key))
    caches = (precedence._key_order, precedence._exact_bonus)
    for cache in caches:
        cache.cache_clear()
    try:
        prefix = StringMatch("prefix", "/api")
        assert rank(_m(prefix, method="GET")) > rank(_m(prefix, headers=1))
        assert rank(_m(StringMatch("exact", "/api"))) > rank(_m(StringMatch("prefix", "/api")))
        route, probe = {"kind": "HTTPRoute"}, Probe("shop", "api", 8080, "/api", "GET", ())
        exact = gateway.score(route, {"path": {"type": "Exact", "value": "/api"}}, probe)
        prefixed = gateway.score(route, {"path": {"type": "PathPrefix", "value": "/api"}}, probe)
        assert exact is not None and prefixed is not None and exact > prefixed
    finally:
        for cache in caches:
            cache.cache_clear()


def test_fact_linkerd_route_tie_order():
    """Equal keys keep the first route by name, then the first rule."""
    routes = [{"kind": "HTTPRoute", "metadata": {"name": n}, "spec": {"rules": [
        {"matches": [{"path": {"type": t, "value": "/a"}}], "backendRefs": [{"name": n + t}]}]}}
        for n, t in (("b", "Exact"), ("a", "PathPrefix"))]
    best = gateway.best_rule(routes, Probe("shop", "api", 80, "/a", "GET", ()))
    assert best is not None and best[0]["metadata"]["name"] == "a"


# -- linkerd.retry-without-conditions ---------------------------------------------------------
LIMIT_ONLY = SHOP + """---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata:
  name: api
  namespace: shop
  annotations: {retry.linkerd.io/limit: "3", retry.linkerd.io/timeout: 2s}
spec:
  parentRefs: [{group: core, kind: Service, name: api, port: 8080}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: api-v2, port: 8080}]
"""


def test_fact_linkerd_retry_without_conditions():
    """retry.linkerd.io/limit (or /timeout) alone retries failed and refused requests: the
    Istio target keeps 3 attempts (the old belief wrote ``attempts: 0``, turning retries off)
    and Consul gets numRetries 3 on the same conditions."""
    istio = plan_yaml(LIMIT_ONLY, source="linkerd", target="istio")
    [vs] = [m for m in manifests(istio, "VirtualService") if m["metadata"]["name"] == "api"]
    assert vs["spec"]["http"][0]["retries"] == {
        "attempts": 3, "perTryTimeout": "2s",
        "retryOn": "connect-failure,refused-stream,reset"}
    assert istio.plan.equivalence is not None and istio.plan.equivalence.unexplained == []
    consul = plan_yaml(LIMIT_ONLY, source="linkerd", target="consul")
    [router] = [m for m in manifests(consul, "ServiceRouter") if m["metadata"]["name"] == "api"]
    dest = router["spec"]["routes"][0]["destination"]
    assert dest["numRetries"] == 3
    assert dest["retryOn"] == ["connect-failure", "refused-stream", "reset"]
    # "0" is unset: with nothing else, no retries (and the Istio rule says so explicitly).
    zero = LIMIT_ONLY.replace('retry.linkerd.io/limit: "3", retry.linkerd.io/timeout: 2s',
                              'retry.linkerd.io/limit: "0"')
    none = plan_yaml(zero, source="linkerd", target="istio")
    [vs] = [m for m in manifests(none, "VirtualService") if m["metadata"]["name"] == "api"]
    assert vs["spec"]["http"][0]["retries"] == {"attempts": 0}


# -- linkerd.failure-accrual-penalties ------------------------------------------------------
ISTIO_OUTLIER = """apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
""" + _app("api", "{app: api}").replace("%", "%%") + """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: shop}
spec:
  host: api.shop.svc.cluster.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 5, baseEjectionTime: %s}
"""


def _accrual(base: str) -> dict[str, str]:
    result = plan_yaml(ISTIO_OUTLIER % base, source="istio", target="linkerd")
    found = {}
    for m in manifests(result):
        found.update({k: v for k, v in (m.get("metadata", {}).get("annotations") or {}).items()
                      if k.startswith("balancer.linkerd.io/")})
    assert found, "the outlier detection became failure accrual"
    return found


def test_fact_linkerd_failure_accrual_penalties():
    """A min-penalty above the 1m default max-penalty comes with an equal max-penalty (the
    controller refuses min > max, and the old writer left max out)."""
    assert facts.value("linkerd.failure-accrual-penalties", "default_max_penalty") == "1m"
    long = _accrual("5m")
    assert long["balancer.linkerd.io/failure-accrual-consecutive-min-penalty"] == "5m"
    assert long["balancer.linkerd.io/failure-accrual-consecutive-max-penalty"] == "5m"
    short = _accrual("30s")
    assert short["balancer.linkerd.io/failure-accrual-consecutive-min-penalty"] == "30s"
    assert "balancer.linkerd.io/failure-accrual-consecutive-max-penalty" not in short
    edge = _accrual("1m")
    assert "balancer.linkerd.io/failure-accrual-consecutive-max-penalty" not in edge


# -- istio.default-retry ----------------------------------------------------------------------
def test_fact_istio_default_retry():
    """Istio 1.30's default retries name no status code: a 503 is not retried, with no
    setting to change it (EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY is gone)."""
    from migrate.dialects.consul import write_routing

    assert write_routing.ISTIO_DEFAULT_RETRY_ON == (
        "connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes")
    assert facts.value("istio.default-retry", "attempts") == 2
    text = (ROOT / "migrate/dialects/consul/write_routing.py").read_text(encoding="utf-8")
    assert "unless istiod runs with EXCLUDE_UNSAFE" not in text


# -- istio.native-sidecar -----------------------------------------------------------------
def test_fact_istio_native_sidecar():
    """With native sidecars istio-proxy is an init container: the "left Istio" check must read
    initContainers too (the old check read .spec.containers only, and passed for pods still
    on Istio)."""
    [check] = texts(ISTIO.verify_left("shop"))
    assert ".spec.initContainers[*].name" in check and "grep istio-proxy" in check
    pod = {"metadata": {"name": "api-1"}, "spec": {
        "initContainers": [{"name": "istio-init"},
                           {"name": "istio-proxy", "restartPolicy": "Always"}],
        "containers": [{"name": "api"}]}}
    assert "istio-proxy" in _jsonpath_names(check, pod)
    result = plan_yaml(LINKERD_SPLIT.replace("linkerd.io/inject: enabled", "x: y").replace(
        "policy.linkerd.io/v1beta3", "gateway.networking.k8s.io/v1").replace(
        "metadata: {name: shop, annotations: {x: y}}",
        "metadata: {name: shop, labels: {istio-injection: enabled}}"),
        source="istio", target="linkerd")
    moves = [c for s in result.plan.steps for c in texts(s.verify) if "grep istio-proxy" in c]
    assert moves and all(".spec.initContainers[*].name" in c for c in moves)


def _jsonpath_names(command: str, pod: dict[str, Any]) -> str:
    """What the command's jsonpath prints for one pod (container, then init container names)."""
    names = [c["name"] for c in pod["spec"].get("containers", [])]
    if ".spec.initContainers[*].name" in command:
        names += [c["name"] for c in pod["spec"].get("initContainers", [])]
    return f"{pod['metadata']['name']}: " + " ".join(names)


# -- consul.connect-inject-scope -----------------------------------------------------------
CONSUL_PODS = """
apiVersion: v1
kind: Namespace
metadata: {name: %(ns)s}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: %(ns)s}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata:
      labels: {app: api}
      annotations: {consul.hashicorp.com/connect-inject: "%(inject)s"}
    spec: {containers: [{name: api, image: api}]}
"""


def _consul_injection(ns: str, inject: str, **settings: Any) -> str:
    source = read_files(["-"], stdin=io.BytesIO(
        (CONSUL_PODS % {"ns": ns, "inject": inject}).encode()))
    result = ConsulReader(LossLog(), [], **settings).read(source)
    [w] = result.graph.of(Workload)
    return w.injection


def test_fact_consul_connect_inject_scope():
    """connect-inject "true" does not override the namespace scope (the old belief: the
    annotation always decides); "false" always wins."""
    assert _consul_injection("shop", "true") == "sidecar"
    assert _consul_injection("shop", "true", deny_namespaces=("shop",)) == "none"
    assert _consul_injection("shop", "true", allow_namespaces=("web",)) == "none"
    assert _consul_injection("shop", "true", allow_namespaces=("shop",)) == "sidecar"
    assert _consul_injection("kube-system", "true") == "none"
    assert _consul_injection("shop", "false", inject_default=True) == "none"
    # A move to Consul relies on the annotation: the runbook says to check the scope.
    manual = CONSUL.join_manual("shop", [])
    assert any("k8sAllowNamespaces" in m and "k8sDenyNamespaces" in m for m in manual)


def test_fact_consul_dataplane_container():
    """The injected Consul sidecar is consul-dataplane[-<service>]: one grep finds both."""
    [check] = texts(CONSUL.verify_left("shop"))
    assert "grep consul-dataplane" in check


def test_fact_istio_zero_attempts_disable_retries():
    """A Linkerd rule without retry annotations did not retry: Istio gets attempts 0."""
    text = LIMIT_ONLY.replace('  annotations: {retry.linkerd.io/limit: "3", '
                              'retry.linkerd.io/timeout: 2s}\n', "")
    result = plan_yaml(text, source="linkerd", target="istio")
    [vs] = [m for m in manifests(result, "VirtualService") if m["metadata"]["name"] == "api"]
    assert vs["spec"]["http"][0]["retries"] == {"attempts": 0}


def test_docs_facts_lists_every_fact():
    text = (ROOT / "docs" / "facts.md").read_text(encoding="utf-8")
    for fid in facts.register():
        assert f"`{fid}`" in text


def test_register_file_is_plain_yaml():
    data = yaml.safe_load((ROOT / "mappings" / "facts.yaml").read_text(encoding="utf-8"))
    assert set(data["facts"]) == set(facts.register())
