"""Loss codes that are not a feature of the model: input problems, value-level conversion
losses and plan-level risks. Feature codes live in mappings/features.yaml. Together they
are the catalogue in docs/losses.md (generated; a test keeps it current).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    """A catalogued loss code."""

    stage: str
    """read, write or plan."""
    title: str
    explanation: str


CODES: dict[str, Code] = {
    "FIELD_UNMODELLED": Code("read", "Field with no translation",
                             "A field of a source object that meshmigrate does not model. It is "
                             "reported instead of being dropped silently."),
    "FIELD_INVALID": Code("read", "Field of the wrong type or value",
                          "A field whose value does not fit its schema; it was ignored."),
    "OBJECT_UNREADABLE": Code("read", "Object that could not be read",
                              "An object whose shape no reader expected; it was not converted."),
    "INPUT_DUPLICATE": Code("read", "Object defined more than once",
                            "The input holds several different definitions of one object. The one "
                            "from the file read last is planned (as kubectl apply would leave it); "
                            "within one file the choice is made by content, so it does not depend "
                            "on document order."),
    "CLUSTER_FORBIDDEN": Code("read", "Kind the credentials may not list",
                              "Reading the cluster got 403 Forbidden for a kind; its objects are "
                              "missing from the plan. `meshmigrate rbac` prints the read-only "
                              "ClusterRole that grants everything meshmigrate reads."),
    "VERSION_TOO_OLD": Code("write", "Feature newer than the target version",
                            "The target version chosen with --target-version lacks the construct "
                            "this feature needs."),
    "ROUTE_ORDER": Code("write", "Rule order changes which rule a request hits",
                        "Istio applies the first matching rule in list order; Gateway API picks "
                        "the most specific match. A request matching both rules named goes to a "
                        "different rule after the migration."),
    "ROUTE_RULE_UNREACHABLE": Code("write", "Rule never used by the source mesh",
                                   "An earlier rule already matched every request this match "
                                   "would; under specificity ordering it would start winning, so "
                                   "it is left out to keep behaviour."),
    "ROUTE_PREFIX_SEGMENT": Code("write", "Path prefix now matches whole segments",
                                 "Istio prefixes match raw strings (/api matches /apiv2); Gateway "
                                 "API PathPrefix matches whole path segments."),
    "ROUTE_METHOD": Code("write", "Method match not expressible",
                         "A method prefix or regular expression was expanded to the standard "
                         "methods it matches; other methods no longer match."),
    "ROUTE_RETRY_CONDITION": Code("write", "Retry condition not supported",
                                  "Some retry conditions have no Linkerd form."),
    "ROUTE_REDIRECT_CODE": Code("write", "Redirect status changed",
                                "Gateway API 1.2.1 (what Linkerd honours) allows only 301 "
                                "and 302."),
    "ROUTE_BACKEND_UNKNOWN": Code("write", "Backend cannot be addressed",
                                  "A backend needs a Service port (and, for a subset, the subset's "
                                  "labels); the input does not say, so the backend was left out."),
    "ROUTE_DURATION": Code("write", "Duration not understood",
                           "A timeout or retry duration does not parse; it was left out."),
    "ROUTE_RULE_EMPTY": Code("write", "Rule with nothing to route to",
                             "After the losses above a rule had no backend left; it was left out."),
    "AUTHZ_PRINCIPAL": Code("write", "Principal not expressible",
                            "A principal pattern has no Linkerd identity form."),
    "AUTHZ_NO_PORT": Code("write", "Workload ports unknown",
                          "Servers are per port; the input names no port for these pods."),
    "AUTHZ_PROBE_ROUTE": Code("write", "Probe route added",
                              "Once a Server has HTTPRoutes, Linkerd no longer authorizes kubelet "
                              "probes itself; a route and an authorization for the probe paths "
                              "were added."),
    "AUTHZ_SERVER_OVERLAP": Code("write", "Servers overlap",
                                 "Two generated Servers select the same pods and port; Linkerd's "
                                 "admission rejects overlapping Servers."),
    "PLAN_PLAINTEXT_HOP": Code("plan", "Plaintext hop during coexistence",
                               "Traffic between the two meshes is plaintext and carries no peer "
                               "identity while both run."),
    "PLAN_ORDER_OVERRIDE": Code("plan", "Order override exposes a hop",
                                "With --order a caller moves before its callee: for some steps "
                                "the callee (still on the source mesh) receives plaintext with no "
                                "identity, so identity-based policy there refuses it."),
}
