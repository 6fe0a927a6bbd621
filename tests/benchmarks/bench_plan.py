"""Benchmark (run on demand, never as a test): plan wall time and peak memory against just
parsing the same dump, for YAML and JSON dumps of synthetic meshes.

"plan s" is the pipeline up to plan.json written to a file, without the checks, as
``plan --no-verify`` runs it (objects the plan does not use let go once read); "files s" is
the rest of what ``plan`` writes (a YAML file per manifest and rollback copy, each step's
kustomization.yaml, RUNBOOK.md; "files" counts them), into a temporary folder, so on whatever
file system holds it, and "files MB" the peak once they are written; "checks s" is
the equivalence check plus the per-step coexistence check that ``plan`` runs by default (on
the source read again, as ``meshmigrate verify`` does; the re-read is not counted), with the
equivalence check's probes per second; "x plan" is the checks' time over the plan's (issue
14's target is at most 1) and the peak once checked over the plan's peak.

    python -m tests.benchmarks.bench_plan [--plan-only] [--no-files] [--format yaml|json]
                                          [--dump applied|served] [--repeat N] [SERVICES ...]
                                          (default: both formats, both dumps, 1 run,
                                          2000 5000 20000)

Each mesh is dumped twice: "applied" is the generator's objects as written (a YAML stream,
or a JSON List); "served" is the same objects as ``kubectl get -o yaml|json`` returns them
from a cluster, with what the API server and controllers add (tests/benchmarks/served.py),
which is what a dump taken for meshmigrate holds. Both plan alike (tests/test_synth.py).

Each measurement runs in a fresh process so peak RSS is its own. "plan MB" is the peak RSS
when plan.json is made, before the checks; "checks MB" is the peak at the end. ``--plan-only``
skips the checks and ``--no-files`` the step files and runbook (their columns print as ``-``).
``--repeat N`` runs the parse and the plan N times each, alternating, and prints the fastest
run of each (the plan's other columns are from that run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.benchmarks.served import as_served, as_served_json, as_served_yaml
from tests.benchmarks.synth import as_json, as_yaml, generate

CHILD = r"""
import json, os, resource, sys, time
mode, path = sys.argv[1], sys.argv[2]
checks, files = sys.argv[3] == "checks", sys.argv[4] == "files"
start = time.perf_counter()
if mode == "parse-yaml":
    import yaml
    with open(path) as fh:
        docs = list(yaml.load_all(fh, Loader=yaml.CSafeLoader))
elif mode == "parse-json":
    with open(path) as fh:
        docs = json.loads(fh.read())
else:
    import pathlib, tempfile
    from migrate.pipeline import (PlanOptions, check_coexistence, make_reader, plan_migration,
                                   verify_plan)
    from migrate.emit.manifests import write_steps
    from migrate.emit.planjson import write_plan
    from migrate.emit.runbook import write_runbook
    from migrate.losses import LossLog
    from migrate.sources.files import read_files
    # As `meshmigrate plan --no-verify` runs it: objects let go once read, plan.json written.
    options = PlanOptions("istio", "linkerd", [path], verify=False, keep_objects=False)
    result = plan_migration(options)
    with tempfile.TemporaryDirectory() as out:
        write_plan(result.plan, pathlib.Path(out) / "plan.json")
        planned = time.perf_counter()
        plan_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if files:
            # The rest of what `plan` writes: a file per manifest and rollback copy, the runbook.
            write_steps(result.plan, pathlib.Path(out))
            write_runbook(result.plan, pathlib.Path(out) / "RUNBOOK.md")
            written = time.perf_counter()
            files_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            files = sum(len(fs) for _, _, fs in os.walk(out))
    if checks:
        # As `meshmigrate verify` does: the source read again (not counted in "checks s").
        objects = make_reader(options, LossLog(), []).read(read_files([path])).objects
        reread = time.perf_counter()
        eq = verify_plan(objects, result.plan, options)
        verified = time.perf_counter()
        check_coexistence(objects, result.plan, options)
        checked = time.perf_counter()
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out = {"seconds": elapsed, "peak_mb": peak}
if mode == "plan":
    out.update(seconds=planned - start, peak_mb=plan_peak)
    if files:
        out.update(files_seconds=written - planned, files=files, files_peak_mb=files_peak)
    if checks:
        out.update(probes=eq.probes, verify_seconds=verified - reread,
                   checks_seconds=checked - reread, checks_peak_mb=peak)
