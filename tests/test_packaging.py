"""Packaging and generated docs: the wheel carries the capability tables, docs are current,
every loss code is catalogued."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

from migrate import docgen, mappings
from migrate.losscodes import CODES
from tests.conftest import REPO


def test_built_wheel_finds_its_capability_tables(tmp_path: Path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), str(REPO)], check=True)
    [wheel] = list(tmp_path.glob("meshmigrate-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for table in ("features.yaml", "linkerd.yaml", "istio.yaml"):
        assert f"migrate/_mappings/{table}" in names
    assert {"migrate/schemas/plan.schema.json", "migrate/schemas/report.schema.json"} <= \
        set(names)
    # pyproject says Apache-2.0; the wheel carries the license text.
    assert [n for n in names if n.endswith(".dist-info/licenses/LICENSE")], names
    assert "Apache License" in (REPO / "LICENSE").read_text() and \
        "Version 2.0, January 2004" in (REPO / "LICENSE").read_text()
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    # Run from outside the source tree so only the wheel's copy can be found.
    code = ("import migrate.mappings as m; print(m.tables_dir()); "
            "print(len(m.table('linkerd').entries))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True,
                         capture_output=True, text=True, env={"PYTHONPATH": str(target)}).stdout
    where, count = out.split()
    assert Path(where).is_relative_to(target)
    assert int(count) == len(mappings.features())


def test_generated_docs_are_current():
    for rel, make in docgen.GENERATED.items():
        assert (REPO / rel).read_text(encoding="utf-8") == make(), \
            f"{rel} is stale: run python -m migrate.docgen"


def test_every_loss_code_in_the_code_is_catalogued():
    used = set()
    for path in (REPO / "migrate").rglob("*.py"):
        used.update(re.findall(r'report\(\s*"([A-Z_]+)"', path.read_text()))
    feature_codes = {f.code for f in mappings.features().values()}
    assert used, "the scan found loss codes"
    assert used <= set(CODES) | feature_codes, used - set(CODES) - feature_codes
    catalogue = (REPO / "docs" / "losses.md").read_text()
    for code in used | feature_codes:
        assert f"## {code}\n" in catalogue


def test_every_target_table_covers_every_feature():
    for mesh in ("linkerd", "istio"):
        assert set(mappings.table(mesh).entries) == set(mappings.features())
