"""A user's fresh clone has no ../shared: the suite must still collect cleanly there, every
corpus test skipping with a reason that names what is missing (issue 20)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

# Loaded into the child pytest with -p: prints each collected test's skip reasons.
_PLUGIN = '''
def pytest_collection_modifyitems(items):
    for item in items:
        for mark in item.iter_markers("skip"):
            reason = mark.kwargs.get("reason") or (mark.args[0] if mark.args else "")
            print("SKIP-REASON", item.nodeid, "::", reason)
'''


def test_collection_without_shared_names_what_is_missing(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "skipreasons.py").write_text(_PLUGIN)
    empty = tmp_path / "no-shared"
    empty.mkdir()
    env = {**os.environ, "MESHMIGRATE_SHARED": str(empty),
           "PYTHONPATH": os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-p", "skipreasons", "tests"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    reasons = [line for line in done.stdout.splitlines() if line.startswith("SKIP-REASON")]
    assert not [r for r in reasons if "empty parameter set" in r]
    # The corpus-parametrized tests are there, each once, skipped with the folder it looked for.
    corpus = [r for r in reasons if "needs the shared corpus" in r]
    assert len(corpus) >= 10, reasons
    assert all(str(empty / "corpus") in r for r in corpus)
