"""Benchmark (run on demand, never as a test): plan wall time and peak memory against just
parsing the same dump, for YAML and JSON dumps of synthetic meshes.

"plan s" is the pipeline up to plan.json without the checks (``plan --no-verify``); "checks
s" is the equivalence check plus the per-step coexistence check that ``plan`` runs by
default, with the equivalence check's probes per second.

    python -m tests.benchmarks.bench_plan [SERVICES ...]     (default: 2000 5000 20000)

Each measurement runs in a fresh process so peak RSS is its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.benchmarks.synth import as_json, as_yaml, generate

CHILD = r"""
import json, resource, sys, time
mode, path = sys.argv[1], sys.argv[2]
start = time.perf_counter()
if mode == "parse-yaml":
    import yaml
    with open(path) as fh:
        docs = list(yaml.load_all(fh, Loader=yaml.CSafeLoader))
elif mode == "parse-json":
    with open(path) as fh:
        docs = json.loads(fh.read())
else:
    from migrate.pipeline import (PlanOptions, check_coexistence, plan_migration,
                                   verify_plan)
    from migrate.emit.planjson import dump_plan
    options = PlanOptions("istio", "linkerd", [path], verify=False)
    result = plan_migration(options)
    dump_plan(result.plan)
    planned = time.perf_counter()
    eq = verify_plan(result.read.objects, result.plan, options)
    verified = time.perf_counter()
    check_coexistence(result.read.objects, result.plan, options)
    checked = time.perf_counter()
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out = {"seconds": elapsed, "peak_mb": peak}
if mode == "plan":
    out.update(seconds=planned - start, probes=eq.probes, verify_seconds=verified - planned,
               checks_seconds=checked - planned)
print(json.dumps(out))
"""


def measure(mode: str, path: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, path], check=True,
                         capture_output=True, text=True, cwd=Path(__file__).parents[2]).stdout
    return json.loads(out)


def main(sizes: list[int]) -> None:
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"{'services':>8} {'format':>6} {'MB':>6} {'parse s':>8} {'plan s':>8} {'ratio':>6} "
          f"{'parse MB':>9} {'plan MB':>8} {'ratio':>6} {'checks s':>9} {'probes':>7} "
          f"{'probes/s':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for services in sizes:
            per_ns = 20
            objects = generate(max(1, services // per_ns), min(per_ns, services))
            for fmt, text in (("yaml", as_yaml(objects)), ("json", as_json(objects))):
                path = Path(tmp) / f"mesh-{services}.{fmt}"
                path.write_text(text)
                parse = measure(f"parse-{fmt}", str(path))
                plan = measure("plan", str(path))
                print(f"{services:>8} {fmt:>6} {len(text) / 1e6:>6.1f} {parse['seconds']:>8.2f} "
                      f"{plan['seconds']:>8.2f} {plan['seconds'] / parse['seconds']:>6.1f} "
                      f"{parse['peak_mb']:>9.0f} {plan['peak_mb']:>8.0f} "
                      f"{plan['peak_mb'] / parse['peak_mb']:>6.1f} "
                      f"{plan['checks_seconds']:>9.1f} {plan['probes']:>7} "
                      f"{plan['probes'] / max(plan['verify_seconds'], 1e-9):>9.0f}", flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [2000, 5000, 20000])
