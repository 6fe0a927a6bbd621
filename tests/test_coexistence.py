"""Each mesh's side of a coexistence window: the commands and rewrites the planner takes from it."""

from __future__ import annotations

import json

import pytest

from migrate.dialects.consul.coexist import CONSUL
from migrate.dialects.istio.coexist import ISTIO
from migrate.dialects.linkerd.coexist import LINKERD
from migrate.errors import UsageError
from migrate.ir.model import Namespace, Origin, Workload
from migrate.losses import ObjectRef
from migrate.pipeline import check_pair
from migrate.plan.commands import Command, render
from migrate.sources.model import RawObject

ALL = [ISTIO, LINKERD, CONSUL]


def workload(kind: str = "Deployment", labels: dict[str, str] | None = None,
             annotations: dict[str, str] | None = None) -> Workload:
    ref = ObjectRef(kind, "shop", "web", "apps/v1")
    return Workload(kind, "shop", "web", "web", tuple(sorted((labels or {}).items())),
                    tuple(sorted((annotations or {}).items())), (), (), "inherit", (),
                    Origin(ref, "spec"))


def patch_body(command: Command) -> object:
    """The JSON given to ``kubectl patch -p`` (one argv word)."""
    [words] = command.pipeline
    return json.loads(words[words.index("-p") + 1])


@pytest.mark.parametrize("side", ALL, ids=lambda s: s.MESH)
def test_every_mesh_plays_both_roles(side):
    w = workload()
    for commands in (side.leave_commands("shop", None, [w]),
                     side.rejoin_commands("shop", None, [w]), side.join_commands("shop", {}, [w]),
                     side.unjoin_commands("shop", {}, [w]),
                     side.uninstall_commands(), side.install_commands(False, "1.0"),
                     side.install_verify(), side.verify_joined("shop", ["deployment/web"], True),
                     side.verify_enforced("shop", ["deployment/api"]), side.ingress_verify(), side.cleanup_verify()):
        assert commands and all(isinstance(c, Command) and c.pipeline for c in commands)
    other = next(s for s in ALL if s is not side)
    assert any(other.INGRESS in line for line in side.ingress_manual(other))
    assert side.TITLE in side.cleanup_summary(side) or other.TITLE in side.cleanup_summary(other)


def test_ownership_follows_the_api_group():
    assert ISTIO.owns(ObjectRef("VirtualService", "a", "b", "networking.istio.io/v1"))
    assert not ISTIO.owns(ObjectRef("HTTPRoute", "a", "b", "gateway.networking.k8s.io/v1"))
    assert LINKERD.owns(ObjectRef("ServiceProfile", "a", "b", "linkerd.io/v1alpha2"))
    assert LINKERD.owns(ObjectRef("Server", "a", "b", "policy.linkerd.io/v1beta3"))
    assert CONSUL.owns(ObjectRef("ServiceRouter", "a", "b", "consul.hashicorp.com/v1alpha1"))
    assert not CONSUL.owns(ObjectRef("Service", "a", "b", "v1"))
    assert render(CONSUL.delete_command(ObjectRef("ServiceIntentions", "a", "b",
                                                  "consul.hashicorp.com/v1alpha1"))) == \
        "kubectl delete serviceintentions.consul.hashicorp.com/b -n a --ignore-not-found"


def test_consul_pins_injection_per_pod_template_both_ways():
    w = workload(annotations={"consul.hashicorp.com/connect-inject": "true"})
    leave, = CONSUL.leave_commands("shop", None, [w])
    assert patch_body(leave) == {"spec": {"template": {"metadata": {"annotations": {
        "consul.hashicorp.com/connect-inject": "false"}}}}}
    rejoin, = CONSUL.rejoin_commands("shop", None, [w])
    assert patch_body(rejoin) == {"spec": {"template": {"metadata": {"annotations": {
        "consul.hashicorp.com/connect-inject": "true"}}}}}
    cron = workload("CronJob")
    join, = CONSUL.join_commands("shop", {}, [cron])
    assert patch_body(join) == {"spec": {"jobTemplate": {"spec": {"template": {"metadata": {
        "annotations": {"consul.hashicorp.com/connect-inject": "true"}}}}}}}
    undo, = CONSUL.unjoin_commands("shop", {}, [cron])
    assert patch_body(undo) == [{"op": "remove", "path": "/spec/jobTemplate/spec/template/"
                                 "metadata/annotations/consul.hashicorp.com~1connect-inject"}]
    # a bare Pod cannot be patched into or out of injection: it is recreated by hand
    assert CONSUL.join_commands("shop", {}, [workload("Pod")]) == []
    assert "ServiceAccount" in CONSUL.join_manual("shop", [w])[0]


