"""Install configuration in the input (an IstioOperator, the istio mesh ConfigMap, Linkerd's
linkerd-config values) sets what today only flags give; a flag still wins, and the plan says
where each setting came from (issue 16)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from migrate.cli import main
from migrate.losses import Severity
from tests.helpers import plan_yaml

APP = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{name: http, port: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: api, ports: [{containerPort: 8080}]}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-web, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  rules: [{from: [{source: {principals: ["corp.example/ns/web/sa/front"]}}]}]
"""

# istioctl accepts an IstioOperator without metadata.name (it is install input, not an
# object of the cluster).
OPERATOR = """---
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
spec:
  meshConfig:
    trustDomain: corp.example
    outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""


def settings(result) -> dict[str, tuple[object, str]]:
    return {s.option: (s.value, s.origin) for s in result.plan.settings}


def foreign_principal_losses(result) -> list[str]:
    return [x.code for x in result.losses if "corp.example" in x.message
            and x.severity is not Severity.INFO]


def test_an_unnamed_istio_operator_is_read_for_its_mesh_config():
    without = plan_yaml(APP, "istio", "linkerd")
    assert settings(without)["trust_domain"] == ("cluster.local", "default")
    assert foreign_principal_losses(without)  # another trust domain's principal: not carried

    result = plan_yaml(APP + OPERATOR, "istio", "linkerd")
    assert not result.problems
    value, origin = settings(result)["trust_domain"]
    assert value == "corp.example"
    assert origin.startswith("IstioOperator") and "spec.meshConfig.trustDomain" in origin
    assert settings(result)["istio_outbound_policy"][0] == "REGISTRY_ONLY"
    assert settings(result)["root_namespace"] == ("istio-system", "default")
    assert not foreign_principal_losses(result)  # the principal is in the mesh's own domain
    # REGISTRY_ONLY from the mesh config is carried as the mesh-wide egress restriction.
    assert [x.code for x in result.losses if x.code == "EGRESS_MESH_ONLY"] == ["EGRESS_MESH_ONLY"]
    assert not [x for x in without.losses if x.code == "EGRESS_MESH_ONLY"]


def test_the_istio_mesh_config_map_is_read_too():
    config_map = """---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    trustDomain: corp.example
    rootNamespace: mesh-root
"""
    result = plan_yaml(APP + config_map, "istio", "linkerd")
    assert settings(result)["trust_domain"][0] == "corp.example"
    assert settings(result)["root_namespace"][0] == "mesh-root"
    assert "ConfigMap istio-system/istio data.mesh.rootNamespace" in \
        settings(result)["root_namespace"][1]


def test_a_flag_wins_and_the_plan_says_so(tmp_path: Path):
    src = tmp_path / "in.yaml"
    src.write_text(APP + OPERATOR)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["plan", "--from", "istio", "--to", "linkerd", "-f",
                                       str(src), "-o", str(out), "--trust-domain",
                                       "cluster.local"])
    assert result.exit_code == 0, result.stderr
    document = json.loads((out / "plan.json").read_text())
    [trust] = [s for s in document["source"]["settings"] if s["name"] == "trust_domain"]
    assert trust["value"] == "cluster.local"
    assert trust["from"].startswith("command line (the input's IstioOperator")
    assert "'corp.example'" in trust["from"]
    runbook = (out / "RUNBOOK.md").read_text()
    assert "`trust_domain` = `cluster.local`: command line" in runbook
    assert "`istio_outbound_policy` = `REGISTRY_ONLY`: IstioOperator" in runbook


def test_linkerd_config_values_set_the_cluster_default_policy():
    text = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, annotations: {linkerd.io/inject: enabled}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: linkerd-config, namespace: linkerd}
data:
  values: |
    identityTrustDomain: corp.example
    proxy:
      defaultInboundPolicy: cluster-authenticated
"""
    result = plan_yaml(text, "linkerd", "istio")
    assert settings(result)["linkerd_default_policy"][0] == "cluster-authenticated"
    assert settings(result)["trust_domain"][0] == "corp.example"
    assert "ConfigMap linkerd/linkerd-config data.values.proxy.defaultInboundPolicy" in \
        settings(result)["linkerd_default_policy"][1]


def test_consul_settings_are_recorded_as_flags_or_defaults():
    text = ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: web}\n"
            "spec: {template: {metadata: {annotations: {consul.hashicorp.com/connect-inject: "
            "'true'}}, spec: {containers: [{name: web, image: web}]}}}\n")
    result = plan_yaml(text, "consul", "istio")
    assert settings(result)["consul_default_intention"] == ("deny", "default")
