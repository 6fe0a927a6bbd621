"""README.md stays true: every `$ command` in its examples is run, in order, in one folder
holding the samples, and the lines shown under it are compared with the real output. A line
`...` (alone, or indented as the lines around it) stands for any number of lines left out."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from click.testing import CliRunner

from migrate.cli import main
from tests.conftest import REPO

ELIDED = "..."


def plain_blocks(text: str) -> list[list[str]]:
    """The lines of each code block without a language."""
    blocks: list[list[str]] = []
    fence: str | None = None  # the opening line of the block we are in
    for line in text.splitlines():
        if line.startswith("```"):
            fence = None if fence is not None else line
            if fence == "```":
                blocks.append([])
        elif fence == "```":
            blocks[-1].append(line)
    return blocks


def examples(text: str) -> list[tuple[str, list[str]]]:
    """``(command, shown lines)`` for each ``$ `` line in the README's plain code blocks."""
    found: list[tuple[str, list[str]]] = []
    for block in plain_blocks(text):
        if not block or not block[0].startswith("$ "):
            continue  # a block of output without its command (a file excerpt)
        for line in block:
            if line.startswith("$ "):
                found.append((line[2:], []))
            else:
                found[-1][1].append(line)
    return found


def matches(shown: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` is ``shown`` with each ``...`` line standing for zero or more lines
    (trailing blank lines of either side ignored)."""
    while shown and not shown[-1].strip():
        shown = shown[:-1]
    while actual and not actual[-1].strip():
        actual = actual[:-1]
    if not shown:
        return not actual
    if shown[0].strip() == ELIDED:
        return any(matches(shown[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and shown[0] == actual[0] and matches(shown[1:], actual[1:])


def first_difference(shown: list[str], actual: list[str]) -> str:
    """A hint for the failure message: the first shown line the output does not bear out."""
    for k in range(len(shown), 0, -1):
        if matches(shown[:k] + [ELIDED], actual):
            return f"shown line {k + 1} is not what follows: {shown[k]!r}" if k < len(shown) \
                else "the output goes on after the last line shown (end with ...)"
    return f"the first line shown is not the first line of the output: {shown[0]!r}"


def run(command: str, cwd: Path) -> list[str]:
    words = shlex.split(command)
    if words[0] == "ls":
        return sorted(p.name for p in (cwd / words[1]).iterdir())
    assert words[0] == "meshmigrate", command
    result = CliRunner().invoke(main, words[1:], prog_name="meshmigrate")
    return result.output.splitlines()


def test_readme_examples_show_the_real_output(tmp_path: Path):
    cases = examples((REPO / "README.md").read_text(encoding="utf-8"))
    assert [c for c, _ in cases][:2] == [
        "meshmigrate meshes", "meshmigrate plan --from istio --to linkerd -f samples/istio/shop "
        "-o out"]
    (tmp_path / "samples").symlink_to(REPO / "samples")
    here = os.getcwd()
    os.chdir(tmp_path)  # the commands name samples/ and out relative to the clone
    try:
        for command, shown in cases:
            actual = run(command, tmp_path)
            assert matches(shown, actual), (
                f"README: `$ {command}`: {first_difference(shown, actual)}\nreal output:\n"
                + "\n".join(actual))
    finally:
        os.chdir(here)
    # The coexistence excerpt is from the last plan run above (Consul to Linkerd)'s RUNBOOK.md.
    [excerpt] = [b for b in plain_blocks((REPO / "README.md").read_text(encoding="utf-8"))
                 if b and b[0].startswith("| step | moved so far |")]
    runbook = (tmp_path / "out" / "RUNBOOK.md").read_text(encoding="utf-8").splitlines()
    assert matches([ELIDED, *excerpt, ELIDED], runbook), first_difference(
        [ELIDED, *excerpt, ELIDED], runbook)


def test_elision_matching():
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert matches(["a", "  ...", "b"], ["a", "b"])
    assert not matches(["a", "d"], ["a", "b", "d"])
    assert not matches(["a", "...", "d"], ["a", "b", "d", "e"])
    assert matches(["...", "c"], ["a", "b", "c", ""])
