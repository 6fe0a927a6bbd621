"""ServiceIntentions -> IR authorization, with Consul's precedence made explicit.

Consul semantics (mapping-consul-others.md 1.4; Consul docs "Service intentions
configuration reference"):
- one ServiceIntentions per destination (``*`` for every destination); each source carries an
  L4 ``action`` or an ordered L7 ``permissions[]`` list, never both;
- for one (source, destination) pair the most specific intention decides. In Consul CE
  (one namespace) the order is: exact source -> exact destination, ``*`` -> exact destination,
  exact source -> ``*``, ``*`` -> ``*``, then the default (the ACL default policy, an install
  setting: ``default_intention``);
- ``permissions[]`` are evaluated top to bottom, the first match is terminal, and a request no
  permission matches gets the default behaviour (fact ``consul.intention-permissions-first-match``).

Istio-style authorization (the IR) has no precedence: DENY policies first, then any ALLOW
policy must match. So the decision for each caller class is computed here and written as
one policy per destination service:
- when callers nobody names are refused (default deny, or a ``*`` deny), an ALLOW policy
  listing what is allowed (an empty list refuses everything);
- when they are allowed, a DENY policy listing what is refused.
First-match permission lists that need negation ("allow /api unless an earlier deny matched")
cannot be written exactly; the rule is made stricter and ``CONSUL_INTENTION_APPROX`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from migrate.dialects.consul.names import ConsulNames, Instance
from migrate.dialects.consul.methods import read_methods
from migrate.dialects.consul.read_common import present
from migrate.dialects.consul.read_jwt import JwtUse, read_jwt_use
from migrate.dialects.fields import Fields, join
from migrate.ir.graph import MeshGraph
from migrate.ir.model import (
    AuthzOperation,
    AuthzPolicy,
    AuthzRule,
    AuthzSource,
    JwtRequirement,
    ExternalService,
    FeatureUse,
    Origin,
)
from migrate.losses import LossLog, ObjectRef, Severity

if TYPE_CHECKING:
    from migrate.dialects.consul.reader import ConsulReader

ANY = "*"
_JWT = "authz.source.request_principals"
_NEGATED_OP = "authz.operation.negated"
_NEGATED_SOURCE = "authz.source.negated"
_REMOTE = "authz.source.trust_domains"
_REGEX = "authz.operation.regex"
"""Path regex and header conditions: the IR's operations carry only exact/prefix paths."""


@dataclass(frozen=True)
class PermissionFacts:
    """One L7 permission: an action for requests matching its operation."""

    action: str
    operation: AuthzOperation | None
    """None: every request (no ``http`` block)."""
    narrowing: tuple[str, ...]
    """Conditions with no model (header matches, path regex, JWT claims)."""
    path: str
    jwt: JwtUse = ()
    """The permission's ``jwt.providers`` (its JWT requirement, also in ``narrowing``)."""


@dataclass(frozen=True)
class SourceFacts:
    """One ``sources[]`` entry."""

    name: str
    namespace: str
    """Enterprise only: a Kubernetes namespace under namespace mirroring; empty in CE."""
    action: str
    """``allow`` or ``deny``; empty when ``permissions`` decide."""
    permissions: tuple[PermissionFacts, ...]
    remote: bool
    """A peer, partition or sameness group: an identity from another cluster."""
    path: str

    @property
    def key(self) -> tuple[str, str]:
        """Identity key for precedence lookups."""
        return (self.namespace, self.name)


@dataclass
class IntentionsFacts:
    """One ServiceIntentions object."""

    ref: ObjectRef
    destination: str
    namespace: str
    sources: list[SourceFacts] = field(default_factory=list)
    jwt: bool = False
    """``spec.jwt``: every request needs a valid token."""
    jwt_use: JwtUse = ()
    """``spec.jwt.providers``."""

    def source(self, key: tuple[str, str]) -> SourceFacts | None:
        """The local source entry for an identity key, if any."""
        return next((s for s in self.sources if s.key == key and not s.remote), None)


def _namespace(f: Fields, path: str) -> str:
    value = f.string(path)
    return "" if value in ("", "default") else value


