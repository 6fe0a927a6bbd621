"""The cluster source: read a live cluster, read-only, the way kubectl would.

This is the only module that imports ``kubernetes``, and only when a cluster is read. The
client loads the kubeconfig (or the in-cluster service account) and gives a configured
connection pool with its TLS settings and credentials; requests are plain GETs whose JSON
is parsed directly, so large reads never build client model objects.

How it reads (the contract the tests hold it to):
- discovery: ``/api/v1``, ``/apis``, then ``/apis/<group>/<version>`` for each wanted group
  the server serves, at the preferred version when the reader understands it;
- one paged LIST per kind, cluster-wide (``limit`` and ``continue``); an expired continue
  token (410) restarts that kind's LIST from the beginning, at most ``RETRY.restarts`` times
  with backoff; kinds are read concurrently, up to a bound; namespace filters are applied to
  the results, never as one call per namespace;
- 429 and 5xx answers are retried with exponential backoff and jitter, honouring
  ``Retry-After`` (seconds, capped), at most ``RETRY.attempts`` tries per request;
- each request has one deadline (``timeout``) from its start to its last byte;
- a 403 on a kind is reported (kind, verb, the rule that would grant it) and reading goes on;
- a 404 on a kind discovery listed re-runs discovery for its group once; a kind still
  missing is an input problem naming it, so the read is never presented as complete;
- Secrets are never requested; nothing but GET is ever sent; no message carries a
  credential (URL userinfo, tokens, passwords, keys: :mod:`migrate.sources.kubeconfig`).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from migrate.errors import ClusterUnauthorized, ClusterUnreachable, InputProblem, MeshNotFound
from migrate.sources.kubeconfig import Redactor, check_kubeconfig, safe_url
from migrate.sources.model import RawObject, SourceResult, strip_noise

PAGE = 500
WORKERS = 4


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is tried again (tests inject small values)."""

    attempts: int = 5
    """Tries of one request answered 429 or 5xx, the first included."""
    base: float = 0.5
    """First backoff in seconds; doubled at each further try."""
    cap: float = 8.0
    """Longest backoff in seconds."""
    retry_after_cap: float = 10.0
    """Longest wait a server's Retry-After may ask for, in seconds."""
    restarts: int = 3
    """Restarts of one LIST whose continue token expired (410)."""
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 0)."""
        if retry_after is not None:
            return min(retry_after, self.retry_after_cap)
        # Half fixed, half random ("equal jitter"): concurrent readers of one overloaded
        # server do not come back in step, and the wait still grows with each try.
        ceiling = min(self.cap, self.base * 2 ** attempt)
        return ceiling / 2 + self.jitter() * ceiling / 2


RETRY = RetryPolicy()
"""The policy a :class:`Cluster` uses unless given one."""


@dataclass(frozen=True)
class Resource:
    """A listable kind as discovery describes it."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        """``group/version`` (``v1`` for the core group)."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def path(self) -> str:
        """The cluster-wide collection path."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        return f"{base}/{self.plural}"

    @property
    def resource(self) -> str:
        """``plural.group`` as RBAC and kubectl name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


@dataclass
class Forbidden:
    """A kind the credentials may not list."""

    resource: Resource


@dataclass
class ClusterRead:
    """What reading a cluster produced besides the objects."""

    source: SourceResult
    forbidden: list[Forbidden] = field(default_factory=list)
    restarts: list[str] = field(default_factory=list)
    served_groups: dict[str, list[str]] = field(default_factory=dict)


class HttpError(ClusterUnreachable):
    """A non-2xx answer that is not retried (403, 404, 410...).

    A :class:`ClusterUnreachable`, so that one no caller expects still ends the run with a
    clear message and exit code 5 instead of a traceback.
    """

    def __init__(self, status: int, path: str, body: str) -> None:
        super().__init__(f"GET {path} failed: HTTP {status}")
        self.status = status
        self.path = path
        self.body = body


# -- the whole-request deadline ----------------------------------------------------------------
# urllib3's timeouts bound each socket operation: a server (or proxy) sending one byte now
# and then keeps a request alive forever. Each request therefore gets a watchdog timer that,
# at the deadline, shuts the request's socket down, which ends any blocked read at once. The
# connection registers itself with the request's watchdog (a thread-local) when the request
# is sent on it, so the watchdog shuts the right socket even with pooled keep-alive
# connections and concurrent readers.
_LOCAL = threading.local()


class _DeadlinePassed(Exception):
    """The deadline passed before the request was sent (during connect)."""


