"""The ``meshmigrate`` command. Thin: options in, one library call, files and a report out.

Exit codes (also in the README): 0 plan written; 1 bad input (some documents could not be
used; the rest was planned) or an I/O error; 2 usage error; 3 a loss at or above
``--fail-on``; 4 ``--validate-with`` found schema violations.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

from migrate import __version__, mappings
from migrate.emit.manifests import write_steps
from migrate.emit.planjson import dump_plan
from migrate.emit.report import render_report
from migrate.emit.runbook import render_runbook
from migrate.errors import ExitStatus, MigrateError
from migrate.losses import Severity
from migrate.pipeline import SOURCES, TARGETS, PlanOptions, plan_migration

_OWN = ("RUNBOOK.md", "plan.json", "steps")


@click.group(context_settings={"help_option_names": ["-h", "--help"],
                               "auto_envvar_prefix": "MESHMIGRATE"})
@click.version_option(__version__, prog_name="meshmigrate")
def main() -> None:
    """Plan the move of a Kubernetes service mesh to another mesh.

    Reads the source mesh's configuration, reports every feature that does not survive as a
    loss, and writes a reviewable runbook with the manifests for every step.
    """


@main.command()
@click.option("--from", "source", required=True, metavar="MESH",
              help=f"Source mesh ({', '.join(sorted(SOURCES))}).")
@click.option("--to", "target", required=True, metavar="MESH",
              help=f"Target mesh ({', '.join(sorted(TARGETS))}).")
@click.option("-f", "--filename", "paths", multiple=True, metavar="PATH",
              help="YAML/JSON file, folder (recursive) or - for stdin; repeatable. "
                   "Multi-document files and `kubectl get -o yaml` List output are accepted.")
@click.option("-o", "--output", "output", required=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for RUNBOOK.md, plan.json and steps/ (replaced if it holds a plan).")
@click.option("--target-version", default="", metavar="VERSION",
              help="Target mesh version (Linkerd: 2.14 to 2.20; default 2.20). Features the "
                   "version lacks become losses.")
@click.option("--order", default="", metavar="NS1,NS2,...",
              help="Move these namespaces first, in this order; the plan reports what the "
                   "override costs.")
@click.option("--fail-on", type=click.Choice(["degraded", "dropped", "manual"]), default=None,
              help="Exit 3 when a loss at or above this severity exists.")
@click.option("--trust-domain", default="cluster.local", show_default=True,
              help="Source mesh trust domain (principals in it map to local identities).")
@click.option("--istio-root-namespace", "root_namespace", default="istio-system",
              show_default=True, help="Istio's root namespace (mesh-wide policies live there).")
@click.option("--validate-with", "validate_with", multiple=True, metavar="DIR",
              type=click.Path(exists=True, path_type=Path),
              help="Check every emitted manifest against the CRDs in these files or folders "
                   "(e.g. `linkerd install --crds` output); repeatable.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the loss summary line.")
def plan(source: str, target: str, paths: tuple[str, ...], output: Path, target_version: str,
         order: str, fail_on: str | None, trust_domain: str, root_namespace: str,
         validate_with: tuple[Path, ...], quiet: bool) -> None:
    """Plan a migration and write RUNBOOK.md, plan.json and steps/ to -o DIR.

    Example: meshmigrate plan --from istio --to linkerd -f samples/istio/bookinfo -o out
    """
    if not paths:
        raise click.UsageError("no input: give -f PATH (files, folders, or - for stdin)")
    options = PlanOptions(source=source, target=target, paths=list(paths),
                          target_version=target_version,
                          order=[n.strip() for n in order.split(",") if n.strip()],
                          trust_domain=trust_domain, root_namespace=root_namespace,
                          stdin=sys.stdin.buffer)
    status = _run(lambda: _plan(options, output, fail_on, validate_with, quiet))
    sys.exit(int(status))


def _plan(options: PlanOptions, output: Path, fail_on: str | None,
          validate_with: tuple[Path, ...], quiet: bool) -> ExitStatus:
    result = plan_migration(options)
    _prepare_output(output)
    write_steps(result.plan, output)
    (output / "plan.json").write_text(dump_plan(result.plan), encoding="utf-8")
    (output / "RUNBOOK.md").write_text(render_runbook(result.plan), encoding="utf-8")
    click.echo(render_report(result.losses, result.problems, quiet=quiet), err=True, nl=False)
    click.echo(f"meshmigrate: wrote {len(result.plan.steps)} steps to {output}", err=True)
    status = ExitStatus.OK
    if validate_with:
        from migrate.validate import SchemaSet, validate_plan_dir

        schemas = SchemaSet.from_paths([str(p) for p in validate_with])
        violations = validate_plan_dir(output, schemas)
        for v in violations:
            click.echo(f"invalid: {v}", err=True)
        if violations:
            status = ExitStatus.INVALID
    if fail_on and status is ExitStatus.OK:
        threshold = Severity(fail_on).rank
        if any(loss.severity.rank >= threshold for loss in result.losses):
            status = ExitStatus.LOSSES
    if result.problems:
        status = ExitStatus.ERROR
    return status


def _prepare_output(output: Path) -> None:
    """Refuse to write into a folder that holds something else; clear an old plan."""
    if output.exists():
        entries = {p.name for p in output.iterdir()}
        if entries and not (entries <= set(_OWN) and "plan.json" in entries):
            raise MigrateError(f"{output} is not empty and holds no meshmigrate plan; "
                               "choose another -o folder")
        shutil.rmtree(output / "steps", ignore_errors=True)
    output.mkdir(parents=True, exist_ok=True)


@main.command()
def meshes() -> None:
    """List the meshes meshmigrate reads and writes, with target versions."""
    for name in sorted(set(SOURCES) | set(TARGETS)):
        roles = [r for r, known in (("source", SOURCES), ("target", TARGETS)) if name in known]
        line = f"{name:<10} {', '.join(roles)}"
        if name in TARGETS:
            table = mappings.table(name)
            line += f"  (versions {', '.join(table.versions)}; default {table.default_version})"
        click.echo(line)


def _run(action) -> ExitStatus:  # type: ignore[no-untyped-def]
    """Map library errors to exit codes in one place; no traceback for user errors."""
    try:
        return action()
    except MigrateError as exc:
        click.echo(f"meshmigrate: error: {exc}", err=True)
        return exc.exit_status
    except OSError as exc:
        click.echo(f"meshmigrate: error: {exc.filename or ''}: {exc.strerror}", err=True)
        return ExitStatus.ERROR
    except Exception as exc:  # a bug in meshmigrate, not in the input
        if os.environ.get("MESHMIGRATE_TRACEBACK"):
            raise
        click.echo(f"meshmigrate: internal error: {type(exc).__name__}: {exc} (a bug; please "
                   "report it with MESHMIGRATE_TRACEBACK=1 output)", err=True)
        return ExitStatus.ERROR
