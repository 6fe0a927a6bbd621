"""The fast YAML writer (yamlio.dump_document) writes exactly what PyYAML writes, for the
manifests meshmigrate emits and for random data full of strings YAML treats specially."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate import yamlio

REPO = Path(__file__).parents[1]

# Strings that YAML reads as something else, or that need quoting, folding or escaping.
TRICKY = ["", " ", " a", "a ", "a: b", "a:b", "- x", "-x", "-", "#c", "a #b", "a#b", "x,y",
          "[x]", "{x}", "yes", "No", "on", "y", "1", "-1", "1.5", "1e3", "0o17", "0x1F", "1_000",
          "1:30", ".inf", ".NaN", "~", "null", "=", "<<", "2024-01-02", "é", "日本", "\u2028",
          "a\nb", "a\n", "\na", "a'b", 'a"b', "\\", "\t", "a\tb", "@x", "`x", "%x", "!x", "&x",
          "*x", "|x", ">x", "?x", "? x", ":x", ": x", "---", "...", "--- x", "\x00", "\x85",
          "\ufeff", "\U0001F600", "\u2029", "\r", "a\r\nb", "x" * 119, "x y " * 40,
          "k8s.io/name", "Service/shop/web", "kubectl.kubernetes.io/last-applied-configuration",
          "'", '"', "true", "False"]
scalars = st.one_of(st.sampled_from(TRICKY), st.text(max_size=12), st.integers(),
                    st.booleans(), st.none(), st.floats(allow_nan=False))
keys = st.one_of(st.sampled_from(TRICKY), st.text(max_size=12))
data = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)), max_leaves=25)


def _pyyaml(doc: Any) -> str:
    return yamlio._pyyaml_dump(yamlio._ordered(doc) if isinstance(doc, dict) else doc)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(keys, data, max_size=6))
def test_fast_writer_matches_pyyaml_on_random_documents(doc: dict[str, Any]):
    assert yamlio.dump_document(doc) == _pyyaml(doc)


def test_fast_writer_matches_pyyaml_on_emitted_and_real_manifests():
    files = sorted((REPO / "tests").rglob("golden*/**/*.yaml")) + \
        sorted((REPO / "samples").rglob("*.yaml"))
    docs = [d for f in files for d in yaml.safe_load_all(f.read_text()) if d]
    assert len(docs) > 200
    fast = 0
    for doc in docs:
        assert yamlio.dump_document(doc) == _pyyaml(doc)
        lines: list[str] = []
        try:
            yamlio._block_mapping(yamlio._ordered(doc), "", "", lines)
            fast += 1
        except yamlio._Unusual:
            pass
    assert fast > 0.9 * len(docs)  # the fast path is the usual one, not the exception


def test_fast_writer_layout_of_nested_blocks():
    doc = {"kind": "X", "spec": {"a": [{"b": 1, "c": [1, [2, 3]]}, [], {}], "d": {"e": None},
                                 "f": [[{"g": True}]], "h": "yes", "i": "a: b"}}
    assert yamlio.dump_document(doc) == (
        "kind: X\nspec:\n  a:\n  - b: 1\n    c:\n    - 1\n    - - 2\n      - 3\n  - []\n"
        "  - {}\n  d:\n    e: null\n  f:\n  - - g: true\n  h: \"yes\"\n  i: 'a: b'\n")


def test_fast_writer_matches_pyyaml_on_the_corpus(shared: Path):
    """Real projects' manifests: multi-line strings, long annotations, odd keys."""
    docs = []
    for path in sorted((shared / "corpus").rglob("*.y*ml")):
        try:
            docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        except (yaml.YAMLError, UnicodeDecodeError):
            continue  # the hostile-input tests cover files that do not parse
    assert len(docs) > 300
    for doc in docs:
        assert yamlio.dump_document(doc) == _pyyaml(doc)
