"""Reading a cluster that misbehaves: kinds that vanish after discovery, continue tokens that
keep expiring, 429 and 5xx answers, answers that trickle in, credentials that must never be
printed, and kubeconfigs with broken data. Against the stand-in API server of tests/fakeapi,
driven by the real client through real kubeconfig files."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from migrate.sources import cluster as cluster_module
from migrate.sources.cluster import RetryPolicy
from tests.benchmarks.synth import generate
from tests.fakeapi.kubeconfig import write_kubeconfig
from tests.fakeapi.server import FakeAPIServer, State, new_state
from tests.fakeapi.tls import make_certs
from tests.test_cluster import (  # noqa: F401 - istio_crds is a fixture
    cluster_state, free_port, istio_crds, plan_args, run, sample_objects, tree)

AUTHZ = "authorizationpolicies.security.istio.io"
VS_PATH = "/apis/networking.istio.io/v1/virtualservices"


class Sleeps:
    """A RetryPolicy sleep that records the waits and does not wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps(monkeypatch) -> Sleeps:
    """Small, deterministic retry constants for every Cluster the CLI builds."""
    recorder = Sleeps()
    monkeypatch.setattr(cluster_module, "RETRY", RetryPolicy(
        attempts=5, base=0.01, cap=0.04, retry_after_cap=3.0, restarts=3, sleep=recorder,
        jitter=lambda: 0.5))
    return recorder


def kubeconfig_for(tmp_path: Path, state: State, server: FakeAPIServer, **extra: Any) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", server.url, state.token, **extra)


# -- 1. a 404 on a LIST after discovery ---------------------------------------------------------
@pytest.mark.parametrize("fault, state_word", [("vanish", "no longer lists it"),
                                               ("list_404", "still lists it")])
def test_kind_missing_after_discovery_is_an_input_problem_not_an_empty_kind(
        tmp_path: Path, istio_crds, fault: str, state_word: str):
    objects = sample_objects()
    assert any(o["kind"] == "AuthorizationPolicy" for o in objects)
    state = cluster_state(istio_crds, objects)
    getattr(state, fault).add(AUTHZ)
    with FakeAPIServer(state) as server:
        result = run(*plan_args(kubeconfig_for(tmp_path, state, server), tmp_path / "out"))
    # Not presented as complete: exit 1, the problem on stderr, in plan.json and the runbook.
    assert result.exit_code == 1, result.stderr
    message = (f"cannot list {AUTHZ} (AuthorizationPolicy): the API server answered 404 Not "
               f"Found after discovery listed it, and discovery run again {state_word}; no "
               "AuthorizationPolicy was read, so the plan may be missing those objects")
    assert f"error: cluster: {message}" in result.stderr
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert any(message in p for p in plan["summary"]["input_problems"])
    assert message in (tmp_path / "out" / "RUNBOOK.md").read_text()
    # Discovery of the group ran once more, and only once; everything else was planned.
    assert [r.path for r in state.log].count("/apis/security.istio.io/v1") == 2
    assert "virtualservice" in (tmp_path / "out" / "plan.json").read_text().lower()


def test_export_of_a_cluster_with_a_vanished_kind_fails(tmp_path: Path, istio_crds):
    state = cluster_state(istio_crds, sample_objects())
    state.vanish.add(AUTHZ)
    with FakeAPIServer(state) as server:
        result = run("export", "--from", "istio", "--kubeconfig",
                     str(kubeconfig_for(tmp_path, state, server)), "-o", str(tmp_path / "d.yaml"))
    assert result.exit_code == 1
    assert f"error: cluster: cannot list {AUTHZ} (AuthorizationPolicy)" in result.stderr


def test_kind_moved_to_another_version_is_listed_there(tmp_path: Path, istio_crds):
    objects = sample_objects()
    state = cluster_state(istio_crds, objects)
    state.move[AUTHZ] = "v1beta1"
    with FakeAPIServer(state) as server:
        result = run("export", "--from", "istio", "--kubeconfig",
                     str(kubeconfig_for(tmp_path, state, server)), "-o", str(tmp_path / "d.yaml"))
    assert result.exit_code == 0, result.stderr
    exported = [d for d in yaml.safe_load_all((tmp_path / "d.yaml").read_text())
                if d["kind"] == "AuthorizationPolicy"]
    assert len(exported) == sum(1 for o in objects if o["kind"] == "AuthorizationPolicy")
    assert {d["apiVersion"] for d in exported} == {"security.istio.io/v1beta1"}


