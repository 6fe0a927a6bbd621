"""The cluster source: read a live cluster, read-only, the way kubectl would.

This is the only module that imports ``kubernetes``, and only when a cluster is read. The
client loads the kubeconfig (or the in-cluster service account) and gives a configured
connection pool with its TLS settings and credentials; requests are plain GETs whose JSON
is parsed directly, so large reads never build client model objects.

How it reads (the contract the tests hold it to):
- discovery: ``/api/v1``, ``/apis``, then ``/apis/<group>/<version>`` for each wanted group
  the server serves, at the preferred version when the reader understands it;
- one paged LIST per kind, cluster-wide (``limit`` and ``continue``); an expired continue
  token (410) restarts that kind's LIST from the beginning; kinds are read concurrently, up to
  a bound; namespace filters are applied to the results, never as one call per namespace;
- a 403 on a kind is reported (kind, verb, the rule that would grant it) and reading goes on;
- Secrets are never requested; nothing but GET is ever sent.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from migrate.errors import ClusterUnauthorized, ClusterUnreachable, MeshNotFound
from migrate.sources.model import RawObject, SourceResult, strip_noise

PAGE = 500
WORKERS = 4


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


class HttpError(Exception):
    """A non-2xx answer."""

    def __init__(self, status: int, path: str, body: str) -> None:
        super().__init__(f"{status} for {path}")
        self.status = status
        self.path = path
        self.body = body


class Cluster:
    """A read-only connection to one cluster."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None,
                 timeout: float = 30.0) -> None:
        try:
            import urllib3
            from kubernetes import client, config
        except ImportError as exc:  # pragma: no cover - kubernetes is a dependency
            raise ClusterUnreachable(f"the kubernetes client is not installed ({exc})") from None
        self._urllib3 = urllib3
        self.configuration = client.Configuration()
        self._load(config, kubeconfig, context)
        self.configuration.retries = False
        self.timeout = timeout
        self.host = self.configuration.host.rstrip("/")
        self._pool = client.ApiClient(self.configuration).rest_client.pool_manager
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
            raise ClusterUnreachable(f"cannot use kubeconfig {path}: {exc}") from None

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET a path and return its JSON; map transport failures to clear errors."""
        headers = {"Accept": "application/json"}
        # auth_settings() refreshes expiring tokens (exec plugins, OIDC) and names the header;
        # the setting's identifier differs between client versions, the header does not.
        for setting in self.configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"].title()] = setting["value"]
        url = self.host + path
        self.requests += 1
        u3 = self._urllib3
        try:
            response = self._pool.request(
                "GET", url, fields=params or None, headers=headers, retries=False,
                timeout=u3.Timeout(connect=self.timeout, read=self.timeout))
        except u3.exceptions.NewConnectionError as exc:
            # Checked first: urllib3 makes it a subclass of ConnectTimeoutError.
            raise ClusterUnreachable(f"cannot connect to {self.host}: {_reason(exc)}") from None
        except u3.exceptions.SSLError as exc:
            raise ClusterUnreachable(f"TLS verification failed for {self.host}: "
                                     f"{_reason(exc)}") from None
        except (u3.exceptions.ReadTimeoutError, u3.exceptions.ConnectTimeoutError):
            raise ClusterUnreachable(f"timed out after {self.timeout:g}s waiting for "
                                     f"{self.host}") from None
        except u3.exceptions.HTTPError as exc:
            if "SSL" in str(exc) or "CERTIFICATE" in str(exc).upper():
                raise ClusterUnreachable(f"TLS verification failed for {self.host}: "
                                         f"{_reason(exc)}") from None
            raise ClusterUnreachable(f"cannot connect to {self.host}: {_reason(exc)}") from None
        if response.status == 401:
            raise ClusterUnauthorized(
                f"{self.host} rejected the credentials (401 Unauthorized): they are expired or "
                "wrong; log in again or refresh the kubeconfig")
        if response.status >= 300:
            raise HttpError(response.status, path, response.data.decode("utf-8", "replace"))
        return json.loads(response.data)

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
        listing = self.get("/apis")
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
        """Every object of one kind, page by page; restart on an expired continue token."""
        while True:
            items: list[dict[str, Any]] = []
            token = ""
            expired = False
            while True:
                params: dict[str, Any] = {"limit": PAGE}
                if token:
                    params["continue"] = token
                try:
                    page = self.get(resource.path, params)
                except HttpError as exc:
                    if exc.status == 410 and token:
                        expired = True
                        break
                    raise
                for item in page.get("items") or []:
                    item.setdefault("apiVersion", resource.api_version)
                    item.setdefault("kind", resource.kind)
                    items.append(strip_noise(item))
                progress(resource, len(items))
                token = (page.get("metadata") or {}).get("continue") or ""
                if not token:
                    return items
            if expired:
                restarts.append(f"the continue token for {resource.resource} expired (410); "
                                "listing it again from the start")


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    for marker in ("Connection refused", "Name or service not known", "certificate verify failed"):
        if marker in text:
            return marker.lower()
    return text.splitlines()[0][:200]


def read_cluster(cluster: Cluster, wanted: Iterable[tuple[str, str]],
                 versions: dict[str, frozenset[str]], mesh_groups: Iterable[str],
                 namespaces: Iterable[str] = (),
                 progress: Callable[[Resource, int], None] = lambda r, n: None) -> ClusterRead:
    """Read every wanted kind once, cluster-wide, and keep what the namespace filter allows.

    Raises:
        MeshNotFound: none of ``mesh_groups`` is served.
    """
    resources, served = cluster.discover(wanted, versions)
    mesh_groups = sorted(set(mesh_groups))
    if not any(g in served for g in mesh_groups):
        raise MeshNotFound("the cluster serves none of the mesh's API groups (looked for "
                           f"{', '.join(mesh_groups)}); is the mesh installed here?")
    keep = set(namespaces)
    result = ClusterRead(SourceResult(), served_groups=served)

    def one(resource: Resource) -> tuple[Resource, list[dict[str, Any]] | None]:
        try:
            return resource, cluster.list_all(resource, progress, result.restarts)
        except HttpError as exc:
            if exc.status == 403:
                return resource, None
            if exc.status == 404:
                return resource, []
            raise ClusterUnreachable(f"listing {resource.resource} failed: HTTP {exc.status}") \
                from None

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        outcomes = list(pool.map(one, resources))
    for resource, items in outcomes:
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
