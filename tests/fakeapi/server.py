"""A small Kubernetes API server for tests: the real REST protocol over HTTP or HTTPS.

It serves discovery (/version, /api, /api/v1, /apis, /apis/<group>/<version>), cluster-wide
and namespaced LISTs with ``limit`` and ``continue``, 403 per resource, 404 for unserved
groups, 410 for expired continue tokens, bearer-token auth, and logs every request. CRDs
loaded into it register their kinds. Only GET is served; anything else is logged and
refused with 405.

Faults a real cluster shows, injected per test: a kind that vanishes between discovery and
its LIST (or whose LIST answers 404 while discovery still lists it), continue tokens that
expire once or every time, queued error answers (429 with Retry-After, 500, 503) per path,
and answers sent a byte at a time (the status line and headers, or only the body).
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable
from urllib.parse import parse_qs, urlparse

CORE = [  # (group, version, kind, plural, namespaced)
    ("", "v1", "Namespace", "namespaces", False),
    ("", "v1", "Service", "services", True),
    ("", "v1", "ServiceAccount", "serviceaccounts", True),
    ("", "v1", "Pod", "pods", True),
    ("", "v1", "Secret", "secrets", True),
    ("", "v1", "ConfigMap", "configmaps", True),
    ("apps", "v1", "Deployment", "deployments", True),
    ("apps", "v1", "StatefulSet", "statefulsets", True),
    ("apps", "v1", "DaemonSet", "daemonsets", True),
    ("apps", "v1", "ReplicaSet", "replicasets", True),
    ("batch", "v1", "Job", "jobs", True),
    ("batch", "v1", "CronJob", "cronjobs", True),
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions",
     False),
]


def kube_version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key putting versions in Kubernetes' priority order (v1 > v1beta2 > v1alpha1)."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if match is None:
        return (3, 0, 0, version)
    major, level, minor = match.groups()
    rank = {None: 0, "beta": 1, "alpha": 2}[level]
    return (rank, -int(major), -int(minor or 0), version)


@dataclass
class Kind:
    group: str
    versions: list[str]
    kind: str
    plural: str
    namespaced: bool


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]


@dataclass
class State:
    token: str = "test-token"
    kinds: dict[tuple[str, str], Kind] = field(default_factory=dict)
    objects: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    forbidden: set[str] = field(default_factory=set)
    """Plurals (``plural`` or ``plural.group``) whose LIST answers 403, and
    ``plural/namespace/name`` entries whose GET answers 403."""
    expire_once: set[str] = field(default_factory=set)
    """Plurals whose first continue token is answered with 410."""
    expire_always: set[str] = field(default_factory=set)
    """Plurals whose every continue token is answered with 410 (at most ``expire_limit``
    times in all, so a client that never gives up still ends)."""
    expire_limit: int = 200
    vanish: set[str] = field(default_factory=set)
    """Plurals whose first LIST unregisters the kind (its CRD was deleted) and answers 404."""
    list_404: set[str] = field(default_factory=set)
    """Plurals whose LIST answers 404 while discovery keeps listing them."""
    move: dict[str, str] = field(default_factory=dict)
    """Plural -> version: the first LIST at another version moves the kind to that version
    (its CRD was upgraded between discovery and the LIST) and answers 404."""
    faults: dict[str, list[tuple[int, str | None]]] = field(default_factory=dict)
    """Request path -> answers (status, Retry-After header or None) given, in order, before
    the path is served normally."""
    slow: dict[str, tuple[str, float]] = field(default_factory=dict)
    """Request path -> (``headers`` or ``body``, seconds per byte): the answer is sent a byte
    at a time from the status line, or from the body; after ``slow_for`` seconds the
    connection is closed with the answer unfinished."""
    slow_for: float = 5.0
    log: list[Request] = field(default_factory=list)
    stall: bool = False
    """Accept requests but never answer (for timeout tests)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def register(self, group: str, version: str, kind: str, plural: str, namespaced: bool) -> None:
        known = self.kinds.setdefault((group, kind), Kind(group, [], kind, plural, namespaced))
        if version not in known.versions:
            known.versions.append(version)

    def load_crds(self, crds: Iterable[dict[str, Any]]) -> None:
        """Register the kinds of CustomResourceDefinitions (served versions only)."""
        for crd in crds:
            if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for v in spec["versions"]:
                if v.get("served", True):
                    self.register(spec["group"], v["name"], spec["names"]["kind"],
                                  spec["names"]["plural"], spec.get("scope") == "Namespaced")
            self.add([crd])

    def add(self, objects: Iterable[dict[str, Any]]) -> None:
        """Store objects under their group and kind."""
        for obj in objects:
            group = obj["apiVersion"].rpartition("/")[0]
            self.objects.setdefault((group, obj["kind"]), []).append(obj)
        for items in self.objects.values():
            items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))


