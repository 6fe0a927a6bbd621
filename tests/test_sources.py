"""The file source: formats, bad input, and that one bad document spares the others."""

from __future__ import annotations

import io
import json

from migrate.sources.files import read_files
from migrate.yamlio import dump_documents, load_documents

SVC = ("apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: shop}\n"
       "spec: {ports: [{port: 80}]}\n")


def read_text(text: str | bytes):
    data = text if isinstance(text, bytes) else text.encode()
    return read_files(["-"], io.BytesIO(data))


def test_multi_document_and_lines():
    result = read_text(SVC % "a" + "---\n" + SVC % "b")
    assert [o.ref.name for o in result.objects] == ["a", "b"]
    assert [o.line for o in result.objects] == [1, 6]
    assert result.problems == []


def test_kind_list_is_flattened():
    dump = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "namespace": "x"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b", "namespace": "y"}}]}
    result = read_text(json.dumps(dump))
    assert sorted(str(o.ref) for o in result.objects) == ["Service/x/a", "Service/y/b"]


def test_malformed_document_reported_with_line_and_others_kept():
    text = SVC % "a" + "---\nkind: [unclosed\n---\n" + SVC % "c"
    result = read_text(text)
    assert [o.ref.name for o in result.objects] == ["a", "c"]
    assert len(result.problems) == 1
    problem = result.problems[0]
    assert problem.source == "<stdin>" and problem.line is not None and problem.line >= 6
    assert "malformed YAML" in problem.message


def test_non_utf8_bytes_reported_and_other_documents_kept():
    text = (SVC % "a").encode() + b"---\nkind: \xff\xfe\n---\n" + (SVC % "c").encode()
    result = read_text(text)
    assert [o.ref.name for o in result.objects] == ["a", "c"]
    assert any("UTF-8" in p.message and p.line == 6 for p in result.problems)


def test_wrong_shapes_are_problems_not_crashes():
    text = "- just\n- a list\n---\napiVersion: v1\nkind: Service\nmetadata: {name: 42}\n"
    result = read_text(text)
    assert result.objects == []
    messages = " | ".join(p.message for p in result.problems)
    assert "found a list" in messages and "metadata.name must be a non-empty string" in messages


def test_secrets_are_counted_never_kept():
    text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {password: c2VjcmV0}\n"
    result = read_text(text)
    assert result.objects == [] and result.skipped == {"v1/Secret": 1}


def test_dump_quotes_what_other_parsers_misread():
    out = dump_documents([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
                           "data": {"a": "on", "b": "1e3", "c": "2024-01-01", "d": "plain",
                                    "e": "y", "f": "0o17"}}])
    assert 'a: "on"' in out and 'b: "1e3"' in out and 'c: "2024-01-01"' in out
    assert "d: plain" in out and 'e: "y"' in out and 'f: "0o17"' in out
    assert out.startswith("apiVersion: v1\nkind: ConfigMap\nmetadata:")


def test_dump_never_writes_anchors():
    shared = {"type": "Exact", "value": "/x"}
    out = dump_documents([{"apiVersion": "v1", "kind": "X", "metadata": {"name": "x"},
                           "spec": {"a": shared, "b": shared}}])
    assert "&" not in out and "*" not in out


def test_loader_reports_document_start_lines():
    docs = list(load_documents("a: 1\n---\n\n# comment\nb: 2\n"))
    assert [d.line for d in docs] == [1, 5]


def test_alias_bomb_is_refused_quickly_and_other_documents_kept():
    import time

    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        name = chr(ord("a") + i)
        bomb += f"{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, " \
                f"*{prev}, *{prev}, *{prev}, *{prev}]\n"
    text = SVC % "before" + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\n" + \
        "data:\n" + "".join("  " + line + "\n" for line in bomb.splitlines()) + "---\n" + \
        SVC % "after"
    start = time.perf_counter()
    result = read_text(text)
    assert time.perf_counter() - start < 5
    assert [o.ref.name for o in result.objects] == ["before", "after"]
    [problem] = result.problems
    assert "alias bomb" in problem.message and problem.line == 6


def test_ordinary_anchors_still_load():
    text = ("apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: x, labels: &l "
            "{app: s}}\nspec: {selector: *l, ports: [{port: 80}]}\n")
    [obj] = read_text(text).objects
    assert obj.body["spec"]["selector"] == {"app": "s"}