def test_consul_neutralizes_mesh_destinations_only_and_keeps_the_rest():
    mesh = {"apiVersion": "consul.hashicorp.com/v1alpha1", "kind": "Mesh",
            "metadata": {"name": "mesh", "namespace": "consul", "resourceVersion": "7"},
            "spec": {"transparentProxy": {"meshDestinationsOnly": True},
                     "tls": {"incoming": {"tlsMinVersion": "TLSv1_2"}}}}
    open_mesh = {**mesh, "metadata": {"name": "other", "namespace": "consul"},
                 "spec": {"transparentProxy": {"meshDestinationsOnly": False}}}
    objects = {RawObject(b, "d.yaml", 1).ref: RawObject(b, "d.yaml", 1)
               for b in (mesh, open_mesh)}
    done, = CONSUL.neutralize(objects)
    # Pods waiting inside a move step are made permissive, which needs the Mesh flag (issue 22).
    assert done.body["spec"] == {"transparentProxy": {"meshDestinationsOnly": False},
                                 "tls": {"incoming": {"tlsMinVersion": "TLSv1_2"}},
                                 "allowEnablingPermissiveMutualTLS": True}
    assert done.opened == "spec.transparentProxy.meshDestinationsOnly"
    assert "resourceVersion" not in done.body["metadata"]
    assert mesh["spec"]["transparentProxy"]["meshDestinationsOnly"] is True  # input untouched


def test_leaving_istio_and_linkerd_removes_only_keys_the_templates_have():
    w = workload(labels={"sidecar.istio.io/inject": "true", "app": "web"})
    cmds = ISTIO.leave_commands("shop", None, [w])
    assert render(cmds[0]) == ("kubectl label namespace shop istio-injection- istio.io/rev- "
                               "istio.io/dataplane-mode-")
    assert [patch_body(c) for c in cmds[1:]] == [[{"op": "remove", "path":
                                                   "/spec/template/metadata/labels/"
                                                   "sidecar.istio.io~1inject"}]]
    lw = workload(annotations={"linkerd.io/inject": "enabled"})
    cmds = LINKERD.leave_commands("shop", None, [lw])
    assert render(cmds[0]) == "kubectl annotate namespace shop linkerd.io/inject-"
    assert len(cmds) == 2 and "linkerd.io~1inject" in render(cmds[1])
    record = Namespace("shop", (), (("linkerd.io/inject", "ingress"),), "sidecar", None)
    assert [render(c) for c in LINKERD.rejoin_commands("shop", record, [])] == [
        "kubectl annotate namespace shop linkerd.io/inject=ingress --overwrite"]


def test_linkerd_rollback_restores_only_the_injection_the_input_had():
    # Issue 22: a namespace without linkerd.io/inject (its pods injected one by one) got
    # linkerd.io/inject=enabled at rollback, and the pod templates' own annotations, removed
    # by the forward step, were never put back.
    bare = Namespace("shop", (), (("team", "a"),), "none", None)
    lw = workload(annotations={"linkerd.io/inject": "enabled"})
    cmds = LINKERD.rejoin_commands("shop", bare, [lw, workload(kind="StatefulSet")])
    assert not any("namespace" in render(c) for c in cmds)
    assert [patch_body(c) for c in cmds] == [
        {"spec": {"template": {"metadata": {"annotations": {"linkerd.io/inject": "enabled"}}}}}]
    assert LINKERD.rejoin_commands("shop", bare, [workload()]) == []
    # No Namespace object in the input: the plan's assumption (injected by the namespace)
    # stays, unless the pod templates say they are injected on their own.
    assert [render(c) for c in LINKERD.rejoin_commands("shop", None, [workload()])] == [
        "kubectl annotate namespace shop linkerd.io/inject=enabled --overwrite"]
    assert not any("namespace" in render(c) for c in LINKERD.rejoin_commands("shop", None, [lw]))


def test_istio_enforce_checks_strict_only_where_the_plan_writes_it():
    from migrate.dialects.base import Manifest
    strict = Manifest({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                       "metadata": {"name": "default", "namespace": "shop"},
                       "spec": {"mtls": {"mode": "STRICT"}}}, ())
    allow = Manifest({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                      "metadata": {"name": "a", "namespace": "shop"}, "spec": {}}, ())
    none = [render(c) for c in ISTIO.verify_enforced("shop", ["deployment/web"], [allow])]
    assert not any("STRICT" in line or "peerauthentication" in line for line in none)
    some = [render(c) for c in ISTIO.verify_enforced("shop", ["deployment/web"], [strict])]
    assert "kubectl get peerauthentication default -n shop -o 'jsonpath={.spec.mtls.mode}'" \
        "  # STRICT" in some
    # The enforce step's summary says STRICT only where it writes it, too.
    assert "STRICT" in ISTIO.enforced_policy([strict, allow])
    assert "STRICT" not in ISTIO.enforced_policy([allow])


def test_a_pair_must_name_two_different_meshes():
    with pytest.raises(UsageError, match="both istio"):
        check_pair("istio", "istio")
    with pytest.raises(UsageError, match="Did you mean linkerd"):
        check_pair("istio", "linkred")
