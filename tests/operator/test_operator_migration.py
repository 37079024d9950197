"""An operator upgrade onto a RaftCluster made before spec.tls existed keeps it running.

Such an object is stored without ``spec.tls``; the API server reads it back with the
CRD's default ``mode: Auto``, while its members serve plain text. The scenario makes that
state for real (kube-apiserver, member pods as local processes):

1. a one-member cluster is bootstrapped in plain text; the operator is stopped, the CRD
   replaced by one without ``spec.tls``/``status.tls`` (the old schema), and the object
   written again so that the API server stores it pruned, with the status the old
   operator wrote (no ``tls``, no TLS condition); the current CRD is applied again and
   the object now reads ``spec.tls.mode: Auto`` - the hazard;
2. the current operator starts: it records ``status.tls.mode: Disabled``, sets condition
   TLS False (PlainTextBeforeTLS) with one Warning Event, restarts no member (same pod
   uid, plain-text URLs) and creates no certificate Secret; a plain-text client works;
3. scaling to three still works, in plain text (the new pods are http too).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from raftkv.client import EtcdClient, parse_endpoint
from tests.support.k8s import ControlPlane
from tests.support.operatorenv import CRD, OperatorEnv
from tests.support.proc import wait_until

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

NS, NAME = "legacy", "old"


def old_crd() -> str:
    """The CRD as it was before spec.tls: no spec.tls, no status.tls, no TLS condition."""
    doc = yaml.safe_load(CRD.read_text())
    version = doc["spec"]["versions"][0]
    props = version["schema"]["openAPIV3Schema"]["properties"]
    del props["spec"]["properties"]["tls"]
    del props["status"]["properties"]["tls"]
    cond = props["status"]["properties"]["conditions"]["items"]["properties"]["type"]
    cond["enum"] = [t for t in cond["enum"] if t != "TLS"]
    version["additionalPrinterColumns"] = [c for c in version["additionalPrinterColumns"]
                                           if not c["jsonPath"].startswith(".status.tls")]
    return json.dumps(doc)


@pytest.fixture(scope="module")
def env(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[OperatorEnv]:
    e = OperatorEnv(control_plane, tmp_path_factory.mktemp("legacy"), NS, "127.92.{ordinal}.1")
    try:
        yield e.start()
    finally:
        e.stop()
        print(e.logs())
        e.apply_crd()  # the other modules' scenarios run on the current CRD


async def _put_get(url: str, key: bytes) -> int:
    c = EtcdClient(parse_endpoint(url), dial_timeout=2, command_timeout=3)
    try:
        await c.put(key, b"1")
        return int((await c.get(key)).count)
    finally:
        await c.close()


def _wait(env: OperatorEnv, fn: Any, timeout: float, what: str) -> Any:
    try:
        return wait_until(fn, timeout, what, interval=0.5)
    except AssertionError:
        print(env.logs())
        raise


def test_1_a_plain_text_cluster_stored_as_before_spec_tls(env: OperatorEnv) -> None:
    env.apply({"apiVersion": "raftkv.dev/v1alpha1", "kind": "RaftCluster",
               "metadata": {"name": NAME, "namespace": NS},
               "spec": {"replicas": 1, "version": "0.1.0", "tls": {"mode": "Disabled"}}})
    _wait(env, lambda: env.healthy(NAME, 1), 120, "one healthy plain-text member")
    env.stop_operator()
    env.apply_crd(old_crd())
    st = env.status(NAME)  # (read pruned by the old schema already: no spec/status.tls)
    kept = [c for c in st["conditions"] if c["type"] != "TLS"]
    env.kubectl("patch", "raftcluster", NAME, "--subresource=status", "--type=merge", "-p",
                json.dumps({"status": {"conditions": kept}}))
    # writes through status and the main resource store the object as the old schema has it
    env.kubectl("annotate", "raftcluster", NAME, "test/rewritten=1")
    obj = env.get("raftcluster", NAME)
    assert "tls" not in obj["spec"] and "tls" not in obj["status"], obj
    assert "TLS" not in {c["type"] for c in obj["status"]["conditions"]}
    env.apply_crd()
    assert env.get("raftcluster", NAME)["spec"]["tls"] == {"mode": "Auto"}  # the hazard
    assert "--listen-client-urls=http://0.0.0.0:2379" in env.pod_argv(f"{NAME}-0")


def test_2_the_new_operator_keeps_it_plain_text_and_says_how_to_opt_in(
        env: OperatorEnv) -> None:
    uid = env.get("pod", f"{NAME}-0")["metadata"]["uid"]
    env.start_operator()
    _wait(env, lambda: env.status(NAME).get("tls", {}).get("mode") == "Disabled", 60,
          "status.tls.mode Disabled recorded")
    tls = env.condition(NAME, "TLS")
    assert (tls["status"], tls["reason"]) == ("False", "PlainTextBeforeTLS"), tls
    assert "create a new RaftCluster" in tls["message"]
    _wait(env, lambda: env.healthy(NAME, 1), 60, "still one healthy member")
    assert env.get("pod", f"{NAME}-0")["metadata"]["uid"] == uid, "the member was restarted"
    assert "--listen-client-urls=http://0.0.0.0:2379" in env.pod_argv(f"{NAME}-0")
    assert not env.get("secrets", "-l", f"raftkv.dev/cluster={NAME}")["items"]
    assert asyncio.run(_put_get(env.url(0, "http"), b"legacy/a")) == 1
    warnings = [e for e in env.get("events")["items"] if e["reason"] == "PlainTextBeforeTLS"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning", warnings
    table = env.kubectl("get", "rkv", NAME).stdout
    assert "Disabled" in table.splitlines()[1], table


def test_3_scaling_still_works_in_plain_text(env: OperatorEnv) -> None:
    env.kubectl("scale", "rkv", NAME, "--replicas=3")
    _wait(env, lambda: env.healthy(NAME, 3), 180, "three healthy plain-text members")
    for o in range(3):
        assert "--listen-client-urls=http://0.0.0.0:2379" in env.pod_argv(f"{NAME}-{o}")
    assert asyncio.run(_put_get(env.url(2, "http"), b"legacy/b")) == 1
    assert env.condition(NAME, "TLS")["reason"] == "PlainTextBeforeTLS"
    assert not env.get("secrets", "-l", f"raftkv.dev/cluster={NAME}")["items"]
