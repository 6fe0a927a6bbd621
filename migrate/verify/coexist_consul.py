"""What Consul's own proxies do with the entries present at a step of a plan (issue 22).

The coexistence check (:mod:`migrate.verify.coexist`) evaluates each call with the caller's
mesh routing and the callee's admitting. With Consul as the source that is not enough:

- **Virtual IPs.** consul-k8s registers a Service's ClusterIP as the Consul service's virtual
  IP for every ServiceDefaults, ServiceRouter, ServiceSplitter, ServiceResolver and
  ServiceIntentions naming it, and Consul keeps it while one of them is left (fact
  ``consul.virtual-ip-kept``). A caller still on Consul then sends the call into the Consul
  service even once its last pod left Consul: no endpoints, the call fails. :func:`pinned`
  finds those entries; :func:`dead_end` is the refusal.
- **Pods waiting inside a move step.** A step restarts its namespaces one after the other;
  until its turn, a pod is still a Consul pod with strict mTLS unless its ServiceDefaults (or
  ProxyDefaults) says ``permissive`` and the Mesh entry allows it (fact
  ``consul.permissive-mtls``), so a neighbour that moved earlier in the step (plaintext) is
  refused. :func:`restart_order` and :func:`before_restarts` give the state at that moment.
- **The API gateway.** Consul's API gateway routes only to services in Consul's catalog (a
  backend that is not connect-injected is ``BackendNotFound``; fact
  ``consul.api-gateway-mesh-backends``), so a route whose backend left Consul fails while the
  gateway still serves it. :func:`gateway_routes` lists the routes and their backends.

Only the source objects are read here (with the Consul entries the steps applied or patched
in place of the originals: :func:`present`), never the IR.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any, Iterable

from migrate import facts
from migrate.verify.world import dig

GROUP = "consul.hashicorp.com"
GATEWAY_API = "gateway.networking.k8s.io"
ObjectKey = tuple[str, str, str, str]
"""(kind, API group, namespace, name), as :func:`migrate.verify.compare.object_key`."""
_PATCH = re.compile(r"^kubectl patch ([a-z]+)\.consul\.hashicorp\.com (\S+) -n (\S+) "
                    r"--type=merge -p (.+)$")
_ROLLS = re.compile(r"^kubectl (?:patch (?:deployment|statefulset|daemonset) \S+|rollout restart "
                    r"(?:deployment|statefulset|daemonset)/\S+) -n (\S+)")
_KINDS = {"servicedefaults": "ServiceDefaults", "proxydefaults": "ProxyDefaults",
          "mesh": "Mesh"}


def _key(obj: dict[str, Any]) -> ObjectKey:
    group = str(obj.get("apiVersion", "")).split("/")[0] if "/" in str(
        obj.get("apiVersion", "")) else ""
    return (str(obj.get("kind", "")), group, str(dig(obj, "metadata", "namespace", default="")),
            str(dig(obj, "metadata", "name", default="")))


def control_namespaces(objects: Iterable[dict[str, Any]]) -> set[str]:
    """Namespaces holding Consul's mesh-wide entries (Mesh, ProxyDefaults): every Consul proxy
    reads them, whichever namespace a call is in."""
    return {_key(o)[2] for o in objects if isinstance(o, dict) and _key(o)[1] == GROUP and
            o.get("kind") in ("Mesh", "ProxyDefaults")}


def entry_patches(commands: Iterable[str]) -> dict[ObjectKey, dict[str, Any]]:
    """The merge patches a step's commands make to Consul entries (``kubectl patch
    servicedefaults.consul.hashicorp.com NAME -n NS --type=merge -p JSON``)."""
    out: dict[ObjectKey, dict[str, Any]] = {}
    for command in commands:
        m = _PATCH.match(command.split("  #")[0].strip())
        if not m or m.group(1) not in _KINDS:
            continue
        try:
            patch = json.loads(shlex.split(m.group(4))[0])
        except (ValueError, IndexError):
            continue
        if isinstance(patch, dict):
            key = (_KINDS[m.group(1)], GROUP, m.group(3), m.group(2))
            out[key] = _merge(out.get(key, {}), patch)
    return out


def present(source: list[dict[str, Any]], applied: Iterable[dict[str, Any]],
            patches: dict[ObjectKey, dict[str, Any]]) -> list[dict[str, Any]]:
    """The Consul objects as a step leaves them: ``source`` (already without the deleted
    ones), the Consul entries the steps applied in place of (or beside) them (step 00's Mesh,
    a permissive ServiceDefaults), then the merge patches the commands made."""
    objects: dict[ObjectKey, dict[str, Any]] = {}
    order: list[ObjectKey] = []
    for obj in source:
        if isinstance(obj, dict):
            key = _key(obj)
            if key not in objects:
                order.append(key)
            objects[key] = obj
    for obj in applied:
        if isinstance(obj, dict) and _key(obj)[1] == GROUP:
            key = _key(obj)
            if key not in objects:
                order.append(key)
            objects[key] = obj
    for key, patch in patches.items():
        if key in objects:
            objects[key] = _merge(objects[key], patch)
    return [objects[k] for k in order]


def pinned(objects: Iterable[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(namespace, service) -> the first entry that keeps its virtual IP (``Kind/ns/name``)."""
    # fact: consul.virtual-ip-kept
    kinds = set(facts.value("consul.virtual-ip-kept", "kinds"))
    out: dict[tuple[str, str], str] = {}
    for obj in objects:
        if not isinstance(obj, dict) or _key(obj)[1] != GROUP or obj.get("kind") not in kinds:
            continue
        ns = str(dig(obj, "metadata", "namespace", default="default"))
        name = str(dig(obj, "metadata", "name", default=""))
        if obj.get("kind") == "ServiceIntentions":
            dest = dig(obj, "spec", "destination", default={})
            dest = dest if isinstance(dest, dict) else {}
            name, ns = str(dest.get("name", "")), str(dest.get("namespace") or ns)
            if "*" in name or "*" in ns:
                continue  # consul-k8s assigns no virtual IP to a wildcard destination
        out.setdefault((ns, name), f"{obj.get('kind')}/{ns}/{dig(obj, 'metadata', 'name')}")
    return out


