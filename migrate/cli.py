"""The ``meshmigrate`` command. Thin: options in, one library call, files and a report out.

Exit codes (also in the README): 0 plan written; 1 bad input (some documents could not be
used; the rest was planned) or an I/O error; 2 usage error; 3 a loss at or above
``--fail-on``, or a divergence no loss explains; 4 ``--validate-with`` found schema
violations; 5 cluster unreachable; 6 credentials rejected; 7 the mesh is not installed.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import click

from migrate import __version__, mappings
from migrate.emit.manifests import write_steps
from migrate.emit.planjson import write_plan
from migrate.emit.report import render_report
from migrate.emit.runbook import write_runbook
from migrate.errors import ExitStatus, MigrateError
from migrate.exporting import export_dump, rbac_cluster_role
from migrate.losses import LossLog, Severity
from migrate.pipeline import (
    SOURCES,
    TARGETS,
    ClusterOptions,
    PlanOptions,
    check_source,
    detect_mesh,
    plan_migration,
    read_source,
    verify_against_plan,
)

_OWN = ("RUNBOOK.md", "plan.json", "steps")


def cluster_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """kubectl-style options for reading a live cluster (used when no -f is given)."""
    for option in reversed([
        click.option("--kubeconfig", default=None, metavar="FILE",
                     help="Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config; "
                          "in a pod, its service account)."),
        click.option("--context", default=None, help="Kubeconfig context to use."),
        click.option("-n", "--namespace", "namespaces", multiple=True, metavar="NS",
                     help="Only these namespaces (repeatable). Each kind is still read with one "
                          "cluster-wide LIST."),
        click.option("-A", "--all-namespaces", is_flag=True,
                     help="All namespaces (the default)."),
        click.option("--request-timeout", default=30.0, show_default=True, type=float,
                     metavar="SECONDS", help="Give up on a request after this long."),
    ]):
        command = option(command)
    return command


def _cluster(kubeconfig: str | None, context: str | None, namespaces: tuple[str, ...],
             all_namespaces: bool, request_timeout: float, quiet: bool) -> ClusterOptions:
    if namespaces and all_namespaces:
        raise click.UsageError("-n and -A exclude each other")
    return ClusterOptions(kubeconfig, context, list(namespaces), request_timeout,
                          Progress(enabled=not quiet and sys.stderr.isatty()))


class Progress:
    """One self-rewriting stderr line while a cluster is read (only on a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, resource: str, count: int) -> None:
        if not self.enabled:
            return
        with self.lock:
            self.counts[resource] = count
            line = f"reading: {sum(self.counts.values())} objects ({resource} {count})"
            click.echo(f"\r{line[:110]:<110}", err=True, nl=False)

    def done(self) -> None:
        """End the progress line."""
        if self.enabled and self.counts:
            click.echo("", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"],
                               "auto_envvar_prefix": "MESHMIGRATE"})
@click.version_option(__version__, prog_name="meshmigrate")
def main() -> None:
    """Plan the move of a Kubernetes service mesh to another mesh.

    Reads the source mesh's configuration, reports every feature that does not survive as a
    loss, and writes a reviewable runbook with the manifests for every step.
    """


def run() -> None:
    """The console script: the command line, then an exit that frees nothing.

    A plan holds millions of objects. Letting the interpreter free them one by one at exit
    (a last full collection, then every object) took 1 s after a 5,000-service plan and
    3.4 s after a 20,000-service one, once everything was written and closed. As mypy does
    (``mypy.util.hard_exit``), the streams are flushed and the process leaves with
    ``os._exit``. An exception that is not an exit (a bug, with MESHMIGRATE_TRACEBACK set)
    leaves the usual way, traceback and all.
    """
    code: Any = 0
    try:
        main()  # click's standalone mode ends in SystemExit
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, str):  # sys.exit("message"), as the interpreter would show it
        sys.stderr.write(code + "\n")
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader of the output left early (| head)
        pass
    os._exit(code or 0)


def _target_versions() -> str:
    """Each target's versions for --help, from the capability tables."""
    parts = []
    for name in sorted(TARGETS):
        table = mappings.table(name)
        parts.append(f"{name}: {table.versions[0]} to {table.versions[-1]}, default "
                     f"{table.default_version}" if table.versions else name)
    return "; ".join(parts)


@main.command()
@click.option("--from", "source", required=True, metavar="MESH",
              help=f"Source mesh ({', '.join(sorted(SOURCES))}, or auto to detect it).")
