"""The check before step 00 applies a Gateway API CRD bundle: it must not downgrade an
installed newer bundle, nor replace the experimental channel with the standard one."""

from __future__ import annotations

import re

from migrate import facts
from migrate.plan.commands import Command, pipe

_VERSION = re.compile(r"v(\d+)\.(\d+)\.(\d+)")


def _below(n: int) -> str:
    """An ERE group matching the decimal numbers 0 .. n-1 (n >= 1)."""
    return "(" + "|".join(str(i) for i in range(n)) + ")"


def accepted_versions(bundle: str) -> str:
    """An ERE matching every bundle version up to and including ``bundle`` (``v1.5.1``),
    pre-releases included: applying ``bundle`` over any of them is an upgrade or a no-op."""
    m = _VERSION.fullmatch(bundle)
    if m is None:
        raise ValueError(f"not a Gateway API release tag: {bundle!r}")
    major, minor, patch = (int(g) for g in m.groups())
    forms = []
    if major:
        forms.append(rf"v{_below(major)}\.[0-9]+\.[0-9]+")
    if minor:
        forms.append(rf"v{major}\.{_below(minor)}\.[0-9]+")
    forms.append(rf"v{major}\.{minor}\.{_below(patch + 1)}")
    return "(" + "|".join(forms) + r")(-[0-9A-Za-z.]+)?"


def bundle_guard(bundle: str, experimental: bool) -> Command:
    """Print the installed bundle's version and channel unless applying ``bundle`` on the
    given channel keeps or upgrades both; the runbook stops on any output."""
    # fact: gateway-api.bundle-annotations
    version = facts.value("gateway-api.bundle-annotations", "bundle_version")
    channel = facts.value("gateway-api.bundle-annotations", "channel")
    keeps = "(standard|experimental)" if experimental else "standard"
    wanted = "experimental" if experimental else "standard"
    path = "{.metadata.annotations.%s} {.metadata.annotations.%s}{\"\\n\"}" % (
        version.replace(".", "\\."), channel.replace(".", "\\."))
    return pipe(
        ("kubectl", "get", "crd", "gateways.gateway.networking.k8s.io", "--ignore-not-found",
         "-o", f"jsonpath={path}"),
        ("grep", "-vxE", f"{accepted_versions(bundle)} {keeps}"),
        note=f"expect no output. A line is the installed bundle and channel, and the next "
             f"command would downgrade it: stop. Newer than {bundle}: keep it (skip the next "
             f"command) if both meshes support that version"
             + ("" if experimental else
                f"; experimental: apply {bundle}/experimental-install.yaml instead of "
                f"the {wanted} one"))