def dead_end(service: tuple[str, str], pins: dict[tuple[str, str], str]) -> str | None:
    """Why a Consul caller's call to a Service whose pods all left Consul fails, if it does."""
    entry = pins.get(service)
    if entry is None:
        return None
    return (f"{entry} keeps the virtual IP of {service[0]}/{service[1]} registered in Consul: "
            "the caller's Consul proxy sends the call to a Consul service with no endpoints")


def before_restarts(commands: list[str]) -> list[str]:
    """The commands a step runs before its first pod restarts (a pod-template patch or a
    ``rollout restart``): the state its waiting pods see."""
    out = []
    for command in commands:
        if _ROLLS.match(command.split("  #")[0].strip()):
            break
        out.append(command)
    return out


def restart_order(commands: list[str]) -> list[str]:
    """The namespaces of a step in the order their pods start restarting."""
    out: list[str] = []
    for command in commands:
        m = _ROLLS.match(command.split("  #")[0].strip())
        if m and m.group(1) not in out:
            out.append(m.group(1))
    return out


def gateway_routes(objects: Iterable[dict[str, Any]]) -> list[tuple[str, ObjectKey,
                                                                    tuple[str, str]]]:
    """(route ``Kind/ns/name``, the route's object key as the cluster state keys it (kind in
    lower case), backend (namespace, Service)) for each route of Consul's API
    gateway: Gateway API routes whose parent is a Gateway of class ``consul`` (every Gateway
    of a Consul source when the input does not show the class)."""
    objects = [o for o in objects if isinstance(o, dict) and _key(o)[1] == GATEWAY_API]
    gateways = {(_key(o)[2], _key(o)[3]) for o in objects if o.get("kind") == "Gateway" and
                str(dig(o, "spec", "gatewayClassName", default="consul")) == "consul"}
    out = []
    for route in objects:
        if route.get("kind") not in ("HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute"):
            continue
        ns = _key(route)[2]
        parents = dig(route, "spec", "parentRefs", default=[]) or []
        if not any(isinstance(p, dict) and p.get("kind", "Gateway") == "Gateway" and
                   (str(p.get("namespace") or ns), str(p.get("name", ""))) in gateways
                   for p in parents):
            continue
        for rule in dig(route, "spec", "rules", default=[]) or []:
            for ref in (rule.get("backendRefs") or []) if isinstance(rule, dict) else []:
                if isinstance(ref, dict) and ref.get("kind", "Service") == "Service" and \
                        ref.get("group", "") in ("", "core"):
                    key = _key(route)
                    out.append((f"{route['kind']}/{ns}/{key[3]}",
                                (key[0].lower(), key[1], key[2], key[3]),
                                (str(ref.get("namespace") or ns), str(ref.get("name", "")))))
    return sorted(set(out))


def _merge(old: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) applied to a copy of ``old``."""
    out = dict(old)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
