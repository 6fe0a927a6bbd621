"""Signs that an Istio cluster is part of a multi-cluster or multi-network mesh.

A plan covers one cluster (emit/multicluster.py says so in the runbook). What ties this one
to others is reported as ``multicluster`` and never read as ingress or egress:

- an east-west gateway: an Istio Gateway that passes mTLS through by SNI
  (``tls.mode: AUTO_PASSTHROUGH``, the cross-network gateway of a multi-network mesh) or
  selects the ``istio: eastwestgateway`` pods, or a Gateway API Gateway labelled with a
  ``topology.istio.io/network``; its clients are other clusters' sidecars, not users, so
  moving DNS to a new ingress (the plan's ingress step) is wrong for it;
- ServiceEntries for ``*.global`` hosts, the multi-cluster DNS names of Istio's older
  replicated-control-plane setup, whose endpoints are other clusters' gateways: they are
  cross-cluster routing, not egress.
"""

from __future__ import annotations

from typing import Any

from migrate import facts

NETWORK_LABEL = "topology.istio.io/network"


def east_west_detail(kind: str, spec: Any, labels: Any) -> str:
    """Why a Gateway is an east-west gateway (empty when it is not)."""
    # fact: istio.east-west-gateway
    if isinstance(labels, dict) and NETWORK_LABEL in labels:
        return f"gateway of network {labels[NETWORK_LABEL]} (east-west traffic between clusters)"
    if kind != "Gateway" or not isinstance(spec, dict):
        return ""
    selector = spec.get("selector")
    pods = facts.value("istio.east-west-gateway", "selector_value")
    if isinstance(selector, dict) and pods in {str(v) for v in selector.values()}:
        return f"east-west gateway (selects istio: {pods})"
    servers = spec.get("servers")
    for server in servers if isinstance(servers, list) else []:
        tls = server.get("tls") if isinstance(server, dict) else None
        if isinstance(tls, dict) and tls.get("mode") == facts.value("istio.east-west-gateway",
                                                                    "tls_mode"):
            return "cross-network gateway (tls.mode AUTO_PASSTHROUGH: other clusters' mTLS)"
    return ""


def global_hosts(hosts: list[str]) -> list[str]:
    """The ``*.global`` hosts among a ServiceEntry's hosts."""
    # fact: istio.east-west-gateway
    suffix = facts.value("istio.east-west-gateway", "global_suffix")
    return [h for h in hosts if h.rstrip(".").endswith(suffix)]
