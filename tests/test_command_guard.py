"""No command of a plan carries an empty word or a flag without its value (issue 22).

A value-taking flag whose value comes from the input and is empty (``-n`` for an object
without a namespace) used to be rendered bare: ``kubectl delete namespace/linkerd-egress -n
--ignore-not-found``. :class:`migrate.plan.commands.Command` refuses such an argv when it is
built, so the fault cannot reach a runbook; the guard below plans every sample and golden
input to every target and checks every command they hold.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.pipeline import PlanOptions, plan_migration
from migrate.plan.commands import MESH_TOOLS, VALUE_FLAGS, Command, pipe, run
from tests.conftest import SAMPLES

TESTS = Path(__file__).parent
MESHES = ("consul", "istio", "linkerd")


def _inputs() -> list[tuple[str, str, str]]:
    """(source, target, path) for every sample set and golden input, to every other mesh."""
    out = []
    for mesh in MESHES:
        for folder in sorted(p for p in (SAMPLES / mesh).iterdir() if p.is_dir()):
            out += [(mesh, t, str(folder)) for t in MESHES if t != mesh]
    for case in sorted((TESTS / "golden_pairs").glob("*/*/input.yaml")):
        source, _, target = case.parent.parent.name.partition("-to-")
        out.append((source, target, str(case)))
    for case in sorted((TESTS / "golden").glob("*/input.yaml")):
        out.append(("istio", "linkerd", str(case)))
    return out


def test_an_empty_flag_value_is_refused_when_the_command_is_built():
    with pytest.raises(ValueError, match="empty word after '-n'"):
        run("kubectl", "delete", "namespace/linkerd-egress", "-n", "", "--ignore-not-found")
    with pytest.raises(ValueError, match="flag '-n' has no value"):
        run("kubectl", "delete", "namespace/linkerd-egress", "-n", "--ignore-not-found")
    with pytest.raises(ValueError, match="flag '-n' has no value"):
        pipe(("kubectl", "get", "pods", "-n"), ("grep", "x"))


def test_flags_of_other_tools_and_stdin_are_not_mistaken():
    # grep -o takes no value, and "-f -" reads stdin: both are fine.
    assert pipe(("kubectl", "get", "crd", "-o", "name"), ("grep", "-o", "-E", "x")).pipeline
    assert pipe(("linkerd", "uninstall"), ("kubectl", "delete", "-f", "-")).pipeline


@pytest.mark.parametrize("source,target,path", _inputs())
def test_no_generated_command_has_an_empty_or_missing_flag_value(source: str, target: str,
                                                                 path: str):
    result = plan_migration(PlanOptions(source, target, [path]))
    seen = 0
    for step in result.plan.steps:
        for command in [*step.commands, *step.verify,
                        *(c for c in step.rollback if isinstance(c, Command))]:
            for argv in command.pipeline:
                seen += 1
                assert "" not in argv, (step.id, argv)
                if argv[0] not in MESH_TOOLS:
                    continue
                for i, word in enumerate(argv):
                    if word in VALUE_FLAGS:
                        assert i + 1 < len(argv) and argv[i + 1] and \
                            (argv[i + 1] == "-" or not argv[i + 1].startswith("-")), \
                            (step.id, argv)
    assert seen, path
