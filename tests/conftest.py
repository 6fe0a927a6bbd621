"""Shared fixtures: the ../shared folder (corpus, CRDs) and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"


def _shared_dir() -> Path | None:
    candidate = Path(os.environ.get("MESHMIGRATE_SHARED", REPO.parent / "shared"))
    return candidate if (candidate / "corpus").is_dir() and (candidate / "crds").is_dir() else None


@pytest.fixture(scope="session")
def shared() -> Path:
    """../shared (corpus and CRDs). Absent only in a user's fresh clone."""
    found = _shared_dir()
    if found is None:
        pytest.skip("../shared (corpus and CRD schemas) is not next to this clone")
    return found


def shared_sets(mesh: str) -> list[str]:
    """Corpus set names for a mesh, for parametrizing (empty when ../shared is absent)."""
    found = _shared_dir()
    if found is None:
        return []
    return sorted(p.name for p in (found / "corpus" / mesh).iterdir() if p.is_dir())


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--update-golden`` rewrites tests/golden/*/expected (review the diff before committing)."""
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite golden expectations from the current output")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """Whether this run rewrites golden files."""
    return bool(request.config.getoption("--update-golden"))