@click.option("--to", "target", required=True, metavar="MESH",
              help=f"Target mesh ({', '.join(sorted(TARGETS))}).")
@click.option("-f", "--filename", "paths", multiple=True, metavar="PATH",
              help="YAML/JSON file, folder (recursive) or - for stdin; repeatable. "
                   "Multi-document files and `kubectl get -o yaml` List output are accepted. "
                   "Without -f the cluster of the kubeconfig is read (read-only).")
@click.option("-o", "--output", "output", required=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for RUNBOOK.md, plan.json and steps/ (replaced if it holds a plan).")
@click.option("--target-version", default="", metavar="VERSION",
              help=f"Target mesh version ({_target_versions()}). Features the version lacks "
                   "become losses.")
@click.option("--order", default="", metavar="NS1,NS2,...",
              help="Move these namespaces first, in this order; the plan reports what the "
                   "override costs.")
@click.option("--fail-on", type=click.Choice(["degraded", "dropped", "manual"]), default=None,
              help="Exit 3 when a loss at or above this severity exists.")
@click.option("--trust-domain", default="cluster.local", show_default=True,
              help="Source mesh trust domain (principals in it map to local identities).")
@click.option("--istio-root-namespace", "root_namespace", default="istio-system",
              show_default=True, help="Istio's root namespace (mesh-wide policies live there).")
@click.option("--linkerd-default-policy", default="all-unauthenticated", show_default=True,
              type=click.Choice(["all-unauthenticated", "all-authenticated",
                                 "cluster-unauthenticated", "cluster-authenticated", "audit",
                                 "deny"]),
              help="Reading Linkerd: the cluster's default inbound policy (the install value "
                   "proxy.defaultInboundPolicy), used where no annotation sets one.")
@click.option("--istio-outbound-policy", default="ALLOW_ANY", show_default=True,
              type=click.Choice(["ALLOW_ANY", "REGISTRY_ONLY"]),
              help="Reading Istio: the mesh config's outboundTrafficPolicy.mode (an install "
                   "setting); REGISTRY_ONLY restricts egress to known hosts where no root "
                   "Sidecar sets a mode.")
@click.option("--consul-default-intention", default="deny", show_default=True,
              type=click.Choice(["allow", "deny"]),
              help="Reading Consul: what happens to traffic no intention matches (deny when "
                   "the Helm chart manages ACLs, allow without ACLs).")
@click.option("--consul-inject-default", is_flag=True,
              help="Reading Consul: the Helm chart injects by default (connectInject.default), "
                   "so pods without the connect-inject annotation are meshed.")
@click.option("--istio-routes", default="virtualservice", show_default=True,
              type=click.Choice(["virtualservice", "gateway-api"]),
              help="Writing Istio: routes as VirtualServices or as Gateway API HTTPRoutes.")
@click.option("--validate-with", "validate_with", multiple=True, metavar="PATH|cluster",
              help="Check every emitted manifest against the CRDs in these files or folders "
                   "(e.g. `linkerd install --crds` output), or against the target's CRDs "
                   "installed in the cluster (`cluster`, read-only); repeatable.")
@click.option("--no-verify", "no_verify", is_flag=True,
              help="Skip the equivalence and coexistence checks at the end (they take longer "
                   "than planning on very large meshes); run `meshmigrate verify` later.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the loss summary line.")
@cluster_options
def plan(source: str, target: str, paths: tuple[str, ...], output: Path, target_version: str,
         order: str, fail_on: str | None, trust_domain: str, root_namespace: str,
         linkerd_default_policy: str, istio_outbound_policy: str, consul_default_intention: str,
         consul_inject_default: bool, istio_routes: str,
         validate_with: tuple[str, ...], no_verify: bool, quiet: bool, kubeconfig: str | None,
         context: str | None, namespaces: tuple[str, ...], all_namespaces: bool,
         request_timeout: float) -> None:
    """Plan a migration and write RUNBOOK.md, plan.json and steps/ to -o DIR.

    Reads -f files, or else the cluster the kubeconfig points at (read-only).

    Example: meshmigrate plan --from istio --to linkerd -f samples/istio/bookinfo -o out
    """
    for v in validate_with:
        if v != "cluster" and not Path(v).exists():
            raise click.BadParameter(f"{v}: no such file or directory",
                                     param_hint="--validate-with")
    cluster = _cluster(kubeconfig, context, namespaces, all_namespaces, request_timeout, quiet)
    options = PlanOptions(source=source, target=target, paths=list(paths),
                          target_version=target_version,
                          order=[n.strip() for n in order.split(",") if n.strip()],
                          trust_domain=trust_domain, root_namespace=root_namespace,
                          linkerd_default_policy=linkerd_default_policy,
                          istio_outbound_policy=istio_outbound_policy,
                          consul_default_intention=consul_default_intention,
                          consul_inject_default=consul_inject_default,
                          istio_routes=istio_routes, verify=not no_verify,
                          keep_objects=False,  # nothing reads them after the plan is written
                          stdin=sys.stdin.buffer, cluster=None if paths else cluster)
    status = _run(lambda: _plan(options, output, fail_on, validate_with, quiet))
    sys.exit(int(status))


def _plan(options: PlanOptions, output: Path, fail_on: str | None,
          validate_with: tuple[str, ...], quiet: bool) -> ExitStatus:
    if options.source == "auto":
        options.source, evidence = detect_mesh(options)
        click.echo(f"meshmigrate: detected {options.source} in the "
                   f"{'files' if options.paths else 'cluster'} ({evidence})", err=True)
    try:
        result = plan_migration(options)
    finally:
        if options.cluster and isinstance(options.cluster.progress, Progress):
            options.cluster.progress.done()
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    _prepare_output(output)
    write_steps(result.plan, output)
    write_plan(result.plan, output / "plan.json")
    write_runbook(result.plan, output / "RUNBOOK.md")
    click.echo(render_report(result.losses, result.problems, quiet=quiet), err=True, nl=False)
    click.echo(f"meshmigrate: wrote {len(result.plan.steps)} steps to {output}", err=True)
    status = ExitStatus.OK
    if validate_with:
        from migrate.validate import SchemaSet, validate_plan_dir

        schemas = SchemaSet.from_paths([p for p in validate_with if p != "cluster"])
        if "cluster" in validate_with:
            schemas.schemas.update(_cluster_schemas(options).schemas)
        violations = validate_plan_dir(output, schemas)
        for v in violations:
            click.echo(f"invalid: {v}", err=True)
        if violations:
            status = ExitStatus.INVALID
    if fail_on and status is ExitStatus.OK:
        threshold = Severity(fail_on).rank
        if any(loss.severity.rank >= threshold for loss in result.losses):
            status = ExitStatus.LOSSES
    equivalence = result.plan.equivalence
    if equivalence is not None:
        for d in equivalence.unexplained:
            click.echo(f"divergence: {d.probe}: {d.aspect}: source {d.source}; target "
                       f"{d.target} (no loss explains it)", err=True)
        click.echo(f"meshmigrate: equivalence: {equivalence.probes} probes, "
                   f"{len(equivalence.divergences)} divergences, "
                   f"{len(equivalence.unexplained)} unexplained", err=True)
        if equivalence.unexplained and status is ExitStatus.OK:
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


def _cluster_schemas(options: PlanOptions) -> Any:
    """The target's CRDs as installed in the cluster (read-only)."""
    from migrate.sources.cluster import Cluster
    from migrate.validate import SchemaSet

    c = options.cluster or ClusterOptions()
    client = Cluster(c.kubeconfig, c.context, c.timeout)
    crds = client.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
    return SchemaSet.from_objects(crds.get("items") or [])


@main.command()
@click.option("--from", "source", required=True, metavar="MESH",
              help=f"Source mesh ({', '.join(sorted(SOURCES))}, or auto).")
@click.option("-o", "--output", "output", default="-", show_default=True, metavar="FILE",
              help="Where to write the dump (- for stdout).")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
@cluster_options
def export(source: str, output: str, quiet: bool, kubeconfig: str | None, context: str | None,
           namespaces: tuple[str, ...], all_namespaces: bool, request_timeout: float) -> None:
    """Write what plan reads from the cluster as a clean multi-document YAML dump.

    Objects are sorted and stripped of status and server-set metadata, so the dump can be
    reviewed, planned offline with -f, and attached to a bug report. Secrets are never read.
    """
    cluster = _cluster(kubeconfig, context, namespaces, all_namespaces, request_timeout, quiet)

    def run() -> ExitStatus:
        options = PlanOptions(source=source, target="", paths=[], cluster=cluster)
        if source == "auto":
            options.source, evidence = detect_mesh(options)
            click.echo(f"meshmigrate: detected {options.source} ({evidence})", err=True)
        check_source(options.source)
        losses = LossLog()
        notes: list[str] = []
        try:
            result = read_source(options, losses, notes)
        finally:
            if isinstance(cluster.progress, Progress):
                cluster.progress.done()
        for note in notes:
            click.echo(f"note: {note}", err=True)
        text = export_dump(result.objects)
        if output == "-":
            click.echo(text, nl=False)
        else:
            Path(output).write_text(text, encoding="utf-8")
        click.echo(f"meshmigrate: exported {len(result.objects)} objects", err=True)
        if len(losses):
            click.echo(render_report(losses, []), err=True, nl=False)
        return ExitStatus.OK

    sys.exit(int(_run(run)))


@main.command()
@click.option("--from", "source", required=True, metavar="MESH",
              help=f"Source mesh ({', '.join(sorted(SOURCES))}).")
def rbac(source: str) -> None:
    """Print the minimal read-only ClusterRole that plan and export need on a cluster."""
    sys.exit(int(_run(lambda: _print_rbac(source))))


def _print_rbac(source: str) -> ExitStatus:
    check_source(source)
    click.echo(rbac_cluster_role(source), nl=False)
    return ExitStatus.OK


@main.command()
@click.option("--from", "source", required=True, metavar="MESH",
              help=f"Source mesh ({', '.join(sorted(SOURCES))}).")
@click.option("-f", "--filename", "paths", multiple=True, metavar="PATH",
              help="The source configuration (as for plan); without -f the cluster is read.")
@click.option("--plan", "plan_dir", required=True, metavar="DIR",
              type=click.Path(file_okay=False, exists=True),
              help="A folder written by meshmigrate plan.")
@click.option("--trust-domain", default="cluster.local", show_default=True,
              help="Source mesh trust domain.")
# The source mesh's install settings, as given to plan: the source side is evaluated with
# them, so a plan made with another value would otherwise show divergences that are not there.
@click.option("--istio-root-namespace", "root_namespace", default="istio-system",
              show_default=True, help="Istio's root namespace (as given to plan).")
@click.option("--linkerd-default-policy", default="all-unauthenticated", show_default=True,
              type=click.Choice(["all-unauthenticated", "all-authenticated",
                                 "cluster-unauthenticated", "cluster-authenticated", "audit",
                                 "deny"]),
              help="Reading Linkerd: the cluster's default inbound policy (as given to plan).")
@click.option("--consul-default-intention", default="deny", show_default=True,
              type=click.Choice(["allow", "deny"]),
              help="Reading Consul: what happens to traffic no intention matches (as given to "
                   "plan).")
@click.option("--consul-inject-default", is_flag=True,
              help="Reading Consul: the Helm chart injects by default (as given to plan).")
@click.option("-q", "--quiet", is_flag=True, help="Only the summary line.")
@cluster_options
def verify(source: str, paths: tuple[str, ...], plan_dir: str, trust_domain: str,
           root_namespace: str, linkerd_default_policy: str, consul_default_intention: str,
           consul_inject_default: bool, quiet: bool,
           kubeconfig: str | None, context: str | None, namespaces: tuple[str, ...],
           all_namespaces: bool, request_timeout: float) -> None:
    """Check that a plan keeps behaviour: evaluate generated requests against the source
    (with its mesh's semantics) and against the plan's final state (with the target's).

    Exits 3 when a divergence is explained by no loss (a conversion bug), and 2 when --from
    or the input is not the one the plan was made from (plan.json records its digest).
    """
    cluster = _cluster(kubeconfig, context, namespaces, all_namespaces, request_timeout, True)

    def run() -> ExitStatus:
        check_source(source)
        options = PlanOptions(source=source, target="", paths=list(paths),
                              trust_domain=trust_domain, root_namespace=root_namespace,
                              linkerd_default_policy=linkerd_default_policy,
                              consul_default_intention=consul_default_intention,
                              consul_inject_default=consul_inject_default,
                              stdin=sys.stdin.buffer, cluster=None if paths else cluster)
        result = verify_against_plan(options, plan_dir)
        from migrate.verify.compare import render_text  # only `verify` prints this

        text = render_text(result)
        click.echo(text.splitlines()[-1] if quiet else text, nl=quiet)
        return ExitStatus.LOSSES if result.unexplained else ExitStatus.OK

    sys.exit(int(_run(run)))


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
