"""Rollback copies restore each source object where the plan read it (issue 16): a namespaced
object written without ``metadata.namespace`` is read in ``default``, deleted there by the
plan, and must be restored there, not into whatever namespace the operator's context has."""

from __future__ import annotations

from pathlib import Path

import yaml

from migrate.emit.output import write_output
from tests.helpers import plan_yaml

UNNAMESPACED = """
apiVersion: v1
kind: Namespace
metadata: {name: default, labels: {istio-injection: enabled}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-web}
spec:
  selector: {matchLabels: {app: web}}
  rules: [{from: [{source: {namespaces: [default]}}]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 8080}]}
"""


def test_a_copy_without_a_namespace_is_restored_into_the_namespace_it_was_read_in():
    plan = plan_yaml(UNNAMESPACED, verify=False).plan
    [copy] = [c for s in plan.steps for c in s.rollback_manifests
              if c["kind"] == "AuthorizationPolicy"]
    assert copy["metadata"]["namespace"] == "default"


def test_the_written_rollback_file_carries_the_namespace_and_sits_in_its_folder(
        tmp_path: Path):
    result = plan_yaml(UNNAMESPACED, verify=False)
    write_output(result.plan, tmp_path / "out")
    [path] = list((tmp_path / "out" / "steps").glob(
        "*/rollback/*/authorizationpolicy.security.istio.io_allow-web.yaml"))
    assert path.parent.name == "default"
    assert yaml.safe_load(path.read_text())["metadata"]["namespace"] == "default"
