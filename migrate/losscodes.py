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
    "INPUT_DUPLICATE_KEY": Code("read", "Mapping key set twice",
                                "A mapping in a source document sets one key twice. Strict "
                                "decoding refuses the document (kubectl: `error converting "
                                "YAML to JSON: yaml: unmarshal errors: line N: key \"x\" "
                                "already set in map`); the API server, decoding without "
                                "strictness, keeps the last value (fieldValidation Ignore and "
                                "Warn, https://kubernetes.io/docs/reference/using-api/"
                                "api-concepts/#field-validation), and so does the plan. "
                                "Which value was meant (an ALLOW after a DENY?) is for a "
                                "person to decide."),
    "INPUT_NAMESPACE_MISSING": Code("read", "Objects without a namespace beside namespaced ones",
                                    "Files mix objects with no metadata.namespace (read into "
                                    "default) with objects in other namespaces, as sets meant "
                                    "for kubectl apply -n do; the reader does not guess the "
                                    "namespace, so the plan may put them in the wrong one."),
    "CLUSTER_FORBIDDEN": Code("read", "Kind the credentials may not list",
                              "Reading the cluster got 403 Forbidden for a kind; its objects are "
                              "missing from the plan. `meshmigrate rbac` prints the read-only "
                              "ClusterRole that grants everything meshmigrate reads."),
    "VERSION_TOO_OLD": Code("write", "Feature newer than the target version",
                            "The target version chosen with --target-version lacks the construct "
                            "this feature needs."),
    "ROUTE_ORDER": Code("write", "Rule order changes which rule a request hits",
                        "Istio and Consul apply the first matching rule in list order; Gateway "
                        "API picks "
                        "the most specific match. A request matching both rules named goes to a "
                        "different rule after the migration."),
    "ROUTE_RULE_UNREACHABLE": Code("write", "Rule never used by the source mesh",
                                   "An earlier rule already matched every request this match "
                                   "would; under specificity ordering it would start winning, so "
                                   "it is left out to keep behaviour."),
    "ROUTE_PREFIX_SEGMENT": Code("write", "Path prefix now matches whole segments",
                                 "Istio and Consul prefixes match raw strings (/api matches /apiv2); "
                                 "Gateway "
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
    "AUTHZ_SELECTS_NOTHING": Code("write", "Policy selects no workload of the input",
                                  "A policy's selector picks no workload the input shows, so "
                                  "nothing was written for it; its source object is still "
                                  "removed with its namespace's, and pods with those labels "
                                  "created later get the target's namespace default."),
    "AUTHZ_NAMESPACE_DEFAULT": Code("write", "Namespace default refuses what a rule admits",
                                    "A namespace-wide ALLOW policy with rules becomes Servers "
                                    "for the workloads and ports the input shows and the "
                                    "namespace default deny for the rest, which refuses the "
                                    "callers its rules admit on pods and ports the input does "
                                    "not show."),
    "EGRESS_HOST_IN_CLUSTER": Code("write", "Egress host that names an in-cluster Service",
                                   "A short or namespace-relative egress host resolves to a "
                                   "Service of the cluster; an Istio ServiceEntry for it "
                                   "would capture in-mesh calls, so it is not written."),
    "HEADLESS_MESH_TLS": Code("write", "Istio mTLS to a headless Service that moved",
                              "Istio picks TLS per endpoint only for non-headless Services; "
                              "its callers keep sending Istio mTLS to a headless Service's "
                              "pods after they left Istio, and those calls fail until the "
                              "callers move or send plaintext."),
    "SERVICE_PROTOCOL": Code("write", "Declared protocol not carried to the target",
                             "The source mesh declares a Service's protocol for the whole "
                             "Service (Consul ServiceDefaults protocol); the target reads it "
                             "from port names or appProtocol, which the plan does not change."),
    "AUTHZ_ROUTE_OVERLAP": Code("write", "Overlapping path rules not fully carried over",
                                "Linkerd checks only the authorizations of the one inbound "
                                "route it picks for a request, where Istio lets a caller in "
                                "when any matching rule allows it. Overlapping rules get extra "
                                "routes for their intersections; here there were too many, or "
                                "the route names could not keep the narrower routes first, so "
                                "some callers may be refused on requests several rules match."),
    # -- Consul as the source (migrate/dialects/consul/read_*.py) -----------------------------
    "CONSUL_SHARED_NAME": Code("read", "Same-named Services are one Consul service",
                               "Consul CE has one Consul namespace: Services with the same name "
                               "in different Kubernetes namespaces register as one Consul "
                               "service, so its config entries and intentions apply to all of "
                               "them and callers are balanced across namespaces. The target "
                               "mesh keeps them apart; each gets the same configuration."),
    "CONSUL_SERVICE_UNRESOLVED": Code("read", "Consul service not in the input",
                                      "A config entry, intention or upstream names a Consul "
                                      "service that no Kubernetes Service in the input "
                                      "registers; what depends on it was not converted."),
    "CONSUL_INTENTION_APPROX": Code("read", "Intention precedence not expressible exactly",
                                    "Consul picks the most specific intention and the first "
                                    "matching L7 permission; allow/deny rule sets cannot carve "
                                    "out exceptions, so the converted rule refuses more than "
                                    "Consul did (or, for callers from other clusters, is "
                                    "missing)."),
    "CONSUL_SUBSET_FILTER": Code("read", "Subset filter not tied to pod labels",
                                 "ServiceResolver subsets select instances by Consul catalog "
                                 "data (service-meta / service-tags annotations); no pod labels "
                                 "pick exactly those pods, so the subset was not converted."),
    # -- Linkerd as the source (migrate/dialects/linkerd/read_*.py) ----------------------------
    "SOURCE_IGNORED": Code("read", "Configuration the source mesh ignores",
                           "A field or object that had no effect in the source mesh (Linkerd "
                           "ignores a whole route that uses a filter it does not support, and "
                           "some Gateway API fields); it is not carried over."),
    "ROUTE_SHADOWED": Code("read", "Route or annotation overridden by a ServiceProfile",
                           "In Linkerd a ServiceProfile with routes or dstOverrides (or a "
                           "TrafficSplit) overrides the Service's HTTPRoutes and its retry, "
                           "timeout and failure-accrual annotations; those had no effect and are "
                           "not carried over."),
    "AUTHZ_PROXY_ADMIN": Code("read", "Policy for the Linkerd proxy's own port",
                              "A Server on the proxy's admin or inbound port governs Linkerd "
                              "itself; the target proxy has its own ports and defaults."),
    "LINKERD_INJECTED_LABEL": Code("read", "Selector on a label Linkerd's injector adds",
                                   "A Server selects pods by linkerd.io/workload-ns, "
                                   "control-plane-ns or proxy-<kind>, which only Linkerd's "
                                   "injector puts on pods; the converted selector names the "
                                   "same pods by their own labels."),
    "LINKERD_REF_UNRESOLVED": Code("read", "Referenced Linkerd object not in the input",
                                   "An AuthorizationPolicy or ServerAuthorization names a target "
                                   "or authentication the input does not hold; it was not "
                                   "converted."),
    "PLAN_PLAINTEXT_HOP": Code("plan", "Plaintext hop during coexistence",
                               "Traffic between the two meshes is plaintext and carries no peer "
                               "identity while both run."),
    "PLAN_RESTART_CYCLE": Code("plan", "Workloads of one step that call each other",
                               "A move step restarts its workloads callees first; workloads "
                               "that call each other cannot all be served, so the one that "
                               "restarts first is refused by the others until they restart."),
    "AUTHZ_WORKLOAD_DEFAULT": Code("write", "Workload default deny on undeclared ports",
                                   "Pods an ALLOW policy selects get the default inbound "
                                   "policy deny, so ports no container or Service declares "
                                   "refuse what a rule admitted there on any port."),
    "PLAN_STAGING_OPEN": Code("plan", "A staging grant admits more than the callers it is for",
                              "During its window a grant made for callers still on the source "
                              "mesh admits more than them: a Linkerd twin authenticates by "
                              "network, so any in-cluster client, meshed or not, passes it on "
                              "the grant's ports, paths and methods."),
    "PLAN_STAGING_PLAINTEXT": Code("plan", "Staged policy admits requests without identity",
                                   "From a namespace's move to its enforce step its policy is "
                                   "staged: requests without a mesh identity (the plaintext of "
                                   "callers still on the source mesh) pass where the final "
                                   "policy refuses them."),
    "PLAN_STAGING_AUDIT": Code("plan", "Staged policy in audit mode admits everything",
                               "With --staging audit, from a namespace's move to its enforce "
                               "step every request from every client is admitted (and only "
                               "logged), including what the source refused."),
    "PLAN_ORDER_OVERRIDE": Code("plan", "Order override exposes a hop",
                                "With --order a caller moves before its callee: for some steps "
                                "the callee (still on the source mesh) receives plaintext with no "
                                "identity, so identity-based policy there refuses it."),
    "PLAN_SHARED_ROUTE": Code("plan", "Route both meshes apply during coexistence",
                              "A Gateway API route with a Service parent that the source mesh "
                              "cannot hand over: the target's proxies apply it too while both "
                              "run, next to the routing written for the same host, until its "
                              "namespace's retire step deletes it."),
    "CONSUL_PERMISSIVE_PLAINTEXT": Code("read", "Consul permissive mode skips intentions",
                                        "A Consul service in mutualTLSMode permissive admits "
                                        "plaintext callers without checking its intentions; "
                                        "the target's authorization still applies to them."),
    "PLAN_EGRESS_OPEN": Code("plan", "Source egress restriction lifted for the migration",
                             "The source restricted egress to its own catalog, and that "
                             "restriction must be lifted while callees leave the source mesh: "
                             "pods still on the source reach outside hosts meanwhile."),
    "PLAN_VIRTUAL_IP": Code("plan", "Source entries deleted before the pods leave",
                            "The source mesh keeps routing its callers into a Service while its "
                            "config entries name it, also once the Service's last pod left: the "
                            "entries go before the pods restart, so callers still on the source "
                            "lose their routing for it, and the pods restarting apply the "
                            "default intention."),
    "PLAN_WAITING_PERMISSIVE": Code("plan", "Waiting pods admit plaintext during a move step",
                                    "Pods waiting for their restart inside a move step are made "
                                    "permissive so that the neighbours that moved first reach "
                                    "them; the source's authorization does not apply to that "
                                    "plaintext until they restart."),
    # -- Consul as the target (migrate/dialects/consul/write_*.py) ---------------------------
    "CONSUL_NAME_COLLISION": Code("write", "Services share one Consul name",
                                  "Consul CE has a single Consul namespace: Services with the same "
                                  "name in different Kubernetes namespaces become one Consul "
                                  "service (instances, config entries and intentions merge). Only "
                                  "the first namespace's configuration is written."),
    "CONSUL_ROUTER_CONFLICT": Code("write", "Several routes for one Consul service",
                                   "Consul takes one ServiceRouter per service; a second route "
                                   "for the same host was not converted."),
    "CONSUL_PROTOCOL": Code("write", "Service protocol for Consul L7 config",
                            "Routers, splitters and L7 intentions need the destination's "
                            "ServiceDefaults protocol to be http, http2 or grpc. Istio and "
                            "Linkerd detect HTTP on undeclared ports; Consul does not, so the protocol was assumed, or "
                            "the L7 configuration could not apply to a TCP service."),
    "CONSUL_ROUTE_UNMATCHED": Code("write", "Unmatched requests reach the service",
                                   "A VirtualService without a catch-all rule answered 404 to "
                                   "requests matching no rule; a ServiceRouter sends them to the "
                                   "service itself."),
    "CONSUL_ROUTE_PORT": Code("write", "Destination port ignored",
                              "Consul routes to a service, not to one of its ports (consul-k8s "
                              "registers one port per service)."),
    "CONSUL_RETRY": Code("write", "Retry setting without a Consul form",
                         "ServiceRouter destinations retry on Envoy conditions and status codes "
                         "with a count; per-try timeouts and other conditions have no field."),
    "CONSUL_SUBSET_META": Code("write", "Subset labels become service metadata",
                               "ServiceResolver subsets filter on Consul service metadata, which "
                               "consul-k8s takes from the pod annotation "
                               "consul.hashicorp.com/service-meta-<key>; the pod templates are "
                               "patched to carry it (the pods restart)."),
    "CONSUL_AUTHZ_IDENTITY": Code("write", "Identity without a Consul service",
                                  "Intentions name Consul services. With ACLs, consul-k8s binds a "
                                  "pod's service identity to its ServiceAccount name, so a source "
                                  "ServiceAccount must carry the name of the Service its pods "
                                  "register under."),
    "CONSUL_AUTHZ_NAMESPACE": Code("write", "Namespace source listed as services",
                                   "Consul CE intentions cannot name a Kubernetes namespace; the "
                                   "namespace became the Consul services found in it in the "
                                   "input. Services added to it later are not covered."),
    "CONSUL_AUTHZ_SOURCE": Code("write", "Source not expressible in intentions",
                                "Intentions match Consul service identities only: IP blocks and "
                                "principal patterns have no form. An ALLOW source that needs them "
                                "is left out (fails closed); a DENY source drops the condition "
                                "(denies more)."),
    "CONSUL_AUTHZ_OPERATION": Code("write", "Operation not expressible in intentions",
                                   "Intentions apply to a whole service, not a port; L7 "
                                   "permissions need an HTTP protocol and standard methods. An "
                                   "ALLOW operation that needs more is left out (fails closed); "
                                   "a DENY operation covers the whole service (denies more)."),
    "CONSUL_AUTHZ_TARGET": Code("write", "Policy target is not a whole Consul service",
                                "Intentions attach to a Consul service (a Kubernetes Service); "
                                "the policy selects only some of its pods, or pods no Service "
                                "registers."),
    "CONSUL_AUTHZ_DENY_UNMODELLED": Code("write", "DENY policy not converted",
                                         "The source reader recorded a DENY policy without its "
                                         "rules, so no deny intention could be written."),
    "CONSUL_MTLS_MODE": Code("write", "mTLS mode chosen for Consul",
                             "Consul checks intentions only on mTLS connections; in permissive "
                             "mode plaintext callers bypass them. The enforced mode is strict "
                             "where intentions must hold or no mode was declared (the source mesh's "
                             "default accepted plaintext: Istio PERMISSIVE, Linkerd "
                             "all-unauthenticated)."),
    # -- Istio as the target (migrate/dialects/istio/write_*.py) -----------------------------
    "ROUTE_WEIGHT_ROUNDED": Code("write", "Weights rounded to percentages",
                                 "Relative backend weights were rescaled to Istio percentages "
                                 "summing to 100; rounding changed a proportion slightly."),
    "ROUTE_GATEWAY_API": Code("write", "Not expressible as a Gateway API route",
                              "When Istio routing is written as gateway.networking.k8s.io "
                              "HTTPRoutes (the writer's gateway-api mode), retries (experimental "
                              "channel only), port matches inside a rule and non-Service backends "
                              "have no standard form and were left out."),
    "AUTHZ_DENY_SUBSUMED": Code("write", "DENY kept by the allow-list",
                                "The target has no deny rules, but the workloads the DENY "
                                "selects have ALLOW policies that admit none of the requests it "
                                "refused, so the target still refuses them."),
    "AUTHZ_DENY_PLAINTEXT": Code("write", "DENY on identities misses plaintext callers",
                                 "During coexistence callers still on the source mesh arrive in "
                                 "plaintext with no identity, so DENY rules naming principals or "
                                 "namespaces do not match them until they move."),
    "AUTHZ_SOURCE_NARROWED": Code("write", "Authorization source narrowed",
                                  "Istio cannot combine service accounts with principals in one "
                                  "source (and needs namespace/name accounts); only identities "
                                  "satisfying both were kept, which refuses more, never less."),
    "AUTHZ_NOT_MODELLED": Code("write", "Authorization policy not modelled",
                               "The source reader recorded a DENY or AUDIT policy as a feature "
                               "use without its rules, so the target policy could not be "
                               "written although the target supports the action."),
    "MTLS_PORT_NO_SELECTOR": Code("write", "Per-port mTLS without a workload",
                                  "Istio accepts per-port mTLS modes only on a PeerAuthentication "
                                  "with a workload selector; a namespace-wide one was split per "
                                  "workload, and with no labelled workload it was left out."),
    "CONSUL_POD_SERVICES": Code("write", "Pods selected by several Services",
                                "consul-k8s registers a pod under every Kubernetes Service that "
                                "selects it, and its connect-init container fails for a pod with "
                                "more than one registration unless the pod annotation "
                                "consul.hashicorp.com/kubernetes-service names one. Per-version "
                                "Services beside the main one (the Linkerd and SMI way to split "
                                "traffic) need that annotation, or ServiceResolver subsets "
                                "instead."),
    "ROUTE_HOST_CONFLICT": Code("read", "Several VirtualServices route one host",
                                "Two or more sidecar (mesh) VirtualServices name the same host. "
                                "Istio uses one of them, and which one is not defined "
                                "(istioctl analyze IST0109); the target merges their rules by "
                                "its own precedence, so requests may take another rule."),
}
