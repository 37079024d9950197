"""The pure pieces of the operator: object builders, flag rendering, status, the step record.

Plain data in, plain data out: no Kubernetes, no members. The flags are checked by
parsing them with raftkv's own parser, so a pod the operator builds is a command line
raftkv accepts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from raftkv.cli import build_parser, config_from_args
from raftkv.client import EndpointStatus
from raftkv.operator import certs, objects
from raftkv.operator.objects import ClusterSpec, member_args, ordinal_of
from raftkv.operator.observe import MemberInfo, Observation, PodInfo
from raftkv.operator.planner import plan
from raftkv.operator.status import STEP_TYPES, decode_step, encode_step, status_of
from raftkv.operator.tls import TLS_MOUNT
from raftkv.operator.types import (
    AddLearner,
    Bootstrap,
    CreatePod,
    DeletePod,
    DeleteVolumeClaim,
    PromoteLearner,
    RemovalCause,
    RemoveMember,
    RenewCertificates,
    RollMember,
    Step,
    TransferLeadership,
    Wait,
    WaitKind,
)

BODY: dict[str, Any] = {
    "apiVersion": "raftkv.dev/v1alpha1", "kind": "RaftCluster",
    "metadata": {"name": "demo", "namespace": "ns1", "uid": "0123456789abcdef",
                 "generation": 4},
    "spec": {"replicas": 3, "version": "0.1.1", "storage": {"size": "2Gi"}},
}
SPEC = ClusterSpec.of(BODY, "raftkv", "0.1.0")


def test_spec_defaults_and_image_from_version() -> None:
    assert SPEC.image == "raftkv:0.1.1"
    assert SPEC.storage_size == "2Gi" and SPEC.election_ms == 1000
    explicit = ClusterSpec.of({**BODY, "spec": {"image": "reg/raftkv:x"}}, "raftkv", "0.1.0")
    assert explicit.image == "reg/raftkv:x" and explicit.replicas == 3
    default = ClusterSpec.of({**BODY, "spec": {}}, "raftkv", "0.1.0")
    assert default.image == "raftkv:0.1.0"


def test_stable_dns_names_and_ordinal_back_from_a_peer_url() -> None:
    assert SPEC.host(2) == "demo-2.demo-peer.ns1.svc"
    assert SPEC.peer_url(2) == "https://demo-2.demo-peer.ns1.svc:2380"  # spec.tls: Auto
    assert ordinal_of(SPEC.peer_url(5), SPEC) == 5
    assert ordinal_of("https://other-1.other-peer.ns1.svc:2380", SPEC) is None
    assert ordinal_of("http://demo-5.demo-peer.ns1.svc:2380", SPEC) is None


@pytest.mark.parametrize(("new", "cluster"), [(True, ()), (False, (0, 2)), (False, (1,))])
def test_member_flags_are_accepted_by_raftkv(new: bool, cluster: tuple[int, ...],
                                             tmp_path: Path) -> None:
    """With the certificates the operator issues in the Secrets' places (raftkv checks
    them at startup: readable, key matching, signed by the CA, valid now)."""
    argv = member_args(SPEC, 1, new_cluster=new, cluster=cluster)
    assert argv[0] == "raftkv"
    ca = certs.new_ca(SPEC, datetime.now(UTC))
    issued = certs.issue_member(SPEC, ca, 1, datetime.now(UTC))
    for kind, pair in (("server", issued.server), ("peer", issued.peer)):
        (tmp_path / kind).mkdir()
        for name, pem in (("tls.crt", pair.cert), ("tls.key", pair.key), ("ca.crt", ca.cert)):
            (tmp_path / kind / name).write_bytes(pem)
    argv = [a.replace(f"={TLS_MOUNT}/", f"={tmp_path}/") for a in argv]
    cfg = config_from_args(build_parser().parse_args(argv[1:]))
    assert cfg.name == "demo-1"
    assert cfg.initial_cluster_state == ("new" if new else "existing")
    expect = {1} if new else {1, *cluster}
    assert set(cfg.initial_cluster) == {f"demo-{o}" for o in expect}
    assert cfg.initial_advertise_peer_urls == [SPEC.peer_url(1)]
    assert cfg.initial_cluster_token == "demo-01234567"
    assert cfg.listen_metrics_urls == ["http://0.0.0.0:2381"]
    assert cfg.client_tls.client_cert_auth and cfg.peer_tls.client_cert_auth
    assert cfg.peer_tls.trusted_ca_file == f"{tmp_path}/peer/ca.crt"


def test_every_owned_object_has_a_controller_owner_reference() -> None:
    built = [objects.pod(SPEC, 0, image="raftkv:0.1.1", new_cluster=True),
             objects.claim(SPEC, 0), objects.peer_service(SPEC),
             objects.client_service(SPEC), objects.disruption_budget(SPEC, 3)]
    for obj in built:
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref == {"apiVersion": "raftkv.dev/v1alpha1", "kind": "RaftCluster",
                       "name": "demo", "uid": BODY["metadata"]["uid"], "controller": True,
                       "blockOwnerDeletion": True}
        assert obj["metadata"]["namespace"] == "ns1"
        assert obj["metadata"]["labels"]["raftkv.dev/cluster"] == "demo"


def test_pod_resolves_as_a_stable_name_and_probes_the_right_paths() -> None:
    p = objects.pod(SPEC, 2, image="raftkv:0.1.1", new_cluster=False, cluster=(0, 1),
                    voter=True)
    s = p["spec"]
    assert (s["hostname"], s["subdomain"]) == ("demo-2", "demo-peer")
    assert s["volumes"][0]["persistentVolumeClaim"]["claimName"] == "demo-2"
    c = s["containers"][0]
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": 2381}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 2381}
    assert p["metadata"]["labels"]["raftkv.dev/voter"] == "true"
    assert s["securityContext"]["runAsNonRoot"] is True
    peer = objects.peer_service(SPEC)["spec"]
    assert peer["clusterIP"] == "None" and peer["publishNotReadyAddresses"] is True


@pytest.mark.parametrize(("voters", "max_unavailable"), [(1, 0), (3, 1), (5, 2), (7, 3)])
def test_pdb_selects_voters_only(voters: int, max_unavailable: int) -> None:
    pdb = objects.disruption_budget(SPEC, voters)["spec"]
    assert pdb["maxUnavailable"] == max_unavailable
    assert pdb["selector"]["matchLabels"]["raftkv.dev/voter"] == "true"


ALL_STEPS: list[Step] = [
    Bootstrap("raftkv:0.1.0"), AddLearner(3), CreatePod(3), DeletePod(1),
    DeleteVolumeClaim(1), PromoteLearner(3, 2**64 - 1), TransferLeadership(0, 2, 77),
    RemoveMember(1, 12, RemovalCause.DATA_LOST), RollMember(2, "raftkv:0.1.1"),
    RenewCertificates(2),
]


@pytest.mark.parametrize("step", ALL_STEPS, ids=lambda s: type(s).__name__)
def test_recorded_step_round_trips(step: Step) -> None:
    assert decode_step(encode_step(step)) == step


def test_every_step_type_is_recordable_and_junk_is_no_step() -> None:
    assert {type(s).__name__ for s in ALL_STEPS} == set(STEP_TYPES)
    assert decode_step(None) is None
    assert decode_step({"step": "AddLearner"}) is None
    assert decode_step({"step": "Format", "ordinal": 1}) is None
    assert decode_step({"step": "RemoveMember", "ordinal": 1, "member_id": 2,
                        "cause": "bored"}) is None


def _status(mid: int, leader: int, index: int = 100, learner: bool = False) -> EndpointStatus:
    return EndpointStatus(endpoint="x", cluster_id=1, member_id=mid, revision=5,
                          version="3.5.12", db_size=1, db_size_in_use=1, leader=leader,
                          is_learner=learner, raft_term=7, raft_index=index,
                          raft_applied_index=index)


def _obs(down: frozenset[int] = frozenset(), replicas: int = 3) -> Observation:
    spec = ClusterSpec.of({**BODY, "spec": {**BODY["spec"], "replicas": replicas}},
                          "raftkv", "0.1.0")
    pods = {o: PodInfo(o, "raftkv:0.1.1", "Running") for o in range(3)}
    members = [MemberInfo(o, 10 + o, False, None if o in down else _status(10 + o, 11),
                          "0.1.1") for o in range(3)]
    return Observation(spec, pods, frozenset(range(3)), members, leader_id=11)


def test_status_of_a_converged_cluster() -> None:
    obs = _obs()
    p = plan(obs.observed())
    assert isinstance(p, Wait) and p.kind is WaitKind.CONVERGED
    st = status_of(obs, p, generation=4, now="2026-01-01T00:00:00Z")
    assert st["phase"] == "Running" and st["leader"] == "demo-1" and st["term"] == 7
    assert (st["replicas"], st["readyReplicas"], st["voters"]) == (3, 3, 3)
    assert st["selector"] == "raftkv.dev/cluster=demo" and st["observedGeneration"] == 4
    assert st["members"][1] == {"name": "demo-1", "id": "b", "leader": True, "learner": False,
                                "healthy": True, "raftIndex": 100, "version": "0.1.1",
                                "image": "raftkv:0.1.1"}
    cond = {c["type"]: (c["status"], c["reason"]) for c in st["conditions"]}
    assert cond == {"Available": ("True", "QuorumHealthy"),
                    "Progressing": ("False", "Converged"),
                    "Degraded": ("False", "AllMembersHealthy"),
                    "TLS": ("True", "AsSpecified")}
    assert st["tls"] == {"mode": "Auto"}  # no pod carries a certificate expiry here
    assert st["inProgress"] is None


def test_status_keeps_transition_times_while_a_condition_holds() -> None:
    obs = _obs()
    p = plan(obs.observed())
    first = status_of(obs, p, generation=4, now="2026-01-01T00:00:00Z")
    again = status_of(obs, p, generation=4, now="2026-01-01T00:05:00Z", previous=first)
    assert again["conditions"] == first["conditions"]
    down = _obs(down=frozenset({2}))
    later = status_of(down, plan(down.observed()), generation=4, now="2026-01-01T00:09:00Z",
                      previous=again)
    degraded = next(c for c in later["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and degraded["lastTransitionTime"].endswith("09:00Z")
    available = next(c for c in later["conditions"] if c["type"] == "Available")
    assert available["lastTransitionTime"].endswith("00:00Z")  # still True since then


def test_refused_step_shows_as_a_blocked_condition() -> None:
    obs = _obs(down=frozenset({0, 2}), replicas=5)  # quorum lost: scale-up refused
    p = plan(obs.observed())
    assert isinstance(p, Wait) and p.kind is WaitKind.BLOCKED
    st = status_of(obs, p, generation=5, now="2026-01-01T00:00:00Z")
    cond = {c["type"]: c for c in st["conditions"]}
    assert cond["Available"]["status"] == "False"
    assert cond["Degraded"]["reason"] == "Blocked"
    assert cond["Degraded"]["message"].startswith("Quorum lost")
    assert st["phase"] == "Failed" and st["readyReplicas"] == 1


def test_observation_marks_a_voter_without_claim_as_data_lost() -> None:
    obs = _obs()
    obs.claims = frozenset({1, 2})
    del obs.pods[0]
    m0 = obs.observed().members[0]  # type: ignore[index]
    assert m0.data_lost and not m0.healthy
    assert plan(obs.observed()) == RemoveMember(0, 10, RemovalCause.DATA_LOST)
