"""Operations a reviewer expects to be told about (issue 16): the target's trust anchor, Pod
Security Admission and the CNI plugin, other software in the namespace the cleanup deletes,
and the TLS secrets and CORS the old ingress served."""

from __future__ import annotations

import pytest

from tests.helpers import plan_yaml, texts

MESHES = ("istio", "linkerd", "consul")
PAIRS = [(s, t) for s in MESHES for t in MESHES if s != t]

# One meshed namespace per source mesh: a Deployment the mesh injects, and one mesh object.
_MESHED = {
    "istio": """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled%(psa)s}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: STRICT}}
""",
    "linkerd": """
apiVersion: v1
kind: Namespace
metadata: {name: shop, annotations: {linkerd.io/inject: enabled}%(psa_labels)s}
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web, namespace: shop}
spec: {podSelector: {matchLabels: {app: web}}, port: 8080}
""",
    "consul": """
apiVersion: v1
kind: Namespace
metadata: {name: shop%(psa_labels)s}
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceDefaults
metadata: {name: web, namespace: shop}
spec: {protocol: http}
""",
}
_WORKLOAD = """
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}%(consul)s}
    spec: {containers: [{name: web, image: web, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 8080}]}
"""


def _input(source: str, psa: str = "", extra: str = "") -> str:
    label = f"pod-security.kubernetes.io/enforce: {psa}" if psa else ""
    meshed = _MESHED[source] % {"psa": f", {label}" if label else "",
                                "psa_labels": f", labels: {{{label}}}" if label else ""}
    consul = ", annotations: {consul.hashicorp.com/connect-inject: 'true'}" \
        if source == "consul" else ""
    return meshed + _WORKLOAD % {"consul": consul} + extra


def _prerequisites(source: str, target: str, text: str):
    plan = plan_yaml(text, source, target, verify=False).plan
    return plan.steps[0], plan


CNI_WORDS = {"linkerd": "--linkerd-cni-enabled", "istio": "components.cni.enabled=true",
             "consul": "connectInject.cni.enabled=true"}


@pytest.mark.parametrize("source,target", PAIRS)
def test_a_restricted_namespace_installs_the_targets_cni_plugin(source: str, target: str):
    """baseline refuses NET_ADMIN/NET_RAW (fact kubernetes.pod-security-capabilities): the
    target's init container would be refused, so the target is installed through its CNI
    plugin, and the step says why."""
    step, _ = _prerequisites(source, target, _input(source, psa="baseline"))
    commands = " ; ".join(texts(step.commands))
    assert CNI_WORDS[target] in commands
    assert "shop enforce Pod Security baseline or restricted" in step.summary
    if target == "linkerd":
        rendered = texts(step.commands)
        cni = rendered.index("linkerd install-cni | kubectl apply -f -")
        control = rendered.index("linkerd install --linkerd-cni-enabled | kubectl apply -f -")
        assert cni < control  # the DaemonSet runs before the control plane is installed


@pytest.mark.parametrize("source,target", PAIRS)
def test_without_evidence_the_install_has_no_cni_plugin(source: str, target: str):
    step, _ = _prerequisites(source, target, _input(source, psa="privileged"))
    assert CNI_WORDS[target] not in " ; ".join(texts(step.commands))
    assert "Pod Security" not in step.summary


def test_a_source_cni_daemonset_is_evidence_too():
    daemonset = """
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: istio-cni-node, namespace: istio-system}
spec:
  selector: {matchLabels: {k8s-app: istio-cni-node}}
  template:
    metadata: {labels: {k8s-app: istio-cni-node}}
    spec: {containers: [{name: install-cni, image: cni}]}
"""
    step, _ = _prerequisites("istio", "consul", _input("istio", extra=daemonset))
    assert CNI_WORDS["consul"] in " ; ".join(texts(step.commands))
    assert "DaemonSet istio-system/istio-cni-node" in step.summary


@pytest.mark.parametrize("target,words", [
    ("linkerd", ("valid for one year", "both trust anchor and issuer",
                 "--identity-trust-anchors-file")),
    ("istio", ("istio-ca-secret", "plugin-ca-cert")),
    ("consul", ("built-in CA", "root_cert_ttl")),
])
def test_the_prerequisites_step_asks_for_the_trust_anchor_decision(target: str, words):
    source = "linkerd" if target != "linkerd" else "istio"
    step, _ = _prerequisites(source, target, _input(source))
    [note] = [m for m in step.manual if m.startswith("Decide the ")]
    assert all(w in note for w in words)


OTHER_SOFTWARE = """
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %(name)s, namespace: istio-system}
spec:
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec: {containers: [{name: x, image: x}]}
"""


def test_the_cleanup_keeps_a_control_namespace_other_software_lives_in():
    _, plan = _prerequisites("istio", "linkerd",
                             _input("istio", extra=OTHER_SOFTWARE % {"name": "cert-agent"}))
    cleanup = plan.steps[-1]
    assert "kubectl delete namespace istio-system --ignore-not-found" not in \
        texts(cleanup.commands)
    [note] = [m for m in cleanup.manual if m.startswith("Namespace istio-system")]
    assert "Deployment cert-agent" in note


def test_the_cleanup_deletes_a_control_namespace_with_only_the_meshs_own_workloads():
    _, plan = _prerequisites("istio", "linkerd",
                             _input("istio", extra=OTHER_SOFTWARE % {"name": "istiod"}))
    cleanup = plan.steps[-1]
    commands = texts(cleanup.commands)
    delete = commands.index("kubectl delete namespace istio-system --ignore-not-found")
    uninstall = commands.index("istioctl uninstall --purge -y")
    # The input need not show everything there: the step looks before the uninstall (after
    # it, Istio's own workloads are gone and the list says nothing about them).
    [check] = [i for i, c in enumerate(commands) if c.startswith(
        "kubectl get deployments,statefulsets,daemonsets,jobs,services,configmaps,secrets "
        "-n istio-system  # only Istio's own")]
    assert check < uninstall < delete
    assert not [m for m in cleanup.manual if m.startswith("Namespace istio-system")]


INGRESS = """
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["shop.example.com"]
    tls: {mode: SIMPLE, credentialName: shop-tls}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: ["shop.example.com"]
  gateways: [istio-system/public]
  http:
  - corsPolicy: {allowOrigins: [{exact: "https://example.com"}]}
    route: [{destination: {host: web.shop.svc.cluster.local}}]
"""


def test_the_ingress_step_names_tls_secrets_and_cors_policies():
    _, plan = _prerequisites("istio", "linkerd", _input("istio", extra=INGRESS))
    [ingress] = [s for s in plan.steps if s.kind == "ingress"]
    manual = " ".join(ingress.manual)
    assert "istio-system/shop-tls (Gateway public)" in manual
    assert "(corsPolicy): shop/web" in manual
