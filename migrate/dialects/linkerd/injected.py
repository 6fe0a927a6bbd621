"""The labels Linkerd's proxy injector adds to every pod it injects.

No pod template holds them, so a Server that selects pods by them (``linkerd.io/workload-ns``
is a common way to say "every meshed pod of this namespace") matches the template-derived pod
labels of neither the reader nor the evaluators unless they are added, and a converted policy
that keeps them selects nothing under the target mesh (whose injector does not add them).
The reader matches with them and writes selectors without them; the Linkerd evaluator matches
with them.
"""

from __future__ import annotations

from typing import Mapping

from migrate import facts

CONTROL_PLANE_NAMESPACE = "linkerd"
"""The control plane's namespace the injector writes into ``linkerd.io/control-plane-ns``."""


def injected_labels(kind: str, namespace: str, name: str,
                    control_plane: str = CONTROL_PLANE_NAMESPACE) -> dict[str, str]:
    """The labels a pod of workload ``kind``/``name`` in ``namespace`` gets when injected."""
    # fact: linkerd.injected-pod-labels
    out = {facts.value("linkerd.injected-pod-labels", "namespace"): namespace,
           facts.value("linkerd.injected-pod-labels", "control_plane"): control_plane}
    owner = facts.value("linkerd.injected-pod-labels", "owner").get(kind)
    if owner:
        out[owner] = name
    return out


def injected_keys() -> frozenset[str]:
    """Every label key the injector adds (whatever the owner kind)."""
    owner = facts.value("linkerd.injected-pod-labels", "owner")
    return frozenset({facts.value("linkerd.injected-pod-labels", "namespace"),
                      facts.value("linkerd.injected-pod-labels", "control_plane"),
                      *owner.values()})


def without_injected(selector: Mapping[str, str]) -> dict[str, str]:
    """A matchLabels selector without the injector's keys."""
    keys = injected_keys()
    return {k: v for k, v in selector.items() if k not in keys}