print(json.dumps(out))
"""


def measure(mode: str, path: str, checks: bool = False, files: bool = True) -> dict[str, float]:
    """Run one measurement in a fresh process; its stderr is shown if it fails."""
    done = subprocess.run([sys.executable, "-c", CHILD, mode, path,
                           "checks" if checks else "plan-only", "files" if files else "-"],
                          capture_output=True, text=True, cwd=Path(__file__).parents[2])
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"{mode} {path}: exit status {done.returncode}")
    return json.loads(done.stdout)


def main(sizes: list[int], checks: bool = True, files: bool = True,
         formats: tuple[str, ...] = ("yaml", "json"), repeat: int = 1,
         dumps: tuple[str, ...] = ("applied", "served")) -> None:
    """Print one row per size, dump and format."""
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"{'services':>8} {'dump':>7} {'format':>6} {'MB':>6} {'parse s':>8} {'plan s':>8} "
          f"{'ratio':>6} {'parse MB':>9} {'plan MB':>8} {'ratio':>6} {'files':>7} {'files s':>8} "
          f"{'files MB':>9} {'checks s':>9} {'x plan':>7} {'checks MB':>10} {'x plan':>7} "
          f"{'probes':>7} {'probes/s':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for services in sizes:
            per_ns = 20
            applied = generate(max(1, services // per_ns), min(per_ns, services))
            for dump, fmt in ((d, f) for d in dumps for f in formats):
                objects = applied if dump == "applied" else as_served(applied)
                text = {("applied", "yaml"): as_yaml, ("applied", "json"): as_json,
                        ("served", "yaml"): as_served_yaml,
                        ("served", "json"): as_served_json}[(dump, fmt)](objects)
                del objects
                path = Path(tmp) / f"mesh-{services}-{dump}.{fmt}"
                path.write_text(text)
                # Alternated and the fastest run of each kept, as timeit does: on a shared
                # machine a slow run measures the neighbours.
                runs = [(measure(f"parse-{fmt}", str(path)), measure("plan", str(path), checks,
                                                                    files))
                        for _ in range(repeat)]
                parse = min((r[0] for r in runs), key=lambda r: r["seconds"])
                plan = min((r[1] for r in runs), key=lambda r: r["seconds"])
                # The target: the checks cost no more than the plan (x plan <= 1).
                extra = (f"{plan['checks_seconds']:>9.2f} "
                         f"{plan['checks_seconds'] / plan['seconds']:>7.2f} "
                         f"{plan['checks_peak_mb']:>10.0f} "
                         f"{plan['checks_peak_mb'] / plan['peak_mb']:>7.2f} "
                         f"{plan['probes']:>7} "
                         f"{plan['probes'] / max(plan['verify_seconds'], 1e-9):>9.0f}"
                         if checks else f"{'-':>9} {'-':>7} {'-':>10} {'-':>7} {'-':>7} {'-':>9}")
                written = (f"{plan['files']:>7} {plan['files_seconds']:>8.1f} "
                           f"{plan['files_peak_mb']:>9.0f}" if files
                           else f"{'-':>7} {'-':>8} {'-':>9}")
                print(f"{services:>8} {dump:>7} {fmt:>6} {len(text) / 1e6:>6.1f} "
                      f"{parse['seconds']:>8.2f} {plan['seconds']:>8.2f} "
                      f"{plan['seconds'] / parse['seconds']:>6.1f} "
                      f"{parse['peak_mb']:>9.0f} {plan['peak_mb']:>8.0f} "
                      f"{plan['peak_mb'] / parse['peak_mb']:>6.1f} {written} {extra}",
                      flush=True)


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.bench_plan",
        description="Plan time and peak memory against parsing the same dump.")
    parser.add_argument("services", nargs="*", type=int, default=[2000, 5000, 20000],
                        help="mesh sizes in services (default: 2000 5000 20000)")
    parser.add_argument("--plan-only", action="store_true", help="skip the checks")
    parser.add_argument("--no-files", action="store_true",
                        help="skip writing the step files and the runbook")
    parser.add_argument("--format", choices=["yaml", "json"], action="append",
                        help="measure only this dump format (repeatable; default: both)")
    parser.add_argument("--dump", choices=["applied", "served"], action="append",
                        help="objects as applied (the generator's) or as a cluster serves "
                             "them back (tests/benchmarks/served.py); repeatable; default: both")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each measurement; the fastest is printed (default: 1)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    options = _arguments(sys.argv[1:])
    main(options.services, checks=not options.plan_only, files=not options.no_files,
         formats=tuple(options.format or ("yaml", "json")), repeat=max(1, options.repeat),
         dumps=tuple(options.dump or ("applied", "served")))
