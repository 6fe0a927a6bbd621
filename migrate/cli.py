"""The ``meshmigrate`` command. Thin: options in, one library call, files and a report out.

Exit codes are :class:`migrate.errors.ExitStatus`, documented in the README ("Exit codes")
and tested one by one in tests/test_exit_codes.py.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import click

from migrate import __version__, completion, mappings
from migrate.emit.output import write_output
from migrate.emit.report import render_report
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
from migrate.wording import counted


def _complete(values: Callable[[click.Context], list[str]]) -> Callable[..., list[str]]:
    """A click ``shell_complete`` callback offering ``values(ctx)`` that start as typed
    (``ctx.params`` holds the options given before the one being completed)."""
    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
        return [v for v in values(ctx) if v.startswith(incomplete)]
    return complete


def _files(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Let the shell complete file and folder names."""
    from click.shell_completion import CompletionItem

    return [CompletionItem(incomplete, type="file")]


def report_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--report FORMAT``: the run's report on stdout, for pipelines (migrate/report.py)."""
    return click.option(
        "--report", "report_format", type=click.Choice(["json", "yaml", "text"]), default=None,
        help="Also write a report of the run to stdout: losses, summary, equivalence and "
             "coexistence results (json validates against migrate/schemas/report.schema.json). "
             "Messages for people stay on stderr.")(command)


def _emit_report(fmt: str | None, document: dict[str, Any]) -> None:
    if fmt:
        from migrate.report import render

        click.echo(render(document, fmt), nl=False)


def cluster_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """kubectl-style options for reading a live cluster (used when no -f is given)."""
    for option in reversed([
        click.option("--kubeconfig", default=None, metavar="FILE", shell_complete=_files,
                     help="Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config; "
                          "in a pod, its service account)."),
        click.option("--context", default=None, help="Kubeconfig context to use.",
                     shell_complete=_complete(lambda ctx: completion.kubeconfig_contexts(
                         ctx.params.get("kubeconfig")))),
        click.option("-n", "--namespace", "namespaces", multiple=True, metavar="NS",
                     shell_complete=_complete(lambda ctx: completion.kubeconfig_namespaces(
                         ctx.params.get("kubeconfig"), ctx.params.get("context"))),
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
             all_namespaces: bool, request_timeout: float, quiet: bool,
             progress: Progress | None = None) -> ClusterOptions:
    if namespaces and all_namespaces:
        raise click.UsageError("-n and -A exclude each other")
    return ClusterOptions(kubeconfig, context, list(namespaces), request_timeout,
                          progress or Progress(enabled=not quiet and sys.stderr.isatty()))


class Progress:
    """One self-rewriting stderr line during long work: objects read from a cluster, then
    the stage a plan is in. Only on a terminal and without --quiet: in a pipe or a CI log a
    rewritten line is noise, so nothing is written there."""

    WIDTH = 110

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.shown = False

    def _show(self, line: str) -> None:
        click.echo(f"\r{line[:self.WIDTH]:<{self.WIDTH}}", err=True, nl=False)
        self.shown = True

    def __call__(self, resource: str, count: int) -> None:
        if not self.enabled:
            return
        with self.lock:
            self.counts[resource] = count
            self._show(f"reading: {counted(sum(self.counts.values()), 'object')} "
                       f"({resource} {count})")

    def stage(self, name: str) -> None:
        """Show the stage that starts now."""
        if self.enabled:
            with self.lock:
                self._show(f"meshmigrate: {name}...")

    def done(self) -> None:
        """Erase the progress line, so what is printed next starts on a clean line."""
        if self.enabled and self.shown:
            click.echo(f"\r{'':<{self.WIDTH}}\r", err=True, nl=False)
            self.shown = False


# A mention of one of our commands in help or an error ("run `meshmigrate verify` later"), to be
# shown the way the user invoked us: `kubectl meshmigrate verify` under kubectl.
_COMMAND_MENTION = re.compile(
    r"(?<![\w./-])(?<!kubectl )(?<!a )(?<!no )meshmigrate"
    r"(?=\s+(plan|verify|export|rbac|meshes|completion|graph|explain)\b)")


def _as_invoked(text: str) -> str:
    """``text`` with ``meshmigrate <command>`` spelled as this process was invoked."""
    ctx = click.get_current_context(silent=True)
    prog = ctx.find_root().info_name if ctx is not None else None
    # Only kubectl's name differs in a way a user types; `python -m migrate` and test
    # runners keep the command's own name.
    return _COMMAND_MENTION.sub(prog, text) if prog and prog.startswith("kubectl ") else text


class _Command(click.Command):
    """A command whose help names the program as it was invoked."""

    def get_help(self, ctx: click.Context) -> str:
        return _as_invoked(super().get_help(ctx))


class _Group(click.Group):
    """The top-level group: its help, and its commands', name the program as invoked."""

    command_class = _Command

    def get_help(self, ctx: click.Context) -> str:
        return _as_invoked(super().get_help(ctx))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"],
                               "auto_envvar_prefix": "MESHMIGRATE"})
