"""Linkerd as the source (issue 22, Linkerd points; issue 16, multicluster): targeted checks
beside the golden cases in tests/golden_pairs/linkerd-to-*."""

from __future__ import annotations

from pathlib import Path

from migrate.pipeline import PlanOptions, plan_migration
from tests.conftest import SAMPLES
from tests.helpers import codes, plan_yaml

GOLDEN = Path(__file__).parent / "golden_pairs"


def test_routes_copied_at_step_00_are_seen_by_the_coexistence_check():
    # The shop's Gateway API routes on catalog and orders are re-created as policy.linkerd.io
    # routes at step 00 (Istio would apply the originals). Linkerd callers read the copies, so
    # no call is rerouted; the check used to see only the deleted originals and reported 7
    # calls from frontend to catalog as rerouted until frontend moved.
    result = plan_migration(PlanOptions("linkerd", "istio", [str(SAMPLES / "linkerd/shop")]))
    assert result.plan.coexistence
    assert [len(step["routing_changed"]) for step in result.plan.coexistence] == \
        [0] * len(result.plan.steps)


def test_a_removed_route_without_a_copy_is_still_reported_as_rerouted():
    # The check must still see a real change: the same plan without the step 00 copies (as
    # if the plan had deleted the originals only) reroutes frontend's calls to catalog.
    from migrate.pipeline import COEXISTENCE
    from migrate.plan.commands import render
    from migrate.verify.coexist import coexistence

    options = PlanOptions("linkerd", "istio", [str(SAMPLES / "linkerd/shop")])
    result = plan_migration(options)
    plan = result.plan
    moved: list[str] = []
    steps = []
    for step in plan.steps:
        if step.kind == "move":
            moved = moved + step.namespaces
        manifests = [m.body for m in step.manifests
                     if not (step.number == 0 and m.kind == "HTTPRoute")]
        steps.append((manifests, [render(c) for c in step.commands], list(moved)))
    out = coexistence(steps, [o.body for o in result.read.objects], [(a, b) for a, b, _ in plan.dependencies],
                      source_mesh="linkerd", target_mesh="istio",
                      source_groups=COEXISTENCE["linkerd"].GROUP_SUFFIXES)
    assert len(out[0]["routing_changed"]) > 0


# A Service port with no protocol name and an HTTPRoute on it, added to the injected-labels
# case: Consul needs http in ServiceDefaults, and the loss says why in the source's terms.
PROTOCOL_UNDECLARED = """
---
apiVersion: v1
kind: Service
metadata: {name: api-raw, namespace: shop}
spec:
  selector: {app: api}
  ports: [{port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api-raw, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: api-raw, port: 8080}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v2}}]
    timeouts: {request: 5s}
"""


def test_a_linkerd_source_is_not_told_istio_sniffed_its_protocol():
    base = (GOLDEN / "linkerd-to-consul/05-injected-labels/input.yaml").read_text()
    result = plan_yaml(base + PROTOCOL_UNDECLARED, "linkerd", "consul")
    messages = [loss.message for loss in result.losses if loss.code == "CONSUL_PROTOCOL"]
    assert messages and all("Istio" not in m for m in messages), messages
    assert any("detected it on each connection" in m for m in messages)


def _multicluster(target: str):
    case = GOLDEN / f"linkerd-to-{target}" / "07-multicluster" / "input.yaml"
    return plan_migration(PlanOptions("linkerd", target, [str(case)]))


def test_linkerd_multicluster_is_reported_and_mirrors_are_not_local():
    from migrate.emit.runbook import render_runbook
    from migrate.ir.model import Route, Service

    result = _multicluster("istio")
    lost = {(loss.object.kind, loss.object.name) for loss in result.losses
            if loss.code == "MULTICLUSTER"}
    assert lost == {("Link", "west"), ("Service", "web-west"), ("Service", "web-federated"),
                    ("TrafficSplit", "web-failover"), ("Service", "web")}
    # Mirrored and federated Services are other clusters' endpoints: not Services here.
    assert {s.key.name for s in result.read.graph.of(Service)} == {"web"}
    # The failover split's weights are the operator's, not a static split.
    assert not [r for r in result.read.graph.of(Route) if r.name == "web-failover"]
    assert not any(m.kind == "VirtualService" for s in result.plan.steps for m in s.manifests)
    assert "FIELD_UNMODELLED" not in codes(result)
    runbook = render_runbook(result.plan)
    section = runbook.split("## Other clusters", 1)[1].split("\n## ", 1)[0]
    assert "covers this cluster only" in section
    for name in ("Link linkerd-multicluster/west", "Service shop/web-west",
                 "TrafficSplit shop/web-failover"):
        assert f"`{name}`" in section


def test_cleanup_uninstalls_the_multicluster_extension_before_linkerd():
    from migrate.plan.commands import render

    cleanup = _multicluster("consul").plan.steps[-1]
    lines = [render(c) for c in cleanup.commands]
    mc = lines.index(next(line for line in lines if line.startswith(
        "linkerd multicluster uninstall | kubectl delete -f -")))
    core = lines.index("linkerd uninstall | kubectl delete -f -")
    link = lines.index("kubectl delete link.multicluster.linkerd.io/west -n "
                       "linkerd-multicluster --ignore-not-found")
    assert link < mc < core  # links go first, then the extension, then the control plane
    assert any("linkerd multicluster install" in (c if isinstance(c, str) else render(c))
               for c in cleanup.rollback)
    # Without multicluster objects, no such command.
    shop = plan_migration(PlanOptions("linkerd", "consul", [str(SAMPLES / "linkerd/shop")]))
    assert not any("multicluster" in render(c) for c in shop.plan.steps[-1].commands)


def test_istio_east_west_gateway_is_not_ingress_and_global_hosts_are_not_egress():
    case = GOLDEN / "istio-to-linkerd" / "05-multicluster" / "input.yaml"
    result = plan_migration(PlanOptions("istio", "linkerd", [str(case)]))
    lost = {(loss.object.kind, loss.object.name) for loss in result.losses
            if loss.code == "MULTICLUSTER"}
    assert lost == {("Gateway", "cross-network-gateway"), ("ServiceEntry", "db-remote"),
                    ("Namespace", "istio-system")}
    assert not [s for s in result.plan.steps if s.kind == "ingress"]
    assert not {"EGRESS_EXTERNAL", "EGRESS_SERVICE_ENTRY", "INGRESS_GATEWAY"} & set(codes(result))


def test_consul_peering_gets_the_other_clusters_section():
    from migrate.emit.runbook import render_runbook

    result = plan_migration(PlanOptions("consul", "istio", [str(SAMPLES / "consul")]))
    assert "MULTICLUSTER" in codes(result)
    assert "## Other clusters" in render_runbook(result.plan)


def test_only_hosts_that_can_name_a_cluster_service_lose_their_service_entry():
    case = GOLDEN / "linkerd-to-istio" / "06-egress-short-host" / "input.yaml"
    text = case.read_text().replace("hostnames: [api.stripe.com, smiley]",
                                    "hostnames: [api.stripe.com, smiley, web.emojivoto, "
                                    "db.default, x.svc.cluster.local, example.org]")
    result = plan_yaml(text, "linkerd", "istio")
    [entry] = [m.body for s in result.plan.steps for m in s.manifests
               if m.kind == "ServiceEntry"]
    assert entry["spec"]["hosts"] == ["api.stripe.com", "example.org"]
    [loss] = [loss for loss in result.losses if loss.code == "EGRESS_HOST_IN_CLUSTER"]
    for host in ("smiley", "web.emojivoto", "db.default", "x.svc.cluster.local"):
        assert host in loss.message
