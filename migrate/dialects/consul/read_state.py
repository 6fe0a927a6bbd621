"""What the Consul reader collects while it reads objects one by one.

Consul config entries refer to each other by Consul service name (a router names the services
it routes to, whose splitters and resolvers continue the chain; intentions name services; a
ServiceDefaults applies to every instance of its service). Handlers account for their own
fields and record parsed facts here; :mod:`read_finish` resolves the names once every
object, Kubernetes Services and pods included, has been read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from migrate.dialects.fields import Fields
from migrate.ir.model import JwtProvider, Origin

if TYPE_CHECKING:
    from migrate.dialects.consul.read_defaults import (
        MeshFacts,
        ProxyDefaultsFacts,
        ServiceDefaultsFacts,
    )
    from migrate.dialects.consul.read_gateways import IngressFacts
    from migrate.dialects.consul.read_intentions import IntentionsFacts
    from migrate.dialects.consul.read_routing import ResolverFacts, RouterFacts, SplitterFacts

T = TypeVar("T")


@dataclass
class ConsulState:
    """Parsed config entries, keyed by the Consul service they configure."""

    service_defaults: dict[str, ServiceDefaultsFacts] = field(default_factory=dict)
    proxy_defaults: ProxyDefaultsFacts | None = None
    mesh: MeshFacts | None = None
    intentions: dict[str, IntentionsFacts] = field(default_factory=dict)
    """By destination name; ``*`` is the wildcard destination."""
    routers: dict[str, RouterFacts] = field(default_factory=dict)
    splitters: dict[str, SplitterFacts] = field(default_factory=dict)
    resolvers: dict[str, ResolverFacts] = field(default_factory=dict)
    ingress: list[IngressFacts] = field(default_factory=list)
    terminating: list[tuple[Origin, str]] = field(default_factory=list)
    """Services a TerminatingGateway links, by the entry that links them."""
    jwt_providers: dict[str, JwtProvider] = field(default_factory=dict)
    """JWTProviders with an issuer and a key set, by name."""

    @staticmethod
    def add_named(f: Fields, table: dict[str, T], name: str, facts: T) -> None:
        """Keep the first entry for a Consul name; a second one is reported, not used.

        Objects arrive sorted by namespace, so the choice does not depend on input order.
        In Consul CE both Kubernetes objects write the same config entry and consul-k8s
        refuses to sync the second.
        """
        if name in table:
            first = getattr(table[name], "ref", None)
            f.invalid("metadata.name",
                      f"{first} already configures Consul service '{name}'; Consul keeps one "
                      f"{f.ref.kind} per service, so this one is not planned")
            f.get("spec", whole=True)
            return
        table[name] = facts

    def protocol(self, name: str) -> str:
        """The protocol Consul uses for a service: ServiceDefaults, else ProxyDefaults, else tcp."""
        sd = self.service_defaults.get(name)
        if sd is not None and sd.protocol:
            return sd.protocol
        if self.proxy_defaults is not None and self.proxy_defaults.protocol:
            return self.proxy_defaults.protocol
        return "tcp"

    def protocol_origin(self, name: str) -> Origin | None:
        """The entry that declared :meth:`protocol` (None: Consul's default, tcp)."""
        sd = self.service_defaults.get(name)
        if sd is not None and sd.protocol:
            return Origin(sd.ref, "spec.protocol")
        if self.proxy_defaults is not None and self.proxy_defaults.protocol:
            return Origin(self.proxy_defaults.ref, "spec.config.protocol")
        return None
