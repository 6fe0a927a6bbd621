"""Istio's install settings in the input: the mesh config of an ``IstioOperator``
(``spec.meshConfig``) or of the ``istio`` ConfigMap (``data.mesh``, a YAML MeshConfig).

The fields are MeshConfig's (istio.io/latest/docs/reference/config/istio.mesh.v1alpha1/):
``trustDomain``, ``rootNamespace`` and ``outboundTrafficPolicy.mode``. istioctl writes the
``istio`` ConfigMap (``istio-<revision>`` for a revision) into the namespace Istio is
installed in from an IstioOperator's meshConfig, so the two agree when both are dumped.
"""

from __future__ import annotations

from typing import Any

from migrate.install import InstallSetting, embedded_yaml, lookup
from migrate.sources.files import relative
from migrate.sources.model import RawObject

MESH_CONFIG_NAMES = ("istio",)
"""The mesh ConfigMap's name (``istio-<revision>`` under a revision)."""
_FIELDS = (("trust_domain", ("trustDomain",)), ("root_namespace", ("rootNamespace",)),
           ("istio_outbound_policy", ("outboundTrafficPolicy", "mode")))


def install_settings(objects: list[RawObject]) -> list[InstallSetting]:
    """The settings the input's IstioOperators and mesh ConfigMaps give, in input order."""
    found: list[InstallSetting] = []
    for raw in objects:
        if raw.kind == "IstioOperator" and raw.group == "install.istio.io":
            spec = raw.body.get("spec")
            config = spec.get("meshConfig") if isinstance(spec, dict) else None
            found += _settings(config, raw, "spec.meshConfig")
        elif raw.kind == "ConfigMap" and raw.group == "" and (
                raw.ref.name in MESH_CONFIG_NAMES or raw.ref.name.startswith("istio-")):
            data = raw.body.get("data")
            config = embedded_yaml(data.get("mesh") if isinstance(data, dict) else None)
            found += _settings(config, raw, "data.mesh")
    return found


def _settings(config: Any, raw: RawObject, prefix: str) -> list[InstallSetting]:
    if not isinstance(config, dict):
        return []
    where = f"{raw.kind} {raw.ref.namespace}/{raw.ref.name or '(unnamed)'}"
    found = []
    for option, path in _FIELDS:
        value = lookup(config, path)
        if value:
            origin = f"{where} {prefix}.{'.'.join(path)} ({relative(raw.source)}:{raw.line})"
            found.append(InstallSetting(option, value, origin))
    return found