class _Watchdog:
    """One request's deadline."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._conn: Any = None
        self._sock: Any = None
        self._done = False
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        _LOCAL.watchdog = self
        self._timer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.finish()
        _LOCAL.watchdog = None

    def attach(self, conn: Any) -> None:
        """Called by the connection before and after the request is sent on it."""
        with self._lock:
            if self.expired:
                raise _DeadlinePassed()
            self._conn = conn
            # Kept apart from the connection: when the answer ends the connection (HTTP/1.0,
            # "Connection: close"), http.client drops conn.sock while the answer is still
            # being read from the same socket.
            self._sock = getattr(conn, "sock", None) or self._sock

    def finish(self) -> None:
        """The answer is read: stop watching (before the connection goes back to the pool)."""
        with self._lock:
            self._done = True
            self._conn = self._sock = None
        self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            sock = getattr(self._conn, "sock", None) or self._sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _AttachOnRequest:
    """Mixed into urllib3's connection classes: register with the request's watchdog."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        watchdog = getattr(_LOCAL, "watchdog", None)
        if watchdog is not None:
            watchdog.attach(self)
        result = super().request(*args, **kwargs)  # type: ignore[misc]
        if watchdog is not None:
            watchdog.attach(self)  # now connected: the socket the answer is read from
        return result


def _watched_pools(manager: Any) -> None:
    """Make every pool the manager creates use connections that register with the watchdog."""
    classes = {}
    for scheme, pool_cls in manager.pool_classes_by_scheme.items():
        conn_cls = type(f"Watched{pool_cls.ConnectionCls.__name__}",
                        (_AttachOnRequest, pool_cls.ConnectionCls), {})
        classes[scheme] = type(f"Watched{pool_cls.__name__}", (pool_cls,),
                               {"ConnectionCls": conn_cls})
    manager.pool_classes_by_scheme = classes
    manager.clear()


