"""raftkv.operator.tlsmode: the mode the members run decides, not the spec's default."""

from __future__ import annotations

import pytest

from raftkv.operator import objects
from raftkv.operator.objects import ClusterSpec
from raftkv.operator.tls import TLSMode, TLSSpec
from raftkv.operator.tlsmode import ModeDecision, client_scheme, decide, recorded_mode

A, S, D = TLSMode.AUTO, TLSMode.SECRETS, TLSMode.DISABLED


@pytest.mark.parametrize(("spec", "recorded", "schemes", "want"), [
    (A, None, [], ModeDecision(A)),                              # new cluster
    (A, None, ["https", "https"], ModeDecision(A)),              # made by a TLS operator
    (A, None, ["http", "http", "http"], ModeDecision(D, True)),  # from before spec.tls
    (S, None, ["http"], ModeDecision(D, True)),
    (A, None, ["https", "http"], ModeDecision(D, True)),         # any plain member decides
    (A, None, [None], ModeDecision(A)),                          # not known from the pod
    (D, None, ["http"], ModeDecision(D)),
    (A, D, [], ModeDecision(D, True)),        # the record outlives the pods (all replaced)
    (A, D, ["http"], ModeDecision(D, True)),
    (A, A, ["http"], ModeDecision(A)),        # a record is trusted over the pods
    (D, D, [], ModeDecision(D)),
])
def test_decide(spec: TLSMode, recorded: TLSMode | None, schemes: list[str | None],
                want: ModeDecision) -> None:
    assert decide(spec, recorded, schemes) == want


def test_recorded_mode_reads_only_a_known_mode() -> None:
    assert recorded_mode({"mode": "Disabled", "notAfter": "x"}) is D
    assert recorded_mode({"mode": "Off"}) is None
    assert recorded_mode({}) is None and recorded_mode(None) is None
    assert recorded_mode("Auto") is None


def test_client_scheme_of_the_operators_own_command_lines() -> None:
    body = {"metadata": {"name": "c", "namespace": "n", "uid": "u" * 8}, "spec": {}}
    for mode, want in ((A, "https"), (S, "https"), (D, "http")):
        spec = ClusterSpec.of(body, "raftkv", "0.1.0")
        spec = ClusterSpec(**{**spec.__dict__, "tls": TLSSpec(mode=mode)})
        assert client_scheme(objects.member_args(spec, 0, new_cluster=True)) == want
    assert client_scheme(["raftkv", "--name=x"]) is None
    assert client_scheme(["--listen-client-urls=0.0.0.0:2379"]) is None


def test_only_a_legacy_decision_says_how_to_opt_in() -> None:
    assert "create a new RaftCluster" in ModeDecision(D, True).message(A, "c")
    assert ModeDecision(A).message(A, "c") == "The members run spec.tls.mode Auto."
