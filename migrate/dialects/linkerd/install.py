"""Linkerd's install settings in the input: the Helm values the control plane keeps in the
``linkerd-config`` ConfigMap (``data.values``, written by ``linkerd install`` and the
linkerd-control-plane chart since 2.10).

The value names are the chart's (linkerd2 ``charts/linkerd-control-plane/values.yaml``,
``pkg/charts/linkerd2/values.go`` at version-2.20): ``identityTrustDomain`` and
``proxy.defaultInboundPolicy``.
"""

from __future__ import annotations

from migrate.install import InstallSetting, embedded_yaml, lookup
from migrate.sources.files import relative
from migrate.sources.model import RawObject

CONFIG_NAME = "linkerd-config"
POLICIES = frozenset({"all-unauthenticated", "all-authenticated", "cluster-unauthenticated",
                      "cluster-authenticated", "audit", "deny"})
_FIELDS = (("trust_domain", ("identityTrustDomain",)),
           ("linkerd_default_policy", ("proxy", "defaultInboundPolicy")))

def install_settings(objects: list[RawObject]) -> list[InstallSetting]:
    """The settings of every ``linkerd-config`` ConfigMap in the input, in input order."""
    found: list[InstallSetting] = []
    for raw in objects:
        if raw.kind != "ConfigMap" or raw.group or raw.ref.name != CONFIG_NAME:
            continue
        data = raw.body.get("data")
        values = embedded_yaml(data.get("values") if isinstance(data, dict) else None)
        if not isinstance(values, dict):
            continue
        for option, path in _FIELDS:
            value = lookup(values, path)
            if not value:
                continue
            if option == "linkerd_default_policy" and value not in POLICIES:
                continue  # not one Linkerd accepts: the flag's default stands, and is shown
            found.append(InstallSetting(
                option, value, f"ConfigMap {raw.ref.namespace}/{CONFIG_NAME} data.values."
                f"{'.'.join(path)} ({relative(raw.source)}:{raw.line})"))
    return found
