"""Benchmark (run on demand, never as a test): one huge VirtualService, one huge
AuthorizationPolicy, planned from Istio to Linkerd and to Consul, at two rule counts.

    python -m tests.benchmarks.bench_rules [--repeat N] [RULES ...]   (default: 500 2000)

Each mesh holds one Service with its Deployment and one object with RULES rules: a
VirtualService whose http rules each match their own path prefix and header (then a
catch-all), or an ALLOW AuthorizationPolicy whose rules each name their own caller and path.
"plan s" is ``plan_migration`` as ``meshmigrate plan`` runs it, with the equivalence and
coexistence checks (the checks generate and evaluate probes per rule, which is where the
quadratic parts were), in CPU seconds of the planning process: on a shared machine the wall
time of one run moved by a factor of three with the neighbours' load. Each run is a fresh
process; with ``--repeat`` the fastest is kept. The last column is t(largest) /
t(smallest): linear growth from 500 to 2,000 rules is 4.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

CHILD = r"""
import json, sys, time
from migrate.pipeline import PlanOptions, plan_migration
start, cpu = time.perf_counter(), time.process_time()
result = plan_migration(PlanOptions("istio", sys.argv[2], [sys.argv[1]]))
print(json.dumps({"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu}))
"""


def base() -> list[dict[str, Any]]:
    """The namespace, Service and Deployment the huge object applies to."""
    labels = {"app": "web"}
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": "shop", "labels": {"istio-injection": "enabled"}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"selector": labels, "ports": [{"name": "http", "port": 80}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels},
             "spec": {"serviceAccountName": "web", "containers": [
                 {"name": "web", "image": "web", "ports": [{"containerPort": 80}]}]}}}},
    ]


def huge_virtualservice(rules: int) -> list[dict[str, Any]]:
    """A VirtualService with ``rules`` http rules on distinct paths, then a catch-all."""
    http = [{"match": [{"uri": {"prefix": f"/p{i}/"}, "headers": {"x-v": {"exact": f"v{i}"}}}],
             "route": [{"destination": {"host": "web"}}]} for i in range(rules)]
    http.append({"route": [{"destination": {"host": "web"}}]})
    return [*base(), {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                      "metadata": {"name": "web", "namespace": "shop"},
                      "spec": {"hosts": ["web"], "http": http}}]


def huge_authorizationpolicy(rules: int) -> list[dict[str, Any]]:
    """An ALLOW AuthorizationPolicy with ``rules`` rules, each its own caller and path."""
    body = [{"from": [{"source": {"principals": [f"cluster.local/ns/shop/sa/c{i}"]}}],
             "to": [{"operation": {"paths": [f"/p{i}/*"], "methods": ["GET"]}}]}
            for i in range(rules)]
    return [*base(), {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                      "metadata": {"name": "web", "namespace": "shop"},
                      "spec": {"selector": {"matchLabels": {"app": "web"}}, "action": "ALLOW",
                               "rules": body}}]


CASES = {"VirtualService": huge_virtualservice, "AuthorizationPolicy": huge_authorizationpolicy}


def measure(path: Path, target: str) -> float:
    """Plan one file in a fresh process: its CPU seconds (stderr shown if it fails)."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), target], capture_output=True,
                          text=True, cwd=Path(__file__).parents[2])
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"{path} -> {target}: exit status {done.returncode}")
    return float(json.loads(done.stdout)["cpu"])


def main(sizes: list[int], repeat: int = 1) -> None:
    """Print one row per object kind and target, one column per rule count."""
    print(f"{'object':<20} {'target':<8} " + " ".join(f"{f'{n} rules s':>13}" for n in sizes)
          + f" {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, make in CASES.items():
            paths = {}
            for n in sizes:
                paths[n] = Path(tmp) / f"{kind}-{n}.yaml"
                paths[n].write_text(yaml.safe_dump_all(make(n), sort_keys=False))
            for target in ("linkerd", "consul"):
                times = [min(measure(paths[n], target) for _ in range(repeat)) for n in sizes]
                print(f"{kind:<20} {target:<8} " + " ".join(f"{t:>13.2f}" for t in times)
                      + f" {times[-1] / times[0]:>6.1f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.bench_rules",
                                     description="One huge VirtualService and one huge "
                                                 "AuthorizationPolicy at two rule counts.")
    parser.add_argument("rules", nargs="*", type=int, default=[500, 2000],
                        help="rule counts (default: 500 2000)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each measurement; the fastest is printed (default: 1)")
    options = parser.parse_args()
    main(sorted(options.rules), max(1, options.repeat))