class Cluster:
    """A read-only connection to one cluster."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None,
                 timeout: float = 30.0, retry: RetryPolicy | None = None) -> None:
        try:
            import urllib3
            from kubernetes import client, config
        except ImportError as exc:  # pragma: no cover - kubernetes is a dependency
            raise ClusterUnreachable(f"the kubernetes client is not installed ({exc})") from None
        self._urllib3 = urllib3
        self.redact = Redactor()
        self.retry = retry or RETRY
        self.configuration = client.Configuration()
        self._load(config, kubeconfig, context)
        self.configuration.retries = False
        self.timeout = timeout
        # urllib3 never sends a URL's userinfo; dropping it here keeps it out of every message.
        self.host = safe_url(self.configuration.host.rstrip("/"))
        for value in (self.configuration.api_key or {}).values():
            self.redact.add([str(value), str(value).partition(" ")[2]])
        self.redact.add([self.configuration.password or ""])
        try:
            self._pool = client.ApiClient(self.configuration).rest_client.pool_manager
        except (ValueError, TypeError, urllib3.exceptions.HTTPError) as exc:
            raise ClusterUnreachable(self.redact(f"cannot use the connection settings of the "
                                                 f"kubeconfig: {exc}")) from None
        _watched_pools(self._pool)
        self.requests = 0

    def _load(self, config: Any, kubeconfig: str | None, context: str | None) -> None:
        path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or \
            os.path.expanduser("~/.kube/config")
        in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not kubeconfig and \
            not os.path.exists(path)
        try:
            if in_pod:
                config.load_incluster_config(client_configuration=self.configuration)
                return
            if not os.path.exists(path):
                raise ClusterUnreachable(
                    f"no kubeconfig at {path} (and not running in a pod): give --kubeconfig "
                    "or set KUBECONFIG")
            self.redact = check_kubeconfig(path, context)
            if context:
                contexts, _ = config.list_kube_config_contexts(config_file=path)
                names = sorted(c["name"] for c in contexts)
                if context not in names:
                    raise ClusterUnreachable(f"context {context!r} is not in {path} (contexts: "
                                             f"{', '.join(names) or 'none'})")
            config.load_kube_config(config_file=path, context=context,
                                    client_configuration=self.configuration,
                                    persist_config=False)
        except config.ConfigException as exc:
            raise ClusterUnreachable(self.redact(f"cannot use kubeconfig {path}: {exc}")) \
                from None
        except (ValueError, TypeError, KeyError, AttributeError, OSError) as exc:
            # The loader's own failures on shapes the check above does not cover.
            raise ClusterUnreachable(self.redact(
                f"cannot use kubeconfig {path}: {type(exc).__name__}: {exc}")) from None

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET a path and return its JSON; retry 429 and 5xx; map failures to clear errors.

        Raises:
            HttpError: a 4xx answer other than 401 and 429.
            ClusterUnauthorized: 401.
            ClusterUnreachable: no connection, TLS failure, the deadline passed, or 429/5xx
                still answered after the last try.
        """
        attempt = 0
        while True:
            status, headers, data = self._once(path, params)
            # client-go retries the same answers: "any 500 error code and 429 can trigger a
            # wait" (kubernetes/client-go rest/with_retry.go, checkWait). 501 Not Implemented
            # is left out: trying again cannot change it.
            if not (status == 429 or (status >= 500 and status != 501)):
                break
            attempt += 1
            if attempt >= self.retry.attempts:
                raise ClusterUnreachable(
                    f"{self.host} kept answering GET {path} with HTTP {status} "
                    f"({'too many requests' if status == 429 else 'server error'}); gave up "
                    f"after {attempt} tries: try again later")
            self.retry.sleep(self.retry.delay(attempt - 1, _retry_after(headers)))
        if status == 401:
            raise ClusterUnauthorized(
                f"{self.host} rejected the credentials (401 Unauthorized): they are expired or "
                "wrong; log in again or refresh the kubeconfig")
        if status >= 300:
            raise HttpError(status, path, data.decode("utf-8", "replace"))
        try:
            return json.loads(data)  # type: ignore[no-any-return]
        except ValueError:
            raise ClusterUnreachable(f"{self.host} answered GET {path} with something that is "
                                     "not JSON") from None

    def _once(self, path: str, params: dict[str, Any] | None) -> tuple[int, Any, bytes]:
        """One request, bounded by the deadline from its start to its last byte."""
        headers = {"Accept": "application/json"}
        # auth_settings() refreshes expiring tokens (exec plugins, OIDC) and names the header;
        # the setting's identifier differs between client versions, the header does not.
        for setting in self.configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                value = str(setting["value"])
                headers[setting["key"].title()] = value
                self.redact.add([value, value.partition(" ")[2]])
        url = self.host + path
        self.requests += 1
        u3 = self._urllib3
        with _Watchdog(self.timeout) as watchdog:
            try:
                response = self._pool.request(
                    "GET", url, fields=params or None, headers=headers, retries=False,
                    preload_content=False,
                    timeout=u3.Timeout(connect=self.timeout, read=self.timeout))
                try:
                    data = response.read()
                finally:
                    watchdog.finish()  # before the connection can serve another request
                    response.release_conn()
                return response.status, response.headers, data
            except _DeadlinePassed:
                raise self._timed_out(path) from None
            except (u3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
                if watchdog.expired:
                    raise self._timed_out(path) from None
                raise self._transport_error(exc) from None

    def _timed_out(self, path: str) -> ClusterUnreachable:
        return ClusterUnreachable(f"timed out after {self.timeout:g}s waiting for {self.host} "
                                  f"(GET {path})")

    def _transport_error(self, exc: Exception) -> ClusterUnreachable:
        u3 = self._urllib3
        if isinstance(exc, u3.exceptions.ProxyError):
            proxy = safe_url(str(self.configuration.proxy or "the proxy"))
            text = f"cannot connect to {self.host} through the proxy {proxy}: {_reason(exc)}"
        elif isinstance(exc, u3.exceptions.NewConnectionError):
            # Checked first: urllib3 makes it a subclass of ConnectTimeoutError.
            text = f"cannot connect to {self.host}: {_reason(exc)}"
        elif isinstance(exc, (u3.exceptions.ReadTimeoutError, u3.exceptions.ConnectTimeoutError)):
            text = f"timed out after {self.timeout:g}s waiting for {self.host}"
        elif isinstance(exc, u3.exceptions.SSLError) or "SSL" in str(exc) or \
                "CERTIFICATE" in str(exc).upper():
            text = f"TLS verification failed for {self.host}: {_reason(exc)}"
        else:
            text = f"cannot connect to {self.host}: {_reason(exc)}"
        return ClusterUnreachable(self.redact(text))

    # -- discovery --------------------------------------------------------------------------
    def discover(self, wanted: Iterable[tuple[str, str]], versions: dict[str, frozenset[str]],
                 ) -> tuple[list[Resource], dict[str, list[str]]]:
        """Resources for the wanted (group, kind) pairs the server serves, and served groups."""
        wanted = set(wanted)
        groups = {g for g, _ in wanted}
        served: dict[str, list[str]] = {}
        chosen: dict[str, str] = {}
        if "" in groups:
            served[""] = ["v1"]
            chosen[""] = "v1"
        listing = self.get("/apis") if groups - {""} else {}
        for entry in listing.get("groups", []):
            name = entry.get("name", "")
            if name not in groups:
                continue
            offered = [v["version"] for v in entry.get("versions", [])]
            served[name] = offered
            preferred = (entry.get("preferredVersion") or {}).get("version")
            known = versions.get(name)
            if known is None or preferred in known:
                chosen[name] = preferred or offered[0]
            else:
                usable = [v for v in offered if v in known]
                if usable:
                    chosen[name] = usable[0]
        found: list[Resource] = []
        for group in sorted(chosen):
            # A kind may be served only at another version (EnvoyFilter: v1alpha3 while the
            # group prefers v1): try the reader's other known versions for what is missing.
            order = [chosen[group]] + [v for v in served[group] if v != chosen[group]
                                       and v in versions.get(group, frozenset({v}))]
            missing = {k for g, k in wanted if g == group}
            for version in order:
                if not missing:
                    break
                for res in self._resources(group, version):
                    if res.kind in missing:
                        found.append(res)
                        missing.discard(res.kind)
        return sorted(found, key=lambda r: (r.group, r.kind)), served

    def _resources(self, group: str, version: str) -> list[Resource]:
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            listed = self.get(path).get("resources", [])
        except HttpError as exc:
            if exc.status == 404:
                return []
            raise ClusterUnreachable(f"discovery of {path} failed: HTTP {exc.status}") from None
        return [Resource(group, version, r["kind"], r["name"], bool(r.get("namespaced")))
                for r in listed
                if "/" not in r.get("name", "") and "list" in r.get("verbs", ["list"])]

    # -- listing ----------------------------------------------------------------------------
    def list_all(self, resource: Resource, progress: Callable[[Resource, int], None],
                 restarts: list[str]) -> list[dict[str, Any]]:
        """Every object of one kind, page by page; restart on an expired continue token.

        Raises:
            ClusterUnreachable: the continue token expired again after the last restart.
        """
        # On 410 for a continue request client-go's pager lists again from the start
        # (kubernetes/client-go tools/pager/pager.go, FullListIfExpired); the restarts are
        # bounded here, so a server whose tokens always expire cannot keep the read going.
        restart = 0
        while True:
            items = self._pages(resource, progress)
            if items is not None:
                return items
            restart += 1
            if restart > self.retry.restarts:
                raise ClusterUnreachable(
                    f"listing {resource.resource} failed: its continue token expired (410 Gone) "
                    f"{restart} times in a row; the server compacts faster than meshmigrate "
                    f"reads {PAGE} objects. Try again when the cluster is quieter")
            restarts.append(f"the continue token for {resource.resource} expired (410); "
                            f"listing it again from the start (restart {restart} of "
                            f"{self.retry.restarts})")
            self.retry.sleep(self.retry.delay(restart - 1))

    def _pages(self, resource: Resource, progress: Callable[[Resource, int], None],
               ) -> list[dict[str, Any]] | None:
        """The kind's objects, or None when a continue token expired."""
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            params: dict[str, Any] = {"limit": PAGE}
            if token:
                params["continue"] = token
            try:
                page = self.get(resource.path, params)
            except HttpError as exc:
                if exc.status == 410 and token:
                    return None
                raise
            for item in page.get("items") or []:
                item.setdefault("apiVersion", resource.api_version)
                item.setdefault("kind", resource.kind)
                items.append(strip_noise(item))
            progress(resource, len(items))
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return items


def _retry_after(headers: Any) -> float | None:
    """A Retry-After header in its seconds form (the HTTP-date form is not used by the API
    server and falls back to backoff), as client-go reads it (rest/with_retry.go,
    retryAfterSeconds)."""
    value = (headers.get("Retry-After") if headers is not None else None) or ""
    value = value.strip()
    return float(value) if value.isdigit() else None


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    for marker in ("Connection refused", "Name or service not known", "certificate verify failed"):
        if marker in text:
            return marker.lower()
    return text.splitlines()[0][:200] if text else type(exc).__name__


class _Rediscovery:
    """Discovery run again, once per group, for kinds whose LIST answered 404."""

    def __init__(self, cluster: Cluster, wanted: set[tuple[str, str]],
                 versions: dict[str, frozenset[str]]) -> None:
        self._cluster = cluster
        self._wanted = wanted
        self._versions = versions
        self._lock = threading.Lock()
        self._groups: dict[str, dict[str, Resource]] = {}

    def find(self, group: str, kind: str) -> Resource | None:
        """The kind as discovery describes it now (None: no longer served)."""
        with self._lock:
            if group not in self._groups:
                found, _ = self._cluster.discover(
                    {(g, k) for g, k in self._wanted if g == group}, self._versions)
                self._groups[group] = {r.kind: r for r in found}
            return self._groups[group].get(kind)


def read_named_configmaps(cluster: Cluster, named: Iterable[tuple[str, str]]
                          ) -> tuple[list[RawObject], list[tuple[str, str]]]:
    """The install ConfigMaps a mesh keeps its settings in, each fetched by name.

    GET by name, never LIST: a ConfigMap list would read every application's configuration,
    and the ClusterRole can grant exactly these names (``resourceNames``). Returns the objects
    found and the (namespace, name) pairs the server refused (403); a missing one (404) is
    simply not there (a revisioned or differently named install).
    """
    found: list[RawObject] = []
    refused: list[tuple[str, str]] = []
    for namespace, name in sorted(set(named)):
        path = f"/api/v1/namespaces/{namespace}/configmaps/{name}"
        try:
            obj = cluster.get(path)
        except HttpError as exc:
            if exc.status == 404:
                continue
            if exc.status == 403:
                refused.append((namespace, name))
                continue
            raise ClusterUnreachable(f"reading {path} failed: HTTP {exc.status}") from None
        if isinstance(obj, dict) and obj.get("kind", "ConfigMap") == "ConfigMap":
            found.append(RawObject({"apiVersion": "v1", "kind": "ConfigMap", **obj},
                                   "cluster", 0))
    return found, refused


def read_cluster(cluster: Cluster, wanted: Iterable[tuple[str, str]],
                 versions: dict[str, frozenset[str]], mesh_groups: Iterable[str],
                 namespaces: Iterable[str] = (),
                 progress: Callable[[Resource, int], None] = lambda r, n: None) -> ClusterRead:
    """Read every wanted kind once, cluster-wide, and keep what the namespace filter allows.

    A kind that cannot be read after discovery listed it is an input problem in
    ``result.source.problems``: the read is then not complete, and the caller says so.

    Raises:
        MeshNotFound: none of ``mesh_groups`` is served.
    """
    wanted = set(wanted)
    resources, served = cluster.discover(wanted, versions)
    mesh_groups = sorted(set(mesh_groups))
    if not any(g in served for g in mesh_groups):
        raise MeshNotFound("the cluster serves none of the mesh's API groups (looked for "
                           f"{', '.join(mesh_groups)}); is the mesh installed here?")
    keep = set(namespaces)
    result = ClusterRead(SourceResult(), served_groups=served)
    again = _Rediscovery(cluster, wanted, versions)

    def listed(resource: Resource) -> list[dict[str, Any]] | None:
        try:
            return cluster.list_all(resource, progress, result.restarts)
        except HttpError as exc:
            if exc.status == 403:
                return None
            if exc.status == 404:
                raise
            raise ClusterUnreachable(f"listing {resource.resource} failed: HTTP {exc.status}") \
                from None

    def one(resource: Resource) -> tuple[Resource, list[dict[str, Any]] | None, str]:
        try:
            return resource, listed(resource), ""
        except HttpError as exc:
            if exc.status != 404:
                raise
        # Discovery listed the kind a moment ago: its CRD was removed or changed version since,
        # or an aggregated API stopped serving it. "None of that kind" would be a guess, and a
        # wrong one drops every AuthorizationPolicy from the plan without a word.
        now = again.find(resource.group, resource.kind)
        if now is not None and now != resource:
            try:
                return now, listed(now), ""
            except HttpError as exc:
                if exc.status != 404:
                    raise
        state = "no longer lists it" if now is None else "still lists it"
        return resource, [], (
            f"cannot list {resource.resource} ({resource.kind}): the API server answered "
            f"404 Not Found after discovery listed it, and discovery run again {state}; no "
            f"{resource.kind} was read, so the plan may be missing those objects. Check the "
            "CRD (kubectl get crd) and re-run")

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        outcomes = list(pool.map(one, resources))
    for resource, items, problem in outcomes:
        if problem:
            result.source.problems.append(InputProblem("cluster", None, None, problem))
        if items is None:
            result.forbidden.append(Forbidden(resource))
            continue
        for item in items:
            meta = item.get("metadata") or {}
            ns = meta.get("name") if resource.kind == "Namespace" else meta.get("namespace")
            if keep and ns not in keep:
                continue
            result.source.objects.append(RawObject(item, "cluster", 0))
    return result
