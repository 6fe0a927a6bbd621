"""HTTP method lists of Consul config entries (ServiceRouter ``match.http.methods``,
ServiceIntentions ``permissions[].http.methods``).

Consul accepts only the standard methods: a ServiceRouter naming another value is refused
(hashicorp/consul agent/structs/config_entry_discoverychain.go, ``isValidHTTPMethod``), so
such an entry never took effect as written. A wildcard (``*``) is read as what it was meant to
say, any method, and every value Consul refuses is reported as invalid input.
"""

from __future__ import annotations

from migrate.dialects.fields import Fields, join

STANDARD = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE")


def read_methods(f: Fields, http: str) -> tuple[str, ...]:
    """The methods at ``<http>.methods``, upper-cased; empty (any method) when one is ``*``."""
    methods = tuple(m.upper() for m in f.strings(join(http, "methods")))
    for i, m in enumerate(methods):
        if m not in STANDARD:
            f.invalid(f"{http}.methods[{i}]",
                      f"Consul refuses the method {m!r} (only standard HTTP methods); "
                      + ("read as any method" if "*" in methods else "left out"))
    if "*" in methods:
        return ()
    kept = tuple(m for m in methods if m in STANDARD)
    return kept if kept or not methods else methods