def read_service_intentions(reader: ConsulReader, f: Fields, graph: MeshGraph) -> None:
    """Parse one ServiceIntentions; the policies are built once every name is known."""
    destination = f.string("spec.destination.name")
    if not destination:
        f.invalid("spec.destination.name", "a ServiceIntentions needs a destination name")
        f.get("spec", whole=True)
        return
    facts = IntentionsFacts(f.ref, destination, _namespace(f, "spec.destination.namespace"))
    if present(f, "spec.jwt"):
        facts.jwt_use = read_jwt_use(f, "spec.jwt")
        f.use(_JWT, "spec.jwt", "every request needs a valid JWT")
        facts.jwt = True
    f.note("authz.allow", "spec")
    for i in range(len(f.list("spec.sources"))):
        source = _source(f, f"spec.sources[{i}]")
        if source is not None:
            facts.sources.append(source)
    reader.state.add_named(f, reader.state.intentions, destination, facts)


def _source(f: Fields, path: str) -> SourceFacts | None:
    name = f.string(join(path, "name"))
    if not name:
        f.invalid(join(path, "name"), "an intention source needs a name")
        f.get(path, whole=True)
        return None
    f.get(join(path, "description"))
    f.get(join(path, "type"))  # always "consul" (the only source type)
    remote = False
    for key in ("peer", "partition", "samenessGroup"):
        if present(f, join(path, key)):
            f.use("multicluster", join(path, key), f"intention source {key}")
            remote = True
        else:
            f.get(join(path, key))
    namespace = _namespace(f, join(path, "namespace"))
    action = f.string(join(path, "action")).lower()
    perms = tuple(_permission(f, f"{path}.permissions[{j}]")
                  for j in range(len(f.list(join(path, "permissions")))))
    if action and perms:
        f.invalid(join(path, "action"), "a source has either an action or permissions, not "
                                        "both (Consul rejects it); the permissions were used")
        action = ""
    elif action not in ("allow", "deny") and not perms:
        f.invalid(join(path, "action"), f"action {action!r} is not allow or deny")
        return None
    return SourceFacts(name, namespace, action, perms, remote, path)


def _permission(f: Fields, path: str) -> PermissionFacts:
    action = f.string(join(path, "action")).lower()
    if action not in ("allow", "deny"):
        f.invalid(join(path, "action"), f"action {action!r} is not allow or deny; read as deny")
        action = "deny"
    narrowing: list[str] = []
    jwt: JwtUse = ()
    if present(f, join(path, "jwt")):
        jwt = read_jwt_use(f, join(path, "jwt"))
        f.use(_JWT, join(path, "jwt"), "JWT providers and claims")
        narrowing.append(_JWT)
    http = join(path, "http")
    if not present(f, http):
        f.get(http)
        return PermissionFacts(action, None, tuple(narrowing), path, jwt)
    paths: tuple[str, ...] = ()
    if present(f, join(http, "pathExact")):
        paths = (f.string(join(http, "pathExact")),)
    elif present(f, join(http, "pathPrefix")):
        # Istio's prefix form: a trailing "*" (the Istio reader keeps paths in that form).
        paths = (f.string(join(http, "pathPrefix")) + "*",)
    if present(f, join(http, "pathRegex")):
        f.use(_REGEX, join(http, "pathRegex"), "pathRegex")
        narrowing.append(_REGEX)
    for key in ("pathExact", "pathPrefix", "pathRegex"):
        f.get(join(http, key))
    for k in range(len(f.list(join(http, "header")))):
        header = f"{http}.header[{k}]"
        f.use(_REGEX, header, f"header {f.peek(join(header, 'name'))}")
        narrowing.append(_REGEX)
    operation = AuthzOperation(methods=read_methods(f, http),
                               paths=paths, origin_path=http)
    return PermissionFacts(action, operation, tuple(sorted(set(narrowing))), path, jwt)


def disjoint(a: PermissionFacts, b: PermissionFacts) -> bool:
    """Whether no request can match both permissions (False when unsure).

    Decided on methods and on the exact/prefix path alone; header and regex conditions only
    narrow a permission further, so they cannot make disjoint permissions overlap. Consul's
    ``pathPrefix`` is a plain string prefix (``/api`` matches ``/apix``).
    """
    if a.operation is None or b.operation is None:
        return False
    ma, mb = set(a.operation.methods), set(b.operation.methods)
    if ma and mb and not ma & mb:
        return True
    if len(a.operation.paths) != 1 or len(b.operation.paths) != 1:
        return False
    (pa,), (pb,) = a.operation.paths, b.operation.paths
    # Prefixes are kept as "<prefix>*"; reading an exact path that ends in "*" as a prefix
    # only widens it, which keeps a "disjoint" answer true.
    prefix_a, prefix_b = pa.endswith("*"), pb.endswith("*")
    va, vb = pa[:-1] if prefix_a else pa, pb[:-1] if prefix_b else pb
    if prefix_a and prefix_b:
        return not (va.startswith(vb) or vb.startswith(va))
    if prefix_a:
        return not vb.startswith(va)
    if prefix_b:
        return not va.startswith(vb)
    return va != vb


