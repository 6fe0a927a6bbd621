"""Host names as meshes write them, resolved to Kubernetes Services."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

from migrate.ir.model import ServiceKey

_URL = re.compile(
    r"^(?:[a-z][a-z0-9+.-]*://)?(?:[^@/\s]*@)?([A-Za-z0-9.-]+)(?::\d+)?(?:[/?#].*)?$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# Every route names its hosts and backends, the graph its calls, the writers their targets:
# the same few (host, namespace) pairs are resolved over and over. ServiceKey is immutable,
# so one instance can answer them all.
@lru_cache(maxsize=1 << 16)
def service_of_host(host: str, namespace: str,
                    cluster_domain: str = "cluster.local") -> ServiceKey | None:
    """The Service a mesh host name designates, or None for wildcards and external names.

    ``reviews`` resolves in ``namespace``; ``reviews.shop``, ``reviews.shop.svc`` and
    ``reviews.shop.svc.<cluster_domain>`` resolve in ``shop`` (Istio's short-name rule).
    """
    host = host.strip().lower().rstrip(".")
    if not host or "*" in host:
        return None
    parts = host.split(".")
    suffix = ["svc"] + cluster_domain.split(".")
    if len(parts) == 1:
        name, ns = parts[0], namespace
    elif len(parts) == 2:
        name, ns = parts
    elif parts[2:] == suffix[: len(parts) - 2]:
        name, ns = parts[0], parts[1]
    else:
        return None
    if not (_LABEL.match(name) and _LABEL.match(ns)):
        return None
    return ServiceKey(ns, name)


def host_in_value(value: str) -> str | None:
    """The host part of an env value such as ``http://orders.orders:8080/x`` or ``db:5432``."""
    match = _URL.match(value.strip())
    if not match:
        return None
    host = match.group(1)
    # A bare word with no scheme, port or dot is too ambiguous to be a call ("true", "info").
    if "." not in host and ":" not in value and "://" not in value:
        return None
    return host


def ip_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """An IP address or CIDR block as a network (a bare address is a one-address block), or
    None for anything else, such as a host name."""
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None

