"""Run ``meshmigrate`` and SIGKILL it at the Nth write event (tests/test_output_atomic.py).

``python -m tests.killpoint N MODE ARGS...``: MODE is ``exchange`` (the platform's atomic
swap, when it has one) or ``fallback`` (rename aside, rename in). Events, in order: each
step file written (killed halfway through its text), plan.json and RUNBOOK.md (killed with
the file cut to half), then each rename, swap and removal of a folder in
:mod:`migrate.emit.output` (killed just before it). With N < 0 nothing is killed and the
number of events is printed as ``events=K``.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable

from migrate.emit import manifests, output

COUNT = [0]


def _event() -> bool:
    """Count an event; True when it is the one to die at."""
    COUNT[0] += 1
    return COUNT[0] - 1 == KILL_AT


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _write(path: Path, text: str) -> None:
    if _event():
        with open(path, "x", encoding="utf-8") as fh:
            fh.write(text[: len(text) // 2])
            fh.flush()
        _die()
    real_write(path, text)


def _whole_file(real: Callable[[Any, Path], None]) -> Callable[[Any, Path], None]:
    def write(plan: Any, path: Path) -> None:
        real(plan, path)
        if _event():
            os.truncate(path, path.stat().st_size // 2)
            _die()
    return write


def _before(real: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        if _event():
            _die()
        return real(*args)
    return call


if __name__ == "__main__":
    KILL_AT = int(sys.argv[1])
    mode = sys.argv[2]
    real_write = manifests._write
    manifests._write = _write
    output.write_plan = _whole_file(output.write_plan)
    output.write_runbook = _whole_file(output.write_runbook)
    output._remove = _before(output._remove)
    if mode == "fallback":
        output._exchange = lambda a, b: False
    else:
        output._exchange = _before(output._exchange)
    rename = os.rename

    def counted_rename(a: Any, b: Any) -> None:
        # os.rename for the whole process: in a plan run only output.py renames anything.
        if _event():
            _die()
        rename(a, b)

    output.os.rename = counted_rename  # type: ignore[attr-defined]
    from migrate.cli import main

    try:
        main.main(sys.argv[3:], standalone_mode=False)
    except SystemExit:
        pass
    print(f"events={COUNT[0]}")
    sys.stdout.flush()
    os._exit(0)