# -- compiling -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """What decides the requests of one caller class to one destination."""

    source: SourceFacts | None
    """None: no intention matched; the default decides."""
    intentions: IntentionsFacts | None
    default: str

    @property
    def kind(self) -> str:
        """``allow``, ``deny`` or ``permissions``."""
        if self.source is None:
            return self.default
        return self.source.action or "permissions"

    @property
    def jwt(self) -> tuple[str, ...]:
        """Narrowing from a ``spec.jwt`` requirement on the deciding intention."""
        return (_JWT,) if self.intentions is not None and self.intentions.jwt else ()


class IntentionCompiler:
    """Turns the intentions of every destination into IR policies."""

    def __init__(self, reader: ConsulReader, names: ConsulNames, graph: MeshGraph) -> None:
        self.reader = reader
        self.names = names
        self.graph = graph
        self.losses: LossLog = reader.losses
        self.star = reader.state.intentions.get(ANY)

    def compile(self) -> None:
        """One policy per destination service instance (or none when all is allowed)."""
        intentions = self.reader.state.intentions
        external = {s.name for s in self.graph.of(ExternalService)
                    if s.origin.ref.kind == "ServiceDefaults"}
        for name in sorted(set(self.names.registered()) | (set(intentions) - {ANY})):
            exact = intentions.get(name)
            instances = self.names.instances(name, exact.namespace if exact else "")
            if not instances:
                if exact is not None and name in external:
                    self._external(name, exact)
                elif exact is not None:
                    self.reader.unresolved(exact.ref, "spec.destination.name", name,
                                           "its intentions were not converted")
                continue
            if exact is not None:
                self._check_protocol(name, exact)
            self._destination(name, exact, instances)

    def _external(self, name: str, exact: IntentionsFacts) -> None:
        """Intentions on a ServiceDefaults destination decide who may leave the mesh to it.
        The model's external services have no per-caller authorization: every target admits
        external hosts per namespace or for the whole mesh, so this is reported, not kept."""
        callers = sorted({s.name for s in exact.sources})
        self.losses.report(
            "EGRESS_EXTERNAL", Severity.MANUAL, "egress.external", exact.ref,
            "spec.sources",
            f"the intentions on external destination '{name}' limit who may reach it "
            f"({', '.join(callers)}); the converted egress admits every caller the target's "
            "egress settings let out", "Limit egress per namespace in the target (Istio: "
            "Sidecar egress hosts or ServiceEntry exportTo; Linkerd: a namespace "
            "EgressNetwork), or with a NetworkPolicy for the callers' pods.")

    def _check_protocol(self, name: str, exact: IntentionsFacts) -> None:
        """L7 permissions need an L7 destination protocol (mapping-consul-others.md 1.6)."""
        protocol = self.reader.state.protocol(name)
        if protocol in ("http", "http2", "grpc"):
            return
        for source in exact.sources:
            if source.permissions:
                self.losses.report(
                    "FIELD_INVALID", Severity.MANUAL, "input", exact.ref,
                    join(source.path, "permissions"),
                    f"L7 permissions need the destination's protocol to be http, http2 or grpc; "
                    f"'{name}' is {protocol}, so Consul rejects this entry; it was converted as "
                    "written",
                    "Check the live Consul config (consul config read) and declare the "
                    "protocol in a ServiceDefaults if the intention is really in use.")

    def _decide(self, exact: IntentionsFacts | None, key: tuple[str, str] | None) -> Decision:
        """Consul's precedence for one caller class (``key`` None: callers nobody names).

        Exact source -> exact destination, ``*`` -> exact destination, exact source -> ``*``,
        ``*`` -> ``*``, then the default.
        """
        candidates: list[tuple[IntentionsFacts, SourceFacts | None]] = []
        for entry in (exact, self.star):
            if entry is None:
                continue
            if key is not None:
                candidates.append((entry, entry.source(key)))
            candidates.append((entry, entry.source(("", ANY))))
        for entry, source in candidates:
            if source is not None:
                return Decision(source, entry, self.reader.default_intention)
        return Decision(None, None, self.reader.default_intention)

    def _destination(self, name: str, exact: IntentionsFacts | None,
                     instances: list[Instance]) -> None:
        entries = [e for e in (exact, self.star) if e is not None]
        keys = sorted({s.key for e in entries for s in e.sources
                       if not s.remote and s.key != ("", ANY)})
        remote = [s for e in entries for s in e.sources if s.remote]
        others = self._decide(exact, None)
        decisions = {key: self._decide(exact, key) for key in keys}
        origin_entry = exact or self.star
        if others.kind == "allow":
            action, rules = "DENY", self._deny_mode(decisions, remote)
        else:
            action, rules = "ALLOW", self._allow_mode(others, decisions, remote)
        if action == "DENY" and not rules:
            return  # nothing is refused: the target's default (allow) already holds
        for inst in instances:
            origin = Origin(origin_entry.ref, "spec") if origin_entry else \
                Origin(inst.service.origin.ref, "metadata.name")
            if origin_entry is None:
                # No intention names this service: the install's default policy refuses all.
                self.graph.use(FeatureUse("authz.allow", origin, "default intention: deny"))
            policy_name = name if inst.key.name == name else f"{name}-{inst.key.name}"
            self.graph.add(AuthzPolicy(inst.key.namespace, policy_name, inst.service.selector,
                                       action, tuple(rules), False, origin))

    # -- allow-list form ----------------------------------------------------------------------
    def _allow_mode(self, others: Decision, decisions: dict[tuple[str, str], Decision],
                    remote: list[SourceFacts]) -> list[AuthzRule]:
        rules: list[AuthzRule] = []
        for key in sorted(decisions):
            rules += self._allowed(decisions[key], self._identity(decisions[key], key))
        for source in remote:
            if source.action == "allow" or source.permissions:
                rules.append(AuthzRule((AuthzSource(origin_path=source.path),), (), source.path,
                                       (_REMOTE,)))
        if others.kind == "permissions" and others.source is not None:
            everyone = AuthzSource(principals=(ANY,), origin_path=others.source.path)
            carved = [k for k, d in decisions.items()
                      if d.kind != "allow" and d.source is not others.source]
            extra: tuple[str, ...] = ()
            if carved:
                extra = (_NEGATED_SOURCE,)
                self._approx(others, others.source.path,
                             "callers with their own intentions "
                             f"({', '.join(n for _, n in sorted(carved))}) would need to be "
                             "excluded from the wildcard source's permissions; those permissions "
                             "were left out, so callers that only the wildcard covers are refused")
                self._feature(_NEGATED_SOURCE, others, others.source.path)
            rules += [AuthzRule(r.sources, r.operations, r.origin_path, r.inexpressible + extra,
                                r.jwt)
                      for r in self._allowed(others, everyone)]
        return rules

    def _allowed(self, d: Decision, who: AuthzSource) -> list[AuthzRule]:
        """ALLOW rules granting exactly (or, when inexpressible, less than) what ``d`` allows."""
        source = d.source
        if source is None or d.kind == "deny":
            return []
        top = d.intentions.jwt_use if d.intentions is not None else ()
        if d.kind == "allow":
            return [AuthzRule((who,), (), source.path, d.jwt, self._jwt(top, ()))]
        rules = []
        denies: list[PermissionFacts] = []
        for p in source.permissions:
            if p.action == "deny":
                denies.append(p)
                continue
            narrowing = d.jwt + p.narrowing
            # An earlier deny only carves an exception out of this allow when some request
            # can match both; disjoint ones (deny /debug, allow /api/) leave it exact.
            if any(not disjoint(p, earlier) for earlier in denies):
                narrowing += (_NEGATED_OP,)
                self._approx(d, p.path, "this allow follows a deny permission, so it only holds "
                             "for requests the deny does not match; that exception cannot be "
                             "written, so the permission was left out (those requests are "
                             "refused)")
            rules.append(AuthzRule((who,), (p.operation,) if p.operation else (), p.path,
                                   tuple(sorted(set(narrowing))), self._jwt(top, p.jwt)))
        if d.default == "allow":
            narrowing = d.jwt
            if any(p.action == "deny" for p in source.permissions):
                narrowing += (_NEGATED_OP,)
                self._approx(d, join(source.path, "permissions"),
                             "requests matching no permission are allowed by default except "
                             "those a deny permission matches; that exception cannot be written, "
                             "so only the allow permissions were kept")
            rules.append(AuthzRule((who,), (), join(source.path, "permissions"), narrowing,
                                   self._jwt(top, ())))
        return rules

    def _jwt(self, top: JwtUse, permission: JwtUse) -> JwtRequirement | None:
        """The JWT requirement a target can carry: one provider (of the intention or of the
        permission, not both: a token has one issuer) that the input defines with an issuer
        and a key set. None when there is none or it cannot be carried (the rule is then left
        out by every writer, failing closed)."""
        uses = [u for u in (top, permission) if u]
        if len(uses) != 1 or len(uses[0]) != 1:
            return None
        name, claims = uses[0][0]
        provider = self.reader.state.jwt_providers.get(name)
        if provider is None or any(not path for path, _ in claims):
            return None
        return JwtRequirement((provider.issuer,), claims)

    # -- deny-list form -----------------------------------------------------------------------
    def _deny_mode(self, decisions: dict[tuple[str, str], Decision],
                   remote: list[SourceFacts]) -> list[AuthzRule]:
        rules: list[AuthzRule] = []
        for key in sorted(decisions):
            d = decisions[key]
            if d.kind == "allow" or d.source is None:
                continue
            who = self._identity(d, key)
            self._feature("authz.deny", d, d.source.path)
            if d.kind == "deny":
                rules.append(AuthzRule((who,), (), d.source.path))
                continue
            allows: list[PermissionFacts] = []
            for p in d.source.permissions:
                if p.action == "allow":
                    allows.append(p)
                    continue
                if any(not disjoint(p, earlier) for earlier in allows) or p.narrowing:
                    self._approx(d, p.path, "this deny is narrowed by an earlier allow permission "
                                 "or by conditions with no model; it was written without them, "
                                 "so it refuses more requests than Consul did")
                rules.append(AuthzRule((who,), (p.operation,) if p.operation else (), p.path))
            if d.default == "deny":
                if any(p.action == "allow" for p in d.source.permissions):
                    self._approx(d, join(d.source.path, "permissions"),
                                 "requests matching no permission are refused by default, and a "
                                 "refusal of everything but the allow permissions cannot be "
                                 "written; every request from this source is refused")
                rules.append(AuthzRule((who,), (), join(d.source.path, "permissions")))
        for source in remote:
            if source.action == "deny" or source.permissions:
                ref = next(e.ref for e in (self.reader.state.intentions.values())
                           if source in e.sources)
                self.losses.report(
                    "CONSUL_INTENTION_APPROX", Severity.MANUAL, "authz.deny", ref, source.path,
                    "a deny for a caller from another cluster (peer, partition or sameness group) "
                    "has no identity form here; it was not converted, so that caller is allowed",
                    "Recreate the restriction once the clusters are linked in the target mesh.")
        return rules

    # -- helpers ------------------------------------------------------------------------------
    def _identity(self, d: Decision, key: tuple[str, str]) -> AuthzSource:
        namespace, name = key
        path = d.source.path if d.source else ""
        if name == ANY:
            return AuthzSource(namespaces=(namespace,), origin_path=path)
        return AuthzSource(principals=self.names.principals(name, self.reader.trust_domain,
                                                            namespace), origin_path=path)

    def _feature(self, feature: str, d: Decision, path: str) -> None:
        if d.intentions is not None:
            self.graph.use(FeatureUse(feature, Origin(d.intentions.ref, path)))

    def _approx(self, d: Decision, path: str, why: str) -> None:
        if d.intentions is None:
            return
        self.losses.report(
            "CONSUL_INTENTION_APPROX", Severity.MANUAL, "authz.allow", d.intentions.ref, path,
            f"Consul evaluates intentions by precedence and permissions first-match; {why}",
            "Review the converted policy for this destination and add the missing exception "
            "by hand if the target mesh can express it (e.g. Istio notPaths).")