@click.version_option(__version__, prog_name="meshmigrate")
def main() -> None:
    """Plan the move of a Kubernetes service mesh to another mesh.

    Reads the source mesh's configuration, reports every feature that does not survive as a
    loss, and writes a reviewable runbook with the manifests for every step.
    """


def run(prog_name: str = "meshmigrate") -> None:
    """The console script: the command line, then an exit that frees nothing.

    A plan holds millions of objects. Letting the interpreter free them one by one at exit
    (a last full collection, then every object) took 1 s after a 5,000-service plan and
    3.4 s after a 20,000-service one, once everything was written and closed. As mypy does
    (``mypy.util.hard_exit``), the streams are flushed and the process leaves with
    ``os._exit``. An exception that is not an exit (a bug, with MESHMIGRATE_TRACEBACK set)
    leaves the usual way, traceback and all.

    A reader that leaves early (``| head``) must not turn a plan into a failure: stdout and
    stderr are wrapped so that a closed pipe silences that stream for the rest of the run
    instead of raising (which ended the run with exit 1 and a half-written plan when the
    report went to a closed stderr). The exit status is the plan's.
    """
    sys.stdout = _PipeSafe(sys.stdout)  # type: ignore[assignment]
    sys.stderr = _PipeSafe(sys.stderr)  # type: ignore[assignment]
    code: Any = 0
    try:
        main(prog_name=prog_name)  # click's standalone mode ends in SystemExit
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, str):  # sys.exit("message"), as the interpreter would show it
        sys.stderr.write(code + "\n")
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def kubectl_run() -> None:
    """The ``kubectl-meshmigrate`` console script: kubectl runs it for ``kubectl meshmigrate``
    (https://kubernetes.io/docs/tasks/extend-kubectl/kubectl-plugins/: a plugin is an
    executable named ``kubectl-<name>`` on PATH), so usage and help say ``kubectl meshmigrate``."""
    run(prog_name="kubectl meshmigrate")