# -- 2. continue tokens that keep expiring ------------------------------------------------------
def test_continue_token_that_keeps_expiring_stops_after_bounded_restarts(
        tmp_path: Path, istio_crds, sleeps: Sleeps):
    state = new_state()
    state.load_crds(istio_crds)
    state.add(generate(namespaces=30, services=20))  # more than one page of Deployments
    state.expire_always.add("deployments.apps")
    with FakeAPIServer(state) as server:
        result = run("export", "--from", "istio", "--kubeconfig",
                     str(kubeconfig_for(tmp_path, state, server)), "-o", str(tmp_path / "d.yaml"))
    assert result.exit_code == 5, result.stderr
    assert "listing deployments.apps failed: its continue token expired (410 Gone) 4 times " \
           "in a row" in result.stderr
    deployments = [r for r in state.log if r.path == "/apis/apps/v1/deployments"]
    assert len(deployments) == 8  # 1 + 3 restarts, each a first page and one continue page
    assert "Traceback" not in result.stderr
    # A growing backoff between the restarts (base 0.01, doubled, jitter fixed at half).
    assert sleeps.waits == [0.0075, 0.015, 0.03]


# -- 3. 429 and 5xx -----------------------------------------------------------------------------
def test_transient_429_and_5xx_are_retried_honouring_retry_after(tmp_path: Path, istio_crds,
                                                                 sleeps: Sleeps):
    clean_state = cluster_state(istio_crds, sample_objects())
    with FakeAPIServer(clean_state) as server:
        clean = run(*plan_args(kubeconfig_for(tmp_path, clean_state, server), tmp_path / "a"))
    assert clean.exit_code == 0
    state = cluster_state(istio_crds, sample_objects())
    state.faults["/apis"] = [(503, "1")]
    state.faults[VS_PATH] = [(429, "7"), (500, None), (503, None)]
    with FakeAPIServer(state) as server:
        result = run(*plan_args(kubeconfig_for(tmp_path, state, server), tmp_path / "b"))
    assert result.exit_code == 0, result.stderr
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert [r.path for r in state.log].count(VS_PATH) == 4
    # Retry-After 1 as given; Retry-After 7 capped at 3; then backoff without the header.
    assert sorted(sleeps.waits) == [0.015, 0.03, 1.0, 3.0]


def test_persistent_server_errors_give_up_with_a_clear_error(tmp_path: Path, istio_crds,
                                                             sleeps: Sleeps):
    state = cluster_state(istio_crds, sample_objects())
    state.faults[VS_PATH] = [(503, None)] * 50
    with FakeAPIServer(state) as server:
        result = run(*plan_args(kubeconfig_for(tmp_path, state, server), tmp_path / "o"))
    assert result.exit_code == 5
    assert f"kept answering GET {VS_PATH} with HTTP 503 (server error); gave up after 5 " \
           "tries" in result.stderr
    assert [r.path for r in state.log].count(VS_PATH) == 5
    assert "Traceback" not in result.stderr


