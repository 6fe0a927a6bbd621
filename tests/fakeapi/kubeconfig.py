"""Write a real kubeconfig file pointing at the fake API server."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml


def write_kubeconfig(path: Path, server: str, token: str, ca: Path | None = None,
                     context: str = "test", cluster_extra: dict[str, Any] | None = None,
                     user_extra: dict[str, Any] | None = None) -> Path:
    """A kubeconfig with one context; ``*_extra`` add (or override) cluster and user fields."""
    cluster: dict[str, object] = {"server": server}
    if ca is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca.read_bytes()).decode()
    cluster.update(cluster_extra or {})
    user: dict[str, object] = {"token": token}
    user.update(user_extra or {})
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "fake", "cluster": cluster}],
        "users": [{"name": "tester", "user": user}],
        "contexts": [{"name": context, "context": {"cluster": "fake", "user": "tester"}}],
    }
    path.write_text(yaml.safe_dump(config))
    return path