class _PipeSafe:
    """A text stream whose reader may leave: once a write or flush meets a closed pipe, the
    descriptor is pointed at /dev/null (the buffered rest would fail again at every later
    write and at exit) and the stream carries on silently. Anything else is the stream's."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        """Write, or drop the text once the reader is gone."""
        try:
            return int(self._stream.write(text))
        except BrokenPipeError:
            self._reader_left()
            return len(text)

    def flush(self) -> None:
        """Flush, or drop the buffered text once the reader is gone."""
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._reader_left()
            self._stream.flush()

    def _reader_left(self) -> None:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, self._stream.fileno())
        finally:
            os.close(null)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


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
              shell_complete=_complete(lambda ctx: completion.source_meshes()),
              help=f"Source mesh ({', '.join(sorted(SOURCES))}, or auto to detect it).")
@click.option("--to", "target", required=True, metavar="MESH",
              shell_complete=_complete(lambda ctx: completion.target_meshes()),
              help=f"Target mesh ({', '.join(sorted(TARGETS))}).")
@click.option("-f", "--filename", "paths", multiple=True, metavar="PATH", shell_complete=_files,
              help="YAML/JSON file, folder (recursive) or - for stdin; repeatable. "
                   "Multi-document files and `kubectl get -o yaml` List output are accepted. "
                   "Without -f the cluster of the kubeconfig is read (read-only).")
@click.option("-o", "--output", "output", required=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for RUNBOOK.md, plan.json and steps/ (replaced as a whole, once the "
                   "new plan is complete, if it holds a plan; never a symbolic link).")
@click.option("--target-version", default="", metavar="VERSION",
              shell_complete=_complete(lambda ctx: completion.target_versions(
                  ctx.params.get("target"))),
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
@click.option("--staging", default="strict", show_default=True,
              type=click.Choice(["strict", "audit"]),
              help="Writing Linkerd: how policy is staged from a namespace's move to its "
                   "enforce step. strict refuses what the source refused except the identity "
                   "check of callers still on the source mesh; audit admits every request "
                   "from every client (only logged), which the runbook and a loss state.")
@click.option("--validate-with", "validate_with", multiple=True, metavar="PATH|cluster",
              help="Check every emitted manifest against the CRDs in these files or folders "
                   "(e.g. `linkerd install --crds` output), or against the target's CRDs "
                   "installed in the cluster (`cluster`, read-only); repeatable. CEL rules are "
                   "evaluated when cel-python is installed; one that cannot be is printed as "
                   "unchecked.")
@click.option("--no-verify", "no_verify", is_flag=True,
              help="Skip the equivalence and coexistence checks at the end (they take longer "
                   "than planning on very large meshes); run `meshmigrate verify` later.")
@click.option("-q", "--quiet", is_flag=True,
              help="Print only errors, the mesh --from auto detected, and the summary lines "
                   "(losses by severity, steps written, the equivalence check): no loss "
                   "listing, no notes, no progress.")
@report_option
@cluster_options
def plan(source: str, target: str, paths: tuple[str, ...], output: Path, target_version: str,
         order: str, fail_on: str | None, trust_domain: str, root_namespace: str,
         linkerd_default_policy: str, istio_outbound_policy: str, consul_default_intention: str,
         consul_inject_default: bool, istio_routes: str, staging: str,
         validate_with: tuple[str, ...], no_verify: bool, quiet: bool,
         report_format: str | None, kubeconfig: str | None,
         context: str | None, namespaces: tuple[str, ...], all_namespaces: bool,
         request_timeout: float) -> None:
    """Plan a migration and write RUNBOOK.md, plan.json and steps/ to -o DIR.

    Reads -f files, or else the cluster the kubeconfig points at (read-only). Every object
    read is listed once with what became of it (plan.json sources, the runbook's appendix;
    meshmigrate explain tells one object's story).

    Example: meshmigrate plan --from istio --to linkerd -f samples/istio/bookinfo -o out
    """
    for v in validate_with:
        if v != "cluster" and not Path(v).exists():
            raise click.BadParameter(f"{v}: no such file or directory",
                                     param_hint="--validate-with")
    progress = Progress(enabled=not quiet and sys.stderr.isatty())
    cluster = _cluster(kubeconfig, context, namespaces, all_namespaces, request_timeout, quiet,
                       progress)
    options = PlanOptions(source=source, target=target, paths=list(paths),
                          target_version=target_version,
                          order=[n.strip() for n in order.split(",") if n.strip()],
                          trust_domain=trust_domain, root_namespace=root_namespace,
                          linkerd_default_policy=linkerd_default_policy,
                          istio_outbound_policy=istio_outbound_policy,
                          consul_default_intention=consul_default_intention,
                          consul_inject_default=consul_inject_default,
                          istio_routes=istio_routes, staging=staging, verify=not no_verify,
                          keep_objects=False,  # nothing reads them after the plan is written
                          stdin=sys.stdin.buffer, cluster=None if paths else cluster,
                          explicit=_typed_options(), stage=progress.stage)
    status = _run(lambda: _plan(options, output, fail_on, validate_with, quiet, report_format))
    sys.exit(int(status))


def _typed_options() -> frozenset[str]:
    """The options given on the command line (or in the environment), not left at their
    defaults: install settings read from the input do not override them."""
    ctx = click.get_current_context()
    return frozenset(name for name in ctx.params if ctx.get_parameter_source(name) in (
        click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT))


def _plan(options: PlanOptions, output: Path, fail_on: str | None,
          validate_with: tuple[str, ...], quiet: bool,
          report_format: str | None = None) -> ExitStatus:
    if options.source == "auto":
        options.source, evidence = detect_mesh(options)
        click.echo(f"meshmigrate: detected {options.source} in the "
                   f"{'files' if options.paths else 'cluster'} ({evidence})", err=True)
    try:
        result = plan_migration(options)
    finally:
        progress = getattr(options.stage, "__self__", None)  # plan()'s Progress
        if isinstance(progress, Progress):
            progress.done()
    for note in [] if quiet else result.notes:
        click.echo(f"note: {note}", err=True)
    for note in write_output(result.plan, output):  # atomic: see migrate/emit/output.py
        click.echo(f"note: {note}", err=True)
    click.echo(render_report(result.losses, result.problems, quiet=quiet), err=True, nl=False)
    click.echo(f"meshmigrate: wrote {counted(len(result.plan.steps), 'step')} to {output}",
               err=True)
    status = ExitStatus.OK
    if validate_with:
        from migrate.validate import SchemaSet, validate_plan_dir

        schemas = SchemaSet.from_paths([p for p in validate_with if p != "cluster"])
        if "cluster" in validate_with:
            schemas.schemas.update(_cluster_schemas(options).schemas)
        violations = validate_plan_dir(output, schemas)
        for v in violations:
            click.echo(f"{'unchecked' if v.unchecked else 'invalid'}: {v}", err=True)
        if any(not v.unchecked for v in violations):
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
        click.echo(f"meshmigrate: equivalence: {counted(equivalence.probes, 'probe')}, "
                   f"{counted(len(equivalence.divergences), 'divergence')}, "
                   f"{len(equivalence.unexplained)} unexplained", err=True)
        if equivalence.unexplained and status is ExitStatus.OK:
            status = ExitStatus.LOSSES
    if result.plan.coexistence is not None:
        from migrate.verify.admits import unexplained as admitted_unexplained

        wider = admitted_unexplained(result.plan.coexistence)
        for number, record in wider:
            click.echo(f"admits more: step {number}: {record['request']} from "
                       f"{record['client']} at {record['workload']}: {record['why']} (the "
                       "source refused it; no loss explains it)", err=True)
        if wider and status is ExitStatus.OK:
            status = ExitStatus.LOSSES
    if result.problems:
        status = ExitStatus.ERROR
    if report_format:
        _emit_report(report_format, _plan_report(result, status, output))
    return status


def _plan_report(result: Any, status: ExitStatus, output: Path) -> dict[str, Any]:
    """The report of a plan run, from the plan.json document so the two always agree."""
    from migrate.emit.planjson import plan_document
    from migrate.report import build

    doc = plan_document(result.plan)
    return build("plan", status, doc["source"]["mesh"], doc["target"], doc["losses"],
                 result.problems, summary={k: v for k, v in doc["summary"].items()
                                           if k != "losses"},
                 equivalence=doc["equivalence"], coexistence=doc["coexistence"],
                 output=str(output))


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
              shell_complete=_complete(lambda ctx: completion.source_meshes()),
              help=f"Source mesh ({', '.join(sorted(SOURCES))}, or auto).")
@click.option("-o", "--output", "output", default="-", show_default=True, metavar="FILE",
              help="Where to write the dump (- for stdout).")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress display (it is shown only on a terminal anyway).")
@report_option
@cluster_options
def export(source: str, output: str, quiet: bool, report_format: str | None,
           kubeconfig: str | None, context: str | None, namespaces: tuple[str, ...],
           all_namespaces: bool, request_timeout: float) -> None:
    """Write what plan reads from the cluster as a clean multi-document YAML dump.

    Objects are sorted and stripped of status and server-set metadata, so the dump can be
    reviewed, planned offline with -f, and attached to a bug report. Secrets are never read.
    """
    if report_format and output == "-":
        raise click.UsageError("--report writes to stdout, where the dump goes without -o; "
                               "give -o FILE for the dump")
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
        click.echo(f"meshmigrate: exported {counted(len(result.objects), 'object')}", err=True)
        if len(losses) or result.problems:
            click.echo(render_report(losses, result.problems), err=True, nl=False)
        status = ExitStatus.ERROR if result.problems else ExitStatus.OK
        if report_format:
            from migrate.report import build

            _emit_report(report_format, build(
                "export", status, options.source, None, [x.to_json() for x in losses],
                result.problems, summary={"objects": len(result.objects)}, output=output))
        return status

    sys.exit(int(_run(run)))


@main.command()
@click.option("--from", "source", required=True, metavar="MESH",
              shell_complete=_complete(lambda ctx: completion.source_meshes(auto=False)),
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
              shell_complete=_complete(lambda ctx: completion.source_meshes(auto=False)),
              help=f"Source mesh ({', '.join(sorted(SOURCES))}).")
@click.option("-f", "--filename", "paths", multiple=True, metavar="PATH", shell_complete=_files,
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
@click.option("-q", "--quiet", is_flag=True,
              help="Print only errors and the summary line (probes, divergences, unexplained).")
@report_option
@cluster_options
def verify(source: str, paths: tuple[str, ...], plan_dir: str, trust_domain: str,
           root_namespace: str, linkerd_default_policy: str, consul_default_intention: str,
           consul_inject_default: bool, quiet: bool, report_format: str | None,
           kubeconfig: str | None, context: str | None, namespaces: tuple[str, ...],
           all_namespaces: bool, request_timeout: float) -> None:
    """Check that a plan keeps behaviour: evaluate generated requests against the source
    (with its mesh's semantics) and against the plan's final state (with the target's).

    Exits 3 when a divergence is explained by no loss (a conversion bug) or when a step
    admits a request the source refused that no loss explains (coexistence), and 2 when --from
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
        mixed: list[dict[str, Any]] = []
        result = verify_against_plan(options, plan_dir, mixed)
        from migrate.verify.admits import unexplained as admitted_unexplained
        from migrate.verify.compare import render_text  # only `verify` prints this

        text = render_text(result)
        # With --report, stdout is the report's; the table is for people, on stderr.
        click.echo(text.splitlines()[-1] if quiet else text, nl=quiet, err=bool(report_format))
        wider = admitted_unexplained(mixed)
        for number, record in wider:
            click.echo(f"admits more: step {number}: {record['request']} from "
                       f"{record['client']} at {record['workload']}: {record['why']} (the "
                       "source refused it; no loss explains it)", err=True)
        status = ExitStatus.LOSSES if result.unexplained or wider else ExitStatus.OK
        if report_format:
            _emit_report(report_format, _verify_report(source, plan_dir, result, status))
        return status

    sys.exit(int(_run(run)))


@main.command()
@click.option("--plan", "plan_dir", required=True, metavar="DIR",
              type=click.Path(file_okay=False, exists=True),
              help="A folder written by meshmigrate plan.")
@click.option("-o", "--output", default="-", show_default=True, metavar="FILE",
              help="Where to write the picture (- for stdout).")
@click.option("--format", "fmt", type=click.Choice(["dot", "svg"]), default=None,
              help="DOT text, or SVG rendered by Graphviz's dot (needs graphviz installed). "
                   "Default: from the -o file's extension, else dot.")
def graph(plan_dir: str, output: str, fmt: str | None) -> None:
    """Draw a plan's namespace call graph and move steps as DOT or SVG.

    Each move step is a box holding the namespaces it moves; arrows go from caller to callee.
    Example: meshmigrate graph --plan out -o plan.svg
    """
    def draw() -> ExitStatus:
        from migrate.graphdot import load_plan, plan_dot, render_svg

        chosen = fmt or ("svg" if output.endswith(".svg") else "dot")
        text = plan_dot(load_plan(plan_dir))
        if chosen == "svg":
            text = render_svg(text)
        if output == "-":
            click.echo(text, nl=False)
        else:
            Path(output).write_text(text, encoding="utf-8")
            click.echo(f"meshmigrate: wrote {output}", err=True)
        return ExitStatus.OK

    sys.exit(int(_run(draw)))


@main.command()
@click.argument("obj", metavar="KIND/NAMESPACE/NAME")
@click.option("--plan", "plan_dir", required=True, metavar="DIR",
              type=click.Path(file_okay=False, exists=True),
              help="A folder written by meshmigrate plan.")
def explain(obj: str, plan_dir: str) -> None:
    """Tell what became of one object of a plan's input.

    Where it was read, its disposition (converted, not-needed, lost, outside,
    input-problem), the target objects and commands that carry it, the losses it caused,
    and for each of its fields where it went or which loss covers it. KIND//NAME names an
    object without a namespace. Example: meshmigrate explain VirtualService/shop/reviews
    --plan out
    """
    def tell() -> ExitStatus:
        import json

        from migrate.errors import SourceError
        from migrate.explain import explain as story

        path = Path(plan_dir) / "plan.json"
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SourceError(f"{path}: not a meshmigrate plan ({exc})") from None
        click.echo(story(document, obj), nl=False)
        return ExitStatus.OK

    sys.exit(int(_run(tell)))


def _verify_report(source: str, plan_dir: str, result: Any, status: ExitStatus) -> dict[str, Any]:
    """The report of a verify run: the equivalence result, and the plan's losses (which
    explain its divergences)."""
    import json

    from migrate.report import build

    doc = json.loads((Path(plan_dir) / "plan.json").read_text(encoding="utf-8"))
    return build("verify", status, source, doc.get("target"), doc.get("losses") or [], [],
                 equivalence=result.to_json(), coexistence=None)


@main.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion_script(shell: str) -> None:
    """Print the shell completion script for bash, zsh or fish.

    It completes commands, options, --from and --to meshes, --target-version for the chosen
    --to, and --context and -n from the kubeconfig file (never from the cluster). Load it with
    eval "$(meshmigrate completion bash)" in ~/.bashrc (zsh: the same with zsh in ~/.zshrc;
    fish: meshmigrate completion fish > ~/.config/fish/completions/meshmigrate.fish).
    """
    from click.shell_completion import get_completion_class

    if _as_invoked("meshmigrate completion") != "meshmigrate completion":
        # Under kubectl the shell completes `kubectl`; kubectl (1.26+) asks the plugin's
        # kubectl_complete-meshmigrate executable (kubernetes/kubernetes#105867).
        click.echo("meshmigrate: error: kubectl completes `kubectl meshmigrate` itself, with "
                   "the kubectl_complete-meshmigrate command installed beside this one; load "
                   "kubectl's completion (kubectl completion bash) instead", err=True)
        sys.exit(int(ExitStatus.USAGE))
    cls = get_completion_class(shell)
    assert cls is not None  # click.Choice admits only the shells click knows
    # The script is for the `meshmigrate` executable, however this process was started.
    click.echo(cls(main, {}, "meshmigrate", "_MESHMIGRATE_COMPLETE").source())


def kubectl_complete() -> None:
    """The ``kubectl_complete-meshmigrate`` console script: kubectl 1.26+ runs it to complete
    ``kubectl meshmigrate ...`` with the words typed after the plugin name, the last one the
    word being completed, and expects one value per line then ``:<directive>`` as cobra's
    ``__complete`` prints it (kubernetes/kubernetes#105867,
    staging/src/k8s.io/kubectl/pkg/cmd/plugin/plugin_completion.go). Directive 4 is cobra's
    ShellCompDirectiveNoFileComp, 0 its default (the shell completes file names)."""
    from click.shell_completion import ShellComplete

    args = sys.argv[1:]
    incomplete = args.pop() if args else ""
    items = ShellComplete(main, {}, "kubectl meshmigrate", "_KUBECTL_MESHMIGRATE_COMPLETE") \
        .get_completions(args, incomplete)
    for item in items:
        if item.type == "plain":
            sys.stdout.write(f"{item.value}\n")
    files = any(item.type in ("file", "dir") for item in items)
    sys.stdout.write(f":{0 if files else 4}\n")


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


def _takes_files() -> bool:
    """Whether the running command reads files with -f (export and rbac do not, so their
    errors must not suggest it)."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and any(p.name == "paths" for p in ctx.command.params)


def _run(action) -> ExitStatus:  # type: ignore[no-untyped-def]
    """Map library errors to exit codes in one place; no traceback for user errors."""
    try:
        return action()
    except MigrateError as exc:
        click.echo(f"meshmigrate: error: {_as_invoked(str(exc))}", err=True)
        if exc.exit_status is ExitStatus.UNREACHABLE and _takes_files():
            click.echo("meshmigrate: or read files instead of a cluster: -f PATH", err=True)
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