def test_retry_policy_delays_are_bounded():
    policy = RetryPolicy(base=0.5, cap=8.0, retry_after_cap=10.0, jitter=lambda: 1.0)
    assert [policy.delay(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    low = RetryPolicy(base=0.5, cap=8.0, jitter=lambda: 0.0)
    assert [low.delay(n) for n in range(3)] == [0.25, 0.5, 1.0]
    assert policy.delay(0, retry_after=3600) == 10.0
    assert policy.delay(4, retry_after=2) == 2


# -- 4. a deadline for the whole request --------------------------------------------------------
@pytest.mark.parametrize("phase, scheme", [("body", "http"), ("headers", "http"),
                                           ("body", "https")])
def test_request_timeout_bounds_the_whole_request(tmp_path: Path, istio_crds, phase: str,
                                                  scheme: str):
    state = cluster_state(istio_crds, sample_objects())
    # A byte every 50 ms: every socket read is quick, the answer takes minutes.
    state.slow["/apis"] = (phase, 0.05)
    certs = make_certs(tmp_path) if scheme == "https" else None
    tls = (str(certs["cert"]), str(certs["key"])) if certs else None
    with FakeAPIServer(state, tls=tls) as server:
        kubeconfig = kubeconfig_for(tmp_path, state, server, ca=certs["ca"] if certs else None)
        start = time.monotonic()
        result = run(*plan_args(kubeconfig, tmp_path / "o", "--request-timeout", "0.5"))
        elapsed = time.monotonic() - start
    assert result.exit_code == 5, result.stderr
    assert f"timed out after 0.5s waiting for {scheme}://127.0.0.1:" in result.stderr
    assert "(GET /apis)" in result.stderr
    assert elapsed < 3.0


# -- 5. no secret in any message ----------------------------------------------------------------
PASSWORD = "hunter2-url-pass"
TOKEN = "tok-SECRET-4f1c9a"
KEY = "-----BEGIN PRIVATE KEY-----\nKEYMATERIALSECRET0123\n-----END PRIVATE KEY-----\n"
KEY_DATA = base64.b64encode(KEY.encode()).decode()
SECRETS = (PASSWORD, "admin:", TOKEN, "KEYMATERIALSECRET", KEY_DATA, "Bearer ")


def secret_kubeconfig(path: Path, url: str, **cluster_extra: Any) -> Path:
    """A kubeconfig carrying credentials everywhere they can be: URL, token, client key."""
    with_userinfo = url.replace("://", f"://admin:{PASSWORD}@")
    return write_kubeconfig(path, with_userinfo, TOKEN, cluster_extra=cluster_extra,
                            user_extra={"client-key-data": KEY_DATA,
                                        "client-certificate-data": KEY_DATA})


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, (secret, text)


def test_no_secret_in_any_message(tmp_path: Path, istio_crds, monkeypatch, sleeps: Sleeps):
    outputs: list[str] = []

    def plan(kubeconfig: Path, *extra: str) -> Any:
        result = run(*plan_args(kubeconfig, tmp_path / "o", *extra))
        outputs.append(result.stdout + result.stderr)
        return result

    refused = plan(secret_kubeconfig(tmp_path / "k1", f"http://127.0.0.1:{free_port()}"))
    assert refused.exit_code == 5 and "cannot connect to http://127.0.0.1:" in refused.stderr

    state = cluster_state(istio_crds, sample_objects())
    state.token = "another-token"  # the kubeconfig's token is now rejected: 401
    with FakeAPIServer(state) as server:
        rejected = plan(secret_kubeconfig(tmp_path / "k2", server.url))
        assert rejected.exit_code == 6 and "401 Unauthorized" in rejected.stderr
        state.token = TOKEN
        state.faults[VS_PATH] = [(503, None)] * 10
        failing = plan(secret_kubeconfig(tmp_path / "k3", server.url))
        assert failing.exit_code == 5 and "gave up" in failing.stderr
        state.faults.clear()
        state.vanish.add(AUTHZ)
        missing = plan(secret_kubeconfig(tmp_path / "k4", server.url))
        assert missing.exit_code == 1
        files = tree(tmp_path / "o")
        assert files and all(secret.encode() not in data for data in files.values()
                             for secret in SECRETS)
        state.slow["/apis"] = ("body", 0.05)
        slow = plan(secret_kubeconfig(tmp_path / "k5", server.url), "--request-timeout", "0.3")
        assert slow.exit_code == 5 and "timed out" in slow.stderr
    proxied = plan(secret_kubeconfig(tmp_path / "k6", "http://127.0.0.1:9", **{
        "proxy-url": f"http://proxyuser:{PASSWORD}@127.0.0.1:{free_port()}"}))
    assert proxied.exit_code == 5 and "through the proxy http://127.0.0.1:" in proxied.stderr
    broken = plan(secret_kubeconfig(tmp_path / "k7", "http://127.0.0.1:9", **{
        "certificate-authority-data": "%%%"}))
    assert broken.exit_code == 5
    assert_no_secret(*outputs)
    assert all("Traceback" not in o and "internal error" not in o for o in outputs)


# -- 6. broken kubeconfig data ------------------------------------------------------------------
@pytest.mark.parametrize("cluster_extra, user_extra, field", [
    ({"certificate-authority-data": "not*base64!"}, {},
     "clusters[fake].cluster.certificate-authority-data is not valid base64"),
    ({}, {"client-key-data": "abc"}, "users[tester].user.client-key-data is not valid base64"),
    ({}, {"client-certificate-data": 12345},
     "users[tester].user.client-certificate-data is not a string of base64 data"),
])
def test_bad_kubeconfig_data_names_the_field(tmp_path: Path, cluster_extra, user_extra, field):
    kubeconfig = write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:9", "t0ken-value",
                                  cluster_extra=cluster_extra, user_extra=user_extra)
    result = run(*plan_args(kubeconfig, tmp_path / "o"))
    assert result.exit_code == 5
    assert f"meshmigrate: error: kubeconfig {kubeconfig}: {field}" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def test_kubeconfig_that_is_not_yaml_or_not_a_kubeconfig(tmp_path: Path):
    bad_yaml = tmp_path / "bad"
    bad_yaml.write_text("apiVersion: v1\nusers:\n- name: u\n  user: {token: s3cret-t0ken\n")
    result = run(*plan_args(bad_yaml, tmp_path / "o"))
    assert result.exit_code == 5
    assert f"kubeconfig {bad_yaml}:" in result.stderr and "is not valid YAML" in result.stderr
    assert "s3cret-t0ken" not in result.stderr
    shapeless = tmp_path / "shapeless"
    shapeless.write_text("current-context: x\ncontexts: 5\n")
    result = run(*plan_args(shapeless, tmp_path / "o"))
    assert result.exit_code == 5
    assert "contexts is not a list of entries with a name and a context" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