def new_state() -> State:
    state = State()
    for row in CORE:
        state.register(*row)
    return state


class Handler(BaseHTTPRequestHandler):
    state: State

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _record(self) -> Request:
        url = urlparse(self.path)
        req = Request(self.command, url.path, parse_qs(url.query))
        with self.state.lock:
            self.state.log.append(req)
        return req

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        head = [f"{self.protocol_version} {status} {self.responses.get(status, ('',))[0]}",
                "Content-Type: application/json", f"Content-Length: {len(data)}",
                *(f"{k}: {v}" for k, v in (headers or {}).items())]
        raw = ("\r\n".join(head) + "\r\n\r\n").encode()
        slow = self.state.slow.get(urlparse(self.path).path)
        if slow is None:
            self.wfile.write(raw + data)
            return
        phase, delay = slow
        start = 0 if phase == "headers" else len(raw)
        self.wfile.write(raw[:start])
        self.wfile.flush()
        self._dribble((raw + data)[start:], delay)

    def _dribble(self, data: bytes, delay: float) -> None:
        """Send ``data`` a byte at a time; give up (closing the connection) after a while."""
        self.close_connection = True
        until = time.monotonic() + self.state.slow_for
        try:
            for i in range(len(data)):
                if time.monotonic() > until:
                    return
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                time.sleep(delay)
        except OSError:  # the client hung up: what a deadline does
            return

    def _status(self, code: int, reason: str, message: str,
                headers: dict[str, str] | None = None) -> None:
        self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                          "reason": reason, "message": message, "code": code}, headers)

    def _fault(self, path: str) -> bool:
        """Answer with the next queued fault for ``path``, if any."""
        with self.state.lock:
            queue = self.state.faults.get(path)
            if not queue:
                return False
            status, retry_after = queue.pop(0)
        reason = {429: "TooManyRequests", 500: "InternalError",
                  503: "ServiceUnavailable"}.get(status, "InternalError")
        self._status(status, reason, f"injected {status}",
                     {"Retry-After": retry_after} if retry_after is not None else None)
        return True

    def do_POST(self) -> None:  # noqa: N802
        self._record()
        self._status(405, "MethodNotAllowed", "read-only test server")

    do_PUT = do_PATCH = do_DELETE = do_POST  # noqa: N815

    def do_GET(self) -> None:  # noqa: N802
        req = self._record()
        if self.state.stall:
            threading.Event().wait(30)
            return
        if self.headers.get("Authorization") != f"Bearer {self.state.token}":
            self._status(401, "Unauthorized", "Unauthorized")
            return
        if self._fault(req.path):
            return
        parts = [p for p in req.path.split("/") if p]
        if parts == ["version"]:
            self._send(200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0"})
        elif parts == ["api"]:
            self._send(200, {"kind": "APIVersions", "versions": ["v1"]})
        elif parts == ["apis"]:
            self._send(200, self._groups())
        elif parts[:1] == ["api"] and len(parts) == 2:
            self._send(200, self._resources("", parts[1]))
        elif parts[:1] == ["apis"] and len(parts) == 3:
            body = self._resources(parts[1], parts[2])
            if body["resources"]:
                self._send(200, body)
            else:
                self._status(404, "NotFound", f"the server could not find {req.path}")
        else:
            self._list(req, parts)

    def _groups(self) -> dict[str, Any]:
        groups: dict[str, list[str]] = {}
        for k in list(self.state.kinds.values()):
            if k.group:
                for v in k.versions:
                    if v not in groups.setdefault(k.group, []):
                        groups[k.group].append(v)
        out = []
        for name in sorted(groups):
            # Like the real API server, list a group's versions GA first, then beta, then alpha,
            # newest first; the first is the preferred version (apiextensions-apiserver sorts
            # CRD versions with version.CompareKubeAwareVersionStrings).
            versions = sorted(groups[name], key=kube_version_priority)
            out.append({"name": name, "versions": [{"groupVersion": f"{name}/{v}", "version": v}
                                                   for v in versions],
                        "preferredVersion": {"groupVersion": f"{name}/{versions[0]}",
                                             "version": versions[0]}})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": out}

    def _resources(self, group: str, version: str) -> dict[str, Any]:
        res = [{"name": k.plural, "singularName": k.kind.lower(), "namespaced": k.namespaced,
                "kind": k.kind, "verbs": ["get", "list", "watch"]}
               for k in list(self.state.kinds.values())
               if k.group == group and version in k.versions]
        return {"kind": "APIResourceList", "groupVersion": f"{group}/{version}".lstrip("/"),
                "resources": res}

    def _list(self, req: Request, parts: list[str]) -> None:
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            group, version, rest = parts[1], parts[2], parts[3:]
        namespace = None
        if len(rest) in (3, 4) and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        kind = next((k for k in list(self.state.kinds.values()) if k.group == group
                     and version in k.versions and k.plural == (rest[0] if rest else "")), None)
        if kind is not None and namespace is not None and len(rest) == 2:
            self._get_one(kind, group, version, namespace, rest[1], req.path)
            return
        if kind is None or len(rest) != 1:
            self._status(404, "NotFound", f"the server could not find {req.path}")
            return
        resource = f"{kind.plural}.{group}" if group else kind.plural
        if self.state.move.get(resource, version) != version:
            with self.state.lock:
                kind.versions[:] = [self.state.move.pop(resource)]
        if resource in self.state.vanish:
            with self.state.lock:
                self.state.vanish.discard(resource)
                del self.state.kinds[(group, kind.kind)]
        if resource in self.state.vanish | self.state.list_404 or \
                (group, kind.kind) not in self.state.kinds or version not in kind.versions:
            self._status(404, "NotFound", f"the server could not find {req.path}")
            return
        if kind.plural in self.state.forbidden or resource in self.state.forbidden:
            self._status(403, "Forbidden", f'{resource} is forbidden: User "test" cannot list '
                         f'resource "{kind.plural}" in API group "{group}" at the cluster scope')
            return
        items = [o for o in self.state.objects.get((group, kind.kind), [])
                 if namespace is None or o["metadata"].get("namespace") == namespace]
        limit = int(req.query.get("limit", ["0"])[0] or 0)
        token = req.query.get("continue", [""])[0]
        start = int(token.split(":")[1]) if token else 0
        if token and resource in self.state.expire_once:
            with self.state.lock:
                self.state.expire_once.discard(resource)
            self._status(410, "Expired", "The provided continue parameter is too old")
            return
        if token and resource in self.state.expire_always and self.state.expire_limit > 0:
            with self.state.lock:
                self.state.expire_limit -= 1
            self._status(410, "Expired", "The provided continue parameter is too old")
            return
        end = start + limit if limit else len(items)
        page = [self._as_served(o, group, version) for o in items[start:end]]
        meta: dict[str, Any] = {"resourceVersion": "12345"}
        if end < len(items):
            meta["continue"] = f"c:{end}"
        self._send(200, {"kind": f"{kind.kind}List", "apiVersion": f"{group}/{version}".lstrip("/"),
                         "metadata": meta, "items": page})

    def _get_one(self, kind: Kind, group: str, version: str, namespace: str, name: str,
                 path: str) -> None:
        """GET one namespaced object by name (403 when its plural is forbidden)."""
        if f"{kind.plural}/{namespace}/{name}" in self.state.forbidden:
            self._status(403, "Forbidden", f'{kind.plural} "{name}" is forbidden')
            return
        found = [o for o in self.state.objects.get((group, kind.kind), [])
                 if o["metadata"].get("namespace") == namespace
                 and o["metadata"]["name"] == name]
        if not found:
            self._status(404, "NotFound", f"the server could not find {path}")
            return
        # A GET of one object, unlike a LIST's items, carries its apiVersion and kind.
        self._send(200, {"apiVersion": f"{group}/{version}".lstrip("/"), "kind": kind.kind,
                         **self._as_served(found[0], group, version)})

    @staticmethod
    def _as_served(obj: dict[str, Any], group: str, version: str) -> dict[str, Any]:
        # Real servers omit apiVersion/kind on list items and add bookkeeping.
        out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
        meta = dict(out.get("metadata") or {})
        meta.setdefault("uid", "00000000-0000-0000-0000-000000000000")
        meta.setdefault("resourceVersion", "1")
        meta.setdefault("managedFields", [{"manager": "kubectl", "operation": "Apply"}])
        out["metadata"] = meta
        out.setdefault("status", {})
        return out


class FakeAPIServer:
    """Runs the server in a thread; use as a context manager."""

    def __init__(self, state: State, tls: tuple[str, str] | None = None) -> None:
        handler = type("BoundHandler", (Handler,), {"state": state})
        self.state = state
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeAPIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
