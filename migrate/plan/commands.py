"""Commands as data: what a step runs, held as argv lists and written for people in one place.

A plan's commands are pasted into a terminal by a person with cluster-admin rights, and many of
their words come from the input (names, namespaces, label and annotation keys and values). So
no code builds shell text: the planner builds :class:`Command` records (a pipeline of argv
tuples and an optional note of its own), and :func:`render` is the only function that turns one
into a line, quoting every word with :func:`shlex.join`. ``shlex.split(render(c),
comments=True)`` gives back exactly the argv the planner built (tests/test_shell_safety.py).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import Any, Sequence

PIPE = "|"
"""The token :func:`tokens` puts between the commands of a pipeline."""


@dataclass(frozen=True, slots=True)
class Command:
    """One command line: a pipeline of argv tuples (most commands have one) and a note.

    The note is planner-written text for the reader (``expect no output``); it is rendered
    after ``  #``, so a shell ignores it.
    """

    pipeline: tuple[tuple[str, ...], ...]
    note: str = ""
    sources: tuple[str, ...] = ()
    """The source objects (``Kind/namespace/name``) whose meaning the command carries (a
    namespace annotation set from a PeerAuthentication, a restart that moves a workload);
    named in plan.json and the ledger (:mod:`migrate.ledger`), never rendered."""

    def __post_init__(self) -> None:
        # Words are checked to be strings where they are rendered (shlex.join refuses others).
        if not self.pipeline or not all(self.pipeline):
            raise ValueError("a command needs at least one non-empty argv")
        for argv in self.pipeline:
            empty_flag_value(argv)

    @property
    def argv(self) -> list[list[str]]:
        """The pipeline as lists (plan.json's ``argv``)."""
        return [list(argv) for argv in self.pipeline]


# Flags of the planner's tools that take the next word as their value. A value that comes
# from the input and is empty (an object with no namespace) must drop the flag, never leave it
# bare: ``kubectl delete x -n '' --ignore-not-found`` is refused by kubectl, and a plain
# ``-n --ignore-not-found`` would take the next flag as the namespace.
VALUE_FLAGS = frozenset({"-n", "--namespace", "-l", "--selector", "-p", "--patch", "-o",
                         "--output", "-f", "--filename", "-k", "--kustomize", "--context",
                         "--timeout", "--for", "--type", "--set", "--values", "--version"})
MESH_TOOLS = frozenset({"kubectl", "helm", "istioctl", "linkerd", "consul-k8s"})
"""The tools whose flags :data:`VALUE_FLAGS` names (``grep -o`` takes no value)."""


def empty_flag_value(argv: Sequence[str]) -> None:
    """Refuse an argv holding an empty word or a value-taking flag without its value.

    Raises :class:`ValueError` naming the flag: the planner then has a bug to fix, which is
    better than a runbook line that fails (or deletes elsewhere) when pasted.
    """
    for i, word in enumerate(argv):
        if word == "":
            flag = argv[i - 1] if i else argv[0]
            raise ValueError(f"empty word after {flag!r} in {list(argv)!r}")
        if argv[0] in MESH_TOOLS and word in VALUE_FLAGS and (i + 1 == len(argv) or (
                argv[i + 1].startswith("-") and argv[i + 1] != "-")):
            raise ValueError(f"flag {word!r} has no value in {list(argv)!r}")


def run(*argv: str, note: str = "") -> Command:
    """A command of one argv: ``run("kubectl", "get", "pods")``."""
    return Command((tuple(argv),), note)


def pipe(*argvs: Sequence[str], note: str = "") -> Command:
    """A pipeline ``a | b | ...`` of argv lists."""
    return Command(tuple(tuple(argv) for argv in argvs), note)


def noted(command: Command, note: str) -> Command:
    """The same command with another note."""
    return Command(command.pipeline, note, command.sources)


def render(command: Command) -> str:
    """The command as a person pastes it: each argv through :func:`shlex.join`, the pipeline
    joined by `` | ``, the note after ``  # `` with its control characters made visible.

    The only place a command becomes shell text.
    """
    text = " | ".join(_join(argv) for argv in command.pipeline)
    return f"{text}  # {visible(command.note)}" if command.note else text


# Words shlex.quote leaves as they are (its own test, ``[^\w@%+=:,./-]`` in ASCII), one space
# between each: an argv that matches is what shlex.join would write, found in one search.
_PLAIN_WORDS = re.compile(r"[\w@%+=:,./-]+(?: [\w@%+=:,./-]+)*", re.ASCII)


def _join(argv: tuple[str, ...]) -> str:
    """:func:`shlex.join`, with most commands' case (no word needs quoting) found at once: a
    plan renders a command per workload and object moved, several times."""
    text = " ".join(argv)
    if text.count(" ") == len(argv) - 1 and _PLAIN_WORDS.fullmatch(text):
        return text  # no word holds a space (each one is a separator) or needs quoting
    return shlex.join(argv)


def tokens(command: Command) -> list[str]:
    """The pipeline's words in one list, :data:`PIPE` between its commands: what
    ``shlex.split(render(command), comments=True)`` gives."""
    out: list[str] = []
    for i, argv in enumerate(command.pipeline):
        if i:
            out.append(PIPE)
        out.extend(argv)
    return out


def json_arg(value: Any) -> str:
    """A JSON body given as one argv word (``kubectl patch -p``): compact, ASCII-only, so a
    control character or quote in a value is a JSON escape, never a raw character."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)


# C0 controls, DEL, C1 controls, the Unicode line and paragraph separators, and the
# bidirectional formatting characters (which reorder what a reader sees of a command line).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
                      "\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``, ``\\x1b``,
    ``\\u2028``): it can never start a new line or hide what follows it."""
    # str.isprintable is false for every character the pattern holds (and for a few more,
    # such as a no-break space, that then take the search): one C call for most lines.
    return text if text.isprintable() or not _CONTROL.search(text) else \
        _CONTROL.sub(_escape, text)
