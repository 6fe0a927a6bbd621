"""Loss aspect declarations (mappings/aspects.yaml): every code is declared, the table is
validated at load, and a declaration covers only its aspects and direction."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate import aspects, mappings
from migrate.aspects import Declaration, declarations
from migrate.losscodes import CODES
from migrate.mappings import MappingError


def test_every_code_is_declared():
    known = {f.code for f in mappings.features().values()} | set(CODES)
    assert set(declarations()) == known


def _with_table(monkeypatch, tmp_path: Path, text: str) -> None:
    real = mappings.tables_dir()
    for name in ("features.yaml",):
        (tmp_path / name).write_text((real / name).read_text())
    (tmp_path / "aspects.yaml").write_text(text)
    monkeypatch.setattr(mappings, "tables_dir", lambda: tmp_path)
    declarations.cache_clear()
    monkeypatch.setattr(aspects, "CODES", {})


@pytest.fixture(autouse=True)
def _fresh():
    declarations.cache_clear()
    yield
    declarations.cache_clear()


def _all_but(drop: str, extra: str = "") -> str:
    lines = ["codes:"]
    for f in mappings.features().values():
        if f.code != drop:
            lines.append(f"  {f.code}: {{aspects: [backends]}}")
    return "\n".join(lines) + "\n" + extra


def test_a_code_without_a_declaration_is_refused(monkeypatch, tmp_path):
    _with_table(monkeypatch, tmp_path, _all_but("ROUTE_MIRROR"))
    with pytest.raises(MappingError, match="ROUTE_MIRROR"):
        declarations()


def test_an_unknown_code_or_aspect_or_direction_is_refused(monkeypatch, tmp_path):
    _with_table(monkeypatch, tmp_path, _all_but("", "  NO_SUCH_CODE: {aspects: []}\n"))
    with pytest.raises(MappingError, match="NO_SUCH_CODE"):
        declarations()
    _with_table(monkeypatch, tmp_path, _all_but("ROUTE_MIRROR",
                                                "  ROUTE_MIRROR: {aspects: [weights]}\n"))
    with pytest.raises(MappingError, match="weights"):
        declarations()
    # authorization needs a direction, and a direction needs authorization
    for bad in ("{aspects: [authorization]}", "{aspects: [backends], authz: either}",
                "{aspects: [authorization], authz: sideways}"):
        _with_table(monkeypatch, tmp_path, _all_but("AUTHZ_DENY", f"  AUTHZ_DENY: {bad}\n"))
        with pytest.raises(MappingError, match="AUTHZ_DENY"):
            declarations()


def test_declarations_cover_only_their_aspect_and_direction():
    d = declarations()
    assert not d["ROUTE_MIRROR"].covers("backends")
    assert d["ROUTE_MIRROR"].covers("mirror")
    assert d["AUTHZ_DENY"].covers("authorization", "allow-more")
    assert not d["AUTHZ_DENY"].covers("authorization", "refuse-more")
    assert d["AUTHZ_CONDITION"].covers("authorization", "refuse-more")
    assert not d["AUTHZ_CONDITION"].covers("authorization", "allow-more")
    # A rule-order loss changes which rule a request hits, nothing of a rule itself.
    assert d["ROUTE_ORDER"].covers("match") and not d["ROUTE_ORDER"].covers("timeout")
    assert not d["ROUTE_ORDER"].covers("authorization", "allow-more")
    assert d["ROUTE_HTTP"].covers("timeout") and d["ROUTE_HTTP"].covers("match")
    assert Declaration("X", frozenset({"authorization"}), "either").covers(
        "authorization", "refuse-more")


def test_losses_md_shows_each_declaration():
    from tests.conftest import REPO

    text = (REPO / "docs" / "losses.md").read_text()
    section = text.split("## AUTHZ_DENY\n", 1)[1].split("\n## ", 1)[0]
    assert "Can change: authorization (the target may admit callers the source refused)" in \
        section


def test_an_mtls_mode_explains_decisions_about_plaintext_callers_only():
    d = declarations()
    assert d["CONSUL_MTLS_MODE"].covers("authorization", "refuse-more", identified=False)
    assert not d["CONSUL_MTLS_MODE"].covers("authorization", "refuse-more", identified=True)
    assert d["AUTHZ_DENY"].covers("authorization", "allow-more", identified=True)
