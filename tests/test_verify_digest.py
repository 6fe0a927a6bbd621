"""The input digest plan.json records (verify refuses another input): equal for the same
configuration however it was dumped, different for any change a plan reads."""

from __future__ import annotations

import copy
import random

from migrate.verify.digest import input_digest
from tests.benchmarks.served import as_served
from tests.benchmarks.synth import generate


def test_the_same_configuration_served_reordered_gives_one_digest():
    objects = generate(namespaces=3, services=2, mesh="istio", unique=True)
    shuffled = copy.deepcopy(objects)
    random.Random(7).shuffle(shuffled)
    assert input_digest(objects) == input_digest(shuffled) == input_digest(as_served(objects))


def test_a_change_a_plan_reads_changes_the_digest():
    objects = generate(namespaces=3, services=2, mesh="istio", unique=True)
    base = input_digest(objects)
    service = next(o for o in objects if o["kind"] == "Service")
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    mesh = next(o for o in objects if "istio.io" in o["apiVersion"])
    for change in (lambda: service["spec"]["selector"].update(app="other"),
                   lambda: service["spec"]["ports"][0].update(port=1),
                   lambda: deployment["spec"]["template"]["metadata"]["labels"].update(v="9"),
                   lambda: deployment["spec"]["template"]["metadata"].setdefault(
                       "annotations", {}).update({"sidecar.istio.io/inject": "false"}),
                   lambda: mesh["spec"].update(extra=True)):
        before = copy.deepcopy(objects)
        change()
        assert input_digest(objects) != base
        objects[:] = before
        service = next(o for o in objects if o["kind"] == "Service")
        deployment = next(o for o in objects if o["kind"] == "Deployment")
        mesh = next(o for o in objects if "istio.io" in o["apiVersion"])