def test_secret_data_never_reaches_any_output(tmp_path):
    from click.testing import CliRunner

    from migrate.cli import main

    src = tmp_path / "in.yaml"
    src.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: "
                   "{istio-injection: enabled}}\n---\n" +
                   SVC % "web" + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s, "
                   "namespace: shop}\ndata: {token: dG9wLXNlY3JldA==}\nstringData: "
                   "{plain: top-secret}\n")
    result = CliRunner().invoke(main, ["plan", "--from", "istio", "--to", "linkerd", "-f",
                                       str(src), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0
    everything = result.stdout + result.stderr + "".join(
        p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert "dG9wLXNlY3JldA==" not in everything and "top-secret" not in everything


def _typed(x):
    if isinstance(x, dict):
        return "dict", [(_typed(k), _typed(v)) for k, v in x.items()]
    if isinstance(x, list):
        return "list", [_typed(v) for v in x]
    return type(x).__name__, repr(x)


def _load(text: str, fast: bool) -> list[object]:
    import yaml

    from migrate import yamlio

    loader, out = yaml.CSafeLoader(text), []
    try:
        while loader.check_node():
            node = loader.get_node()
            out.append(_typed(yamlio._document(loader, node, {}) if fast
                              else loader.construct_document(node)))
    except Exception as exc:  # the same error either way
        out.append(("error", type(exc).__name__, str(exc)))
    finally:
        loader.dispose()
    return out


def _assert_built_as_pyyaml_builds(texts: list[str]) -> None:
    import yaml

    from migrate import yamlio

    for text in texts:
        if text == "a: &a [*a]\n":
            # A list holding itself nests without end: refused as too deep (PyYAML builds
            # it, and every later walk of it recursed until Python stopped it).
            [(_, kind, message)] = _load(text, fast=True)
            assert kind == "DocumentError" and message.startswith("nested deeper than")
            continue
        assert _load(text, fast=True) == _load(text, fast=False), text[:80]
        # Read from UTF-8 bytes (as files are), the same documents or the same error, compared
        # as text since an alias can make a list contain itself (the deeply nested lists
        # apart: showing them hits Python's recursion limit).
        if not text.startswith("[" * 100):
            assert _documents(text.encode()) == _documents(text), text[:80]
            # And the fast tag resolver (yamlio._FastLoader) gives PyYAML's own values.
            assert _data(text, yamlio._Loader) == _data(text, yaml.CSafeLoader), text[:80]


def test_yaml_documents_are_built_as_pyyaml_builds_them():
    """The fast construction of plain documents (yamlio._construct) gives the values, types
    and errors PyYAML's SafeConstructor gives, and leaves everything else to it: on the
    bundled samples and on documents written to reach every corner of YAML."""
    from tests.conftest import SAMPLES

    samples = [p.read_text() for p in sorted(SAMPLES.rglob("*.yaml"))]
    assert len(samples) >= 4, "the bundled samples were not found"
    _assert_built_as_pyyaml_builds(samples + [
        "a: &x {b: 1}\nc: *x\n", "a: &a [*a]\n", "<<: {a: 1}\nb: 2\n", "a: !!set {x, y}\n",
        "a: !!omap [{a: 1}]\n", "? [1, 2]\n: x\n", "? {a: 1}\n: x\n", "=: 1\n", "a: =\n",
        "!foo x\n", "a: !!int abc\n", "a: !!str 1\nb: !!float 1\nc: !!binary aGVsbG8=\n",
        "a: 2001-12-14t21:59:43.10-05:00\nb: 2002-12-14\n", "a: b\na: c\n",
        "a: 0o17\nb: 0x1F\nc: 1_000\nd: 1:30\ne: .inf\nf: .NaN\ng: ~\nh: yes\ni: 010\n",
        "'x': \"y\"\n80: http\n1.5: f\nnull: n\ntrue: t\n", "--- 1\n--- [a, {b: c}]\n---\n",
        "[" * 100 + "]" * 100, "[" * 2000 + "]" * 2000])


def test_corpus_documents_are_built_as_pyyaml_builds_them(shared):
    """The same over every YAML file of the shared corpus (real configurations)."""
    texts = [p.read_text() for p in sorted((shared / "corpus").rglob("*.yaml"))]
    assert len(texts) > 20, "the shared corpus holds almost no YAML"
    _assert_built_as_pyyaml_builds(texts)


def _data(text: str, loader: type) -> list[str]:
    import yaml

    try:
        return [repr(d) for d in yaml.load_all(text, Loader=loader)]
    except Exception as exc:  # noqa: BLE001 - the same error either way
        return [repr(("error", type(exc).__name__))]


def _documents(text: str | bytes) -> list[object]:
    from migrate.yamlio import DocumentError, load_documents

    try:
        return [repr((d.data, d.line)) for d in load_documents(text)]
    except DocumentError as exc:
        return [repr(("error", exc.message, exc.line, exc.column))]


def test_yaml_keys_are_shared_across_a_stream_and_values_are_not():
    docs = [d.data for d in load_documents(b"kind: A\nspec: {kind: x}\n---\nkind: B\n")]
    first, second = (next(k for k in d if k == "kind") for d in docs)
    assert first is second and next(iter(docs[0]["spec"])) is first
    assert docs == [{"kind": "A", "spec": {"kind": "x"}}, {"kind": "B"}]
    # A key equal to a string key but of another type stays its own (1 is not "1").
    assert [d.data for d in load_documents('1: a\n"1": b\n')] == [{1: "a", "1": "b"}]
