"""Shared fixtures: the ../shared folder (corpus, CRDs) and small helpers.

``../shared`` (or the folder ``MESHMIGRATE_SHARED`` names) holds real configurations and the
official CRD schemas. CI has it; a user's fresh clone does not, and there every test that
needs it is skipped with a reason naming the folder it looked for, while the rest runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"


def _shared_candidate() -> Path:
    return Path(os.environ.get("MESHMIGRATE_SHARED") or REPO.parent / "shared")


def _shared_dir() -> Path | None:
    candidate = _shared_candidate()
    return candidate if (candidate / "corpus").is_dir() and (candidate / "crds").is_dir() else None


def shared_missing() -> str:
    """The one-line skip reason for a test that needs ../shared, naming what is missing."""
    candidate = _shared_candidate()
    missing = [f"{candidate / sub}" for sub in ("corpus", "crds") if not (candidate / sub).is_dir()]
    return (f"needs the shared corpus and CRD schemas: {' and '.join(missing)} not found "
            "(set MESHMIGRATE_SHARED to their folder)")


@pytest.fixture(scope="session")
def shared() -> Path:
    """../shared (corpus and CRDs). Absent only in a user's fresh clone."""
    found = _shared_dir()
    if found is None:
        pytest.skip(shared_missing())
    return found


def shared_sets(mesh: str) -> list[str]:
    """Corpus set names for a mesh (empty when ../shared is absent); parametrize with
    ``corpus_cases`` so that absence skips with a reason instead of an empty parameter set."""
    found = _shared_dir()
    if found is None:
        return []
    return sorted(p.name for p in (found / "corpus" / mesh).iterdir() if p.is_dir())


def corpus_cases(cases: Sequence[Any], argcount: int = 1) -> list[Any]:
    """``cases`` for ``pytest.mark.parametrize``; when ../shared is absent and they are empty,
    one case skipped with ``shared_missing()`` (pytest would say only "got empty parameter
    set"). ``argcount`` is the number of parametrized arguments."""
    if cases or _shared_dir() is not None:
        return list(cases)
    values = ("absent",) * argcount
    return [pytest.param(*values, marks=pytest.mark.skip(reason=shared_missing()),
                         id="shared-corpus-absent")]


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--update-golden`` rewrites tests/golden/*/expected (review the diff before committing)."""
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite golden expectations from the current output")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """Whether this run rewrites golden files."""
    return bool(request.config.getoption("--update-golden"))
