"""mTLS and authorization: Istio -> Linkerd Servers, policies and authentications."""

from __future__ import annotations

from tests.helpers import codes, plan_yaml, texts

APP = """
apiVersion: v1
kind: Namespace
metadata: {name: pay, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: pay}
spec:
  selector: {app: api}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: pay}
spec:
  template:
    metadata: {labels: {app: api}}
    spec:
      serviceAccountName: api
      containers:
      - name: app
        image: x
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /ready, port: 8080}}
"""


def policy(spec: str, kind="AuthorizationPolicy", name="allow") -> str:
    return APP + f"""---
apiVersion: security.istio.io/v1
kind: {kind}
metadata: {{name: {name}, namespace: pay}}
spec:
{spec}
"""


def by_kind(result, kind, phase=None):
    steps = [s for s in result.plan.steps if phase is None or s.kind == phase]
    return [m.body for s in steps for m in s.manifests if m.kind == kind]


def test_strict_namespace_stages_cluster_plaintext_then_enforces_all_authenticated():
    # Staged, STRICT admits the plaintext of callers still on Istio from the cluster's own
    # networks only (not audit, which admits anyone): docs/coexistence.md, "the rule".
    result = plan_yaml(policy("  mtls: {mode: STRICT}", kind="PeerAuthentication",
                              name="default"))
    [staged] = by_kind(result, "Server", "move")
    [enforced] = by_kind(result, "Server", "enforce")
    assert staged["spec"]["accessPolicy"] == "cluster-unauthenticated"
    assert enforced["spec"]["accessPolicy"] == "all-authenticated"
    assert staged["spec"]["port"] == 8080 and staged["spec"]["proxyProtocol"] == "HTTP/1"
    enforce = next(s for s in result.plan.steps if s.kind == "enforce")
    assert any("config.linkerd.io/default-inbound-policy=all-authenticated" in c
               for c in texts(enforce.commands))


def test_allow_by_principal_namespace_and_ip():
    result = plan_yaml(policy("""  selector: {matchLabels: {app: api}}
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/web/sa/frontend"]}
    - source: {namespaces: [ops], ipBlocks: [10.1.0.0/16]}
"""))
    mtls = {m["metadata"]["name"]: m["spec"] for m in by_kind(result, "MeshTLSAuthentication")}
    assert mtls == {
        "allow-r0s0": {"identityRefs": [{"kind": "ServiceAccount", "name": "frontend",
                                         "namespace": "web"}]},
        "allow-r0s1": {"identityRefs": [{"kind": "Namespace", "name": "ops"}]}}
    nets = {m["metadata"]["name"]: m["spec"] for m in by_kind(result, "NetworkAuthentication")}
    assert nets == {"allow-r0s1-net": {"networks": [{"cidr": "10.1.0.0/16"}]},
                    # fact: linkerd.cluster-networks (in-cluster plaintext callers only)
                    "plaintext-staging": {"networks": [
                        {"cidr": c} for c in ("10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12",
                                              "192.168.0.0/16", "fd00::/8")]}}
    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind(result, "AuthorizationPolicy")}
    assert {p["targetRef"]["kind"] for p in policies.values()} == {"Server"}
    refs = {name: sorted(r["name"] for r in spec["requiredAuthenticationRefs"])
            for name, spec in policies.items()}
    # Each grant, and for the staging window its plaintext twin: the identity requirement
    # dropped, the network requirement kept (any network when there was none).
    assert refs == {"allow-r0s0-api-8080": ["allow-r0s0"],
                    "allow-r0s0-api-8080-plaintext": ["plaintext-staging"],
                    "allow-r0s1-api-8080": ["allow-r0s1", "allow-r0s1-net"],
                    "allow-r0s1-api-8080-plaintext": ["allow-r0s1-net"]}
    enforce = next(s for s in result.plan.steps if s.kind == "enforce")
    for name in ("allow-r0s0-api-8080-plaintext", "allow-r0s1-api-8080-plaintext"):
        assert f"kubectl delete authorizationpolicy.policy.linkerd.io/{name} -n pay " \
               "--ignore-not-found" in texts(enforce.commands)
    [staged] = by_kind(result, "Server", "move")
    [enforced] = by_kind(result, "Server", "enforce")
    assert staged["spec"]["accessPolicy"] == enforced["spec"]["accessPolicy"] == "deny"


