"""The loss report printed on stderr: grouped by namespace, one line per loss."""

from __future__ import annotations

from typing import Iterable

from migrate.errors import InputProblem
from migrate.losses import Loss, Severity
from migrate.wording import counted


def render_report(losses: Iterable[Loss], problems: Iterable[InputProblem],
                  min_severity: Severity = Severity.INFO, quiet: bool = False) -> str:
    """Plain text for a terminal or a CI log (``quiet``: problems and the summary line only)."""
    items = list(losses)
    lines = [f"error: {p}" for p in problems]
    counts = {s: sum(1 for x in items if x.severity is s) for s in Severity}
    shown = [] if quiet else [x for x in items if x.severity.rank >= min_severity.rank]
    lines.append(f"meshmigrate: {counted(len(items), 'loss', 'losses')} (" +
                 ", ".join(f"{counts[s]} {s.value}" for s in reversed(Severity)) + ")")
    current = None
    for loss in shown:
        ns = loss.namespace or "(cluster)"
        if ns != current:
            lines.append(f"namespace {ns}:")
            current = ns
        lines.append(f"  {loss.severity.value:<8} {loss.code} {loss.object} {loss.path}: "
                     f"{loss.message}")
    return "\n".join(lines) + "\n"
