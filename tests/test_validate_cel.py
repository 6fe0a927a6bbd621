"""--validate-with evaluates the CRDs' CEL rules (x-kubernetes-validations) where cel-python is
installed, and reports each rule it cannot evaluate instead of passing it (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate import validate_cel
from migrate.validate import SchemaSet, validate_manifest

GATEWAY_API = Path(__file__).resolve().parents[2] / "shared" / "crds" / "gateway-api" / \
    "v1.6.1" / "standard-install.yaml"
needs_cel = pytest.mark.skipif(not validate_cel.available(), reason="cel-python not installed")


def _route(timeouts: dict[str, str]) -> dict:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "web",
                                     "port": 80}],
                     "rules": [{"backendRefs": [{"name": "web", "port": 80}],
                                "timeouts": timeouts}]}}


@pytest.fixture(scope="module")
def gateway_schemas() -> SchemaSet:
    if not GATEWAY_API.is_file():
        pytest.skip("the shared Gateway API CRDs are not beside the repository")
    return SchemaSet.from_paths([str(GATEWAY_API)])


@needs_cel
def test_a_cel_rule_the_route_breaks_is_a_violation(gateway_schemas: SchemaSet):
    """Gateway API refuses a backendRequest timeout longer than the request timeout only by
    a CEL rule: the structural schema alone passes the route."""
    bad = validate_manifest(_route({"request": "1s", "backendRequest": "10s"}), "r.yaml",
                            gateway_schemas)
    assert [(v.field, v.unchecked) for v in bad] == [("spec.rules[0].timeouts", False)]
    assert "backendRequest timeout cannot be longer than request" in bad[0].message
    assert validate_manifest(_route({"request": "10s", "backendRequest": "1s"}), "r.yaml",
                             gateway_schemas) == []


_SCHEMA = {"type": "object", "properties": {"spec": {
    "type": "object",
    "properties": {"url": {"type": "string", "x-kubernetes-validations": [
                       {"rule": "isURL(self)", "message": "must be a URL"}]},
                   "mode": {"type": "string", "default": "strict"},
                   "size": {"type": "integer"}},
    "x-kubernetes-validations": [
        {"rule": "self.mode == 'strict' || self.size > 0", "message": "lax needs a size"},
        {"rule": "self.size == oldSelf.size", "message": "immutable"}]}}}


def _custom(spec: dict) -> list:
    schemas = SchemaSet()
    schemas.schemas[("example.com", "v1", "Thing")] = _SCHEMA
    body = {"apiVersion": "example.com/v1", "kind": "Thing",
            "metadata": {"name": "a", "namespace": "ns"}, "spec": spec}
    return validate_manifest(body, "t.yaml", schemas)


@needs_cel
def test_a_rule_outside_standard_cel_is_reported_unchecked_not_passed():
    [v] = _custom({"url": "http://example.com", "size": 1})
    assert v.unchecked and v.field == "spec.url" and "isURL(self)" in v.message


@needs_cel
def test_schema_defaults_are_applied_before_the_rules():
    # mode defaults to strict, so the rule holds without a size (undefaulted, self.mode would
    # be missing and the rule unevaluable); an explicit lax needs a size
    assert _custom({}) == []
    assert [(v.message, v.unchecked) for v in _custom({"mode": "lax", "size": 0})] == \
        [("lax needs a size", False)]


def test_transition_rules_are_left_to_updates():
    assert not any("oldSelf" in v.message for v in _custom({"size": 1}))


def test_without_cel_python_every_rule_is_reported_unchecked(monkeypatch):
    monkeypatch.setattr(validate_cel, "available", lambda: False)
    found = _custom({"url": "x", "size": 1})
    assert sorted(v.field for v in found) == ["spec", "spec.url"]
    assert all(v.unchecked and "cel-python is not installed" in v.message for v in found)