def test_path_rules_get_inbound_routes_and_probe_route_and_no_staging_catch_all():
    result = plan_yaml(policy("""  selector: {matchLabels: {app: api}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/web/sa/frontend"]}}]
    to: [{operation: {methods: [GET], paths: ["/api/*", /status]}}]
"""))
    inbound = {m["metadata"]["name"]: m for m in by_kind(result, "HTTPRoute")
               if m["spec"]["parentRefs"][0]["kind"] == "Server"}
    # No catch-all: staged, the Server is deny and only the rules' routes admit requests
    # (the plaintext twins drop the identity check, not the paths).
    assert set(inbound) == {"api-8080-r1", "api-8080-probes"}
    assert inbound["api-8080-r1"]["spec"]["rules"][0]["matches"] == [
        {"method": "GET", "path": {"type": "Exact", "value": "/status"}},
        {"method": "GET", "path": {"type": "RegularExpression", "value": "/api/.*"}}]
    assert inbound["api-8080-probes"]["spec"]["rules"][0]["matches"] == [
        {"method": "GET", "path": {"type": "Exact", "value": "/ready"}}]
    targets = {p["metadata"]["name"]: p["spec"]["targetRef"]["name"]
               for p in by_kind(result, "AuthorizationPolicy", "move")}
    assert targets["allow-r0s0-api-8080-r1-plaintext"] == "api-8080-r1"
    assert "AUTHZ_PROBE_ROUTE" in codes(result)


def test_deny_and_conditions_are_losses_and_fail_closed():
    result = plan_yaml(policy("""  selector: {matchLabels: {app: api}}
  rules:
  - from: [{source: {notNamespaces: [evil]}}]
  - from: [{source: {principals: ["cluster.local/ns/web/sa/frontend"]}}]
    when: [{key: "request.auth.claims[iss]", values: ["https://idp"]}]
""") + """---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: block, namespace: pay}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: [/admin]}}]}]
""")
    found = {(x.code, x.severity.value) for x in result.losses}
    # Both ALLOW rules are left out, so the Server admits nothing: /admin stays refused, and
    # the DENY is reported as kept by the allow-list rather than lost.
    assert {("AUTHZ_DENY_SUBSUMED", "info"), ("AUTHZ_SOURCE_NEGATED", "manual"),
            ("AUTHZ_CONDITION", "manual")} <= found
    # Neither inexpressible rule is converted into a wider grant.
    assert by_kind(result, "AuthorizationPolicy") == []
    [enforced] = by_kind(result, "Server", "enforce")
    assert enforced["spec"]["accessPolicy"] == "deny"


def test_wildcard_principals():
    result = plan_yaml(policy("""  selector: {matchLabels: {app: api}}
  rules:
  - from: [{source: {principals: ["*"]}}]
  - from: [{source: {principals: ["cluster.local/ns/ops/sa/*", "other.td/ns/x/sa/y"]}}]
  - from: [{source: {principals: ["spiffe-ish*"]}}]
"""))
    mtls = [m["spec"] for m in by_kind(result, "MeshTLSAuthentication")]
    assert {"identities": ["*"]} in mtls
    assert {"identities": ["*.ops.serviceaccount.identity.linkerd.cluster.local",
                           "y.x.serviceaccount.identity.linkerd.other.td"]} in mtls
    assert [x.severity.value for x in result.losses if x.code == "AUTHZ_PRINCIPAL"] == [
        "degraded", "manual"]


def test_server_overlap_index_finds_the_pairs_comparing_every_pair_finds():
    import random
    from types import SimpleNamespace

    from migrate.dialects.linkerd.policy import _overlapping
    from migrate.ir.graph import selects

    def every_pair(servers):  # the definition: each Server against each other one
        return [(a.name, b.name) for a in servers for b in servers
                if a is not b and a.port == b.port and a.name < b.name and (
                    selects(tuple(a.selector.items()), b.workload.pod_labels)
                    or selects(tuple(b.selector.items()), a.workload.pod_labels))]

    rnd = random.Random(6)
    for _ in range(500):
        servers = []
        for i in range(rnd.randint(0, 10)):
            keys = rnd.sample("abcd", rnd.randint(0, 3))
            labels = tuple(sorted((k, rnd.choice("xy")) for k in keys))
            servers.append(SimpleNamespace(
                name=f"{rnd.choice('pqrs')}{i}", port=rnd.choice((80, 81)),
                selector=dict(labels), workload=SimpleNamespace(pod_labels=labels)))
        assert [(a.name, b.name) for a, b in _overlapping(servers)] == every_pair(servers)
