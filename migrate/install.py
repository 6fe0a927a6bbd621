"""Install settings read from the input, and where each setting of a plan came from.

Some of what decides a source mesh's behaviour is not in any routing or policy object but in
its install: Istio's trust domain, root namespace and outbound traffic policy (the mesh
config, in an ``IstioOperator`` or the ``istio`` ConfigMap), Linkerd's trust domain and
cluster default inbound policy (the Helm values kept in the ``linkerd-config`` ConfigMap).
Each mesh's reader finds them in the input (``Reader.install_settings``); a flag given on the
command line still wins, and the plan records, per setting, the value used and where it came
from, so a reviewer can see whether a default was assumed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from migrate.pipeline import PlanOptions


@dataclass(frozen=True)
class InstallSetting:
    """One setting found in the input's install configuration."""

    option: str
    """The :class:`~migrate.pipeline.PlanOptions` field it sets (``trust_domain``)."""
    value: Any
    origin: str
    """The object and field it was read from, with file and line."""


@dataclass(frozen=True)
class SettingUsed:
    """A setting of the plan: its value and where that value came from."""

    option: str
    value: Any
    origin: str
    """``command line``, ``default`` or the install object and field."""


def lookup(config: Any, path: tuple[str, ...]) -> str:
    """The non-empty string at ``path`` in an install configuration's nested mappings, or
    ``""`` (a missing key or a value of another type)."""
    value = config
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) else ""


def embedded_yaml(text: object) -> Any:
    """The configuration a ConfigMap keeps as a YAML string (Istio's ``mesh``, Linkerd's
    ``values``), parsed with the reader's limits (depth, alias expansion), or None when it is
    not a string or does not parse: such a ConfigMap is not the install's after all."""
    from migrate.yamlio import DocumentError, load_documents

    if not isinstance(text, str):
        return None
    try:
        first = next(iter(load_documents(text)), None)
    except DocumentError:
        return None
    return first.data if first is not None else None


def apply_settings(options: PlanOptions, found: list[InstallSetting],
                   relevant: tuple[str, ...]) -> list[SettingUsed]:
    """Set the options the input's install configuration gives, unless a flag gave them.

    An option counts as given when it is in ``options.explicit`` (the CLI fills it from the
    options typed) or differs from its default (a library caller that set it). Where the
    input holds two different values for one setting, the first in input order is used and
    the other is named in the origin, so the reviewer sees the disagreement.

    Returns:
        Every setting in ``relevant`` with its value and origin, in that order.
    """
    defaults = {f.name: f.default for f in fields(options)}
    used: list[SettingUsed] = []
    for option in relevant:
        given = option in options.explicit or getattr(options, option) != defaults[option]
        candidates = [s for s in found if s.option == option]
        if given:
            origin = "command line"
            if candidates:
                origin += f" (the input's {candidates[0].origin} says {candidates[0].value!r})"
        elif candidates:
            first = candidates[0]
            setattr(options, option, first.value)
            origin = first.origin
            others = sorted({f"{c.origin} = {c.value!r}" for c in candidates[1:]
                             if c.value != first.value})
            if others:
                origin += f"; differs from {'; '.join(others)}"
        else:
            origin = "default"
        used.append(SettingUsed(option, getattr(options, option), origin))
    return used
