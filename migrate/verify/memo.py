"""Requests that evaluate the same way, evaluated once (issue 14 item 8).

An evaluator's routing answer depends on the request (Service, port, path, method, headers),
never on who sends it: none of the three evaluators reads the client when routing (Istio's
``sourceLabels``/``sourceNamespace`` matches are not evaluated; they are reported as
``ROUTE_MATCH_SOURCE_*`` losses). So the probes of one request sent by several identities
(the authorization probes, the coexistence probes of every caller account) are one routing
class, routed once. An authorization answer depends on the whole request and the workload
asked, so it is kept per (request, client, workload, port): the coexistence check asks the
unchanging source configuration the same question at every step touching a call.

Every probe is still evaluated and compared: only the evaluator's work for an identical
question is shared, and an evaluator's answer is a frozen value.
"""

from __future__ import annotations

from typing import Any

from migrate.verify.model import Outcome, Probe

RouteKey = tuple[str, str, int, str, str, tuple[tuple[str, str], ...]]


def route_key(probe: Probe) -> RouteKey:
    """What an evaluator routes on: the request without its client."""
    return (probe.namespace, probe.service, probe.port, probe.path, probe.method,
            probe.headers)


class Memo:
    """An evaluator whose answers are kept, by routing class and by authorization question.

    It exposes the wrapped evaluator's ``world`` (and any other attribute), so it stands in
    for it wherever an evaluator is expected. ``inner`` may be a function making the
    evaluator: it is then made at the first question (a coexistence step often never asks
    one side). ``keep_allowed=False`` keeps routing answers only, where every authorization
    question is asked once anyway (the equivalence check)."""

    def __init__(self, inner: Any, keep_allowed: bool = True) -> None:
        self._inner = inner
        self._made = not callable(inner) or hasattr(inner, "route")
        self._routes: dict[RouteKey, Outcome] = {}
        self._allowed: dict[tuple[Any, ...], tuple[bool, tuple[str, ...]]] | None = \
            {} if keep_allowed else None

    @property
    def inner(self) -> Any:
        """The wrapped evaluator (made now if it was given as a function)."""
        if not self._made:
            self._inner, self._made = self._inner(), True
        return self._inner

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def route(self, probe: Probe) -> Outcome:
        """The wrapped evaluator's routing answer for the probe's request (once per class)."""
        key = route_key(probe)
        found = self._routes.get(key)
        if found is None:
            found = self._routes[key] = self.inner.route(probe)
        return found

    def allowed(self, probe: Probe, workload: str, port: int) -> tuple[bool, tuple[str, ...]]:
        """The wrapped evaluator's authorization answer (once per question)."""
        if self._allowed is None:
            return self.inner.allowed(probe, workload, port)
        key = (route_key(probe), probe.client, workload, port)
        found = self._allowed.get(key)
        if found is None:
            found = self._allowed[key] = self.inner.allowed(probe, workload, port)
        return found
