"""Field helpers shared by the Consul reader's handlers."""

from __future__ import annotations

from migrate.dialects.fields import Fields, join

GROUP = "consul.hashicorp.com"
API = f"{GROUP}/v1alpha1"

# Consul's builtin Envoy extensions (consul/agent/envoyextensions/builtin): what each does in
# the model's terms. Anything else is a proxy extension.
_EXTENSION_FEATURES = {
    "builtin/ext-authz": "authz.custom",
    "builtin/otel-access-logging": "telemetry",
    "builtin/property-override": "extension.envoy_filter",
}


def present(f: Fields, path: str) -> bool:
    """Whether a field holds something (absent, null, {} and [] carry nothing)."""
    return f.peek(path) not in (None, {}, [], "")


def use_if(f: Fields, path: str, feature: str, detail: str = "") -> bool:
    """Record a feature use for a field that is set; True when it was."""
    if not present(f, path):
        f.get(path)
        return False
    f.use(feature, path, detail)
    return True


def envoy_extensions(f: Fields, path: str) -> None:
    """``envoyExtensions[]``: each builtin extension becomes the feature it implements."""
    for i, ext in enumerate(f.list(path)):
        item = join(path, i)
        name = str(ext.get("name", "")) if isinstance(ext, dict) else ""
        f.use(_EXTENSION_FEATURES.get(name, "extension.wasm"), item, name or "unnamed extension")


def expose(f: Fields, path: str) -> None:
    """``expose``: paths served without mTLS on their own listener, and exposed checks.

    Exposed paths accept plaintext from anyone (typically metrics or health checks reached
    from outside the mesh), which is what a port without mTLS means in the model.
    """
    for i, item in enumerate(f.list(join(path, "paths"))):
        detail = f"{item.get('path', '')} on port {item.get('listenerPort', '')}" \
            if isinstance(item, dict) else ""
        f.use("mtls.disable", f"{path}.paths[{i}]", f"exposed without mTLS: {detail}")
    if f.peek(join(path, "checks")):
        f.use("extension.proxy_config", join(path, "checks"), "expose.checks")
    else:
        f.get(join(path, "checks"))


def mesh_gateway(f: Fields, path: str) -> None:
    """``meshGateway.mode``: how traffic crosses datacenters or peers."""
    mode = f.peek(join(path, "mode"))
    if mode in (None, "", "none"):
        f.get(join(path, "mode"))
        f.get(path)
        return
    f.use("multicluster", path, f"mesh gateway mode {mode}")
