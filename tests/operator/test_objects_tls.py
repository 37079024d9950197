"""spec.tls in the operator's pure pieces: the members' flags and volumes, and the certificates.

The certificates the operator issues are checked by a real TLS handshake in memory
(Python's ssl over memory BIOs, no socket): a client holding the cluster's CA and the
operator's client certificate verifies a member's server certificate by the member's DNS
name, and the member verifies the client; a certificate from another CA is refused.
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from raftkv.operator import certs, objects, pki
from raftkv.operator.objects import A_CERTS_NOT_AFTER, ClusterSpec, member_args
from raftkv.operator.tls import PEER_DIR, SERVER_DIR, TLSMode, TLSSpec

BODY: dict[str, Any] = {
    "apiVersion": "raftkv.dev/v1alpha1", "kind": "RaftCluster",
    "metadata": {"name": "demo", "namespace": "ns1", "uid": "0123456789abcdef"},
    "spec": {"replicas": 3},
}
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def spec_with(tls: dict[str, Any] | None) -> ClusterSpec:
    spec = dict(BODY["spec"])
    if tls is not None:
        spec["tls"] = tls
    return ClusterSpec.of({**BODY, "spec": spec}, "raftkv", "0.1.0")


AUTO = spec_with(None)
SECRETS = spec_with({"mode": "Secrets",
                     "secrets": {"server": "srv", "peer": "peer", "client": "cli"}})
OFF = spec_with({"mode": "Disabled"})


def test_tls_defaults_to_auto_with_the_crd_lifetimes() -> None:
    assert AUTO.tls == TLSSpec(TLSMode.AUTO, 90 * 86400, 30 * 86400)
    short = spec_with({"mode": "Auto", "auto": {"leafLifetimeSeconds": 600,
                                                "renewBeforeSeconds": 200}})
    assert (short.tls.lifetime, short.tls.renew_before) == (600, 200)
    assert SECRETS.tls.mode is TLSMode.SECRETS and SECRETS.tls.client_secret == "cli"
    with pytest.raises(ValueError):
        spec_with({"mode": "off"})


def test_auto_member_flags_are_mutual_tls_with_etcds_names() -> None:
    argv = member_args(AUTO, 1, new_cluster=False, cluster=(0, 1, 2))
    flags = dict(a.removeprefix("--").split("=", 1) for a in argv[1:])
    assert flags["listen-client-urls"] == "https://0.0.0.0:2379"
    assert flags["listen-peer-urls"] == "https://0.0.0.0:2380"
    assert flags["advertise-client-urls"] == "https://demo-1.demo-peer.ns1.svc:2379"
    assert flags["initial-cluster"].split(",")[0] == "demo-0=https://demo-0.demo-peer.ns1.svc:2380"
    assert flags["listen-metrics-urls"] == "http://0.0.0.0:2381"  # probes read it
    assert flags["cert-file"] == f"{SERVER_DIR}/tls.crt"
    assert flags["key-file"] == f"{SERVER_DIR}/tls.key"
    assert flags["trusted-ca-file"] == f"{SERVER_DIR}/ca.crt"
    assert flags["peer-cert-file"] == f"{PEER_DIR}/tls.crt"
    assert flags["peer-key-file"] == f"{PEER_DIR}/tls.key"
    assert flags["peer-trusted-ca-file"] == f"{PEER_DIR}/ca.crt"
    assert flags["client-cert-auth"] == flags["peer-client-cert-auth"] == "true"


def test_disabled_is_plain_text_without_tls_flags() -> None:
    argv = member_args(OFF, 0, new_cluster=True)
    assert not [a for a in argv if "cert" in a or "https" in a]
    assert OFF.peer_url(0) == "http://demo-0.demo-peer.ns1.svc:2380"
    pod = objects.pod(OFF, 0, image="raftkv:0.1.0", new_cluster=True)
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["data"]


@pytest.mark.parametrize(("spec", "server", "peer"), [
    (AUTO, "demo-2-server-tls", "demo-2-peer-tls"), (SECRETS, "srv", "peer")])
def test_pod_mounts_the_members_secrets_read_only(spec: ClusterSpec, server: str,
                                                  peer: str) -> None:
    pod = objects.pod(spec, 2, image="raftkv:0.1.0", new_cluster=False, cluster=(0, 1),
                      certs_not_after=1234)
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert vols["server-tls"]["secret"]["secretName"] == server
    assert vols["peer-tls"]["secret"]["secretName"] == peer
    mounts = {m["mountPath"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts[SERVER_DIR]["readOnly"] and mounts[PEER_DIR]["readOnly"]
    assert pod["metadata"]["annotations"] == {A_CERTS_NOT_AFTER: "1234"}
    plain = objects.pod(spec, 2, image="raftkv:0.1.0", new_cluster=True)
    assert "annotations" not in plain["metadata"]


def _ext(cert: x509.Certificate, cls: type[Any]) -> Any:
    return cert.extensions.get_extension_for_class(cls).value


def test_member_certificates_name_the_member_and_are_signed_by_the_ca() -> None:
    ca = certs.new_ca(AUTO, NOW)
    issued = certs.issue_member(AUTO, ca, 1, NOW)
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    assert _ext(ca_cert, x509.BasicConstraints).ca is True
    for pair in (issued.server, issued.peer):
        leaf = x509.load_pem_x509_certificate(pair.cert)
        leaf.verify_directly_issued_by(ca_cert)
        assert leaf.not_valid_after_utc == NOW + timedelta(seconds=AUTO.tls.lifetime)
        assert set(_ext(leaf, x509.ExtendedKeyUsage)) == {
            ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        assert _ext(leaf, x509.BasicConstraints).ca is False
        names = pki.dns_names(pair.cert)
        assert {"demo-1.demo-peer.ns1.svc", "demo-1.demo-peer.ns1.svc.cluster.local",
                "demo.ns1.svc", "localhost", "127.0.0.1"} <= set(names)
        assert "demo-0.demo-peer.ns1.svc" not in names
    assert issued.not_after == int((NOW + timedelta(seconds=AUTO.tls.lifetime)).timestamp())
    client = x509.load_pem_x509_certificate(certs.issue_client(AUTO, ca, NOW).cert)
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "root"
    assert list(_ext(client, x509.ExtendedKeyUsage)) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_a_host_template_address_is_an_ip_san() -> None:
    local = ClusterSpec.of(BODY, "raftkv", "0.1.0", host_template="127.0.{ordinal}.1")
    ca = certs.new_ca(local, NOW)
    leaf = x509.load_pem_x509_certificate(certs.issue_member(local, ca, 3, NOW).server.cert)
    ips = [str(ip) for ip in _ext(leaf, x509.SubjectAlternativeName)
           .get_values_for_type(x509.IPAddress)]
    assert "127.0.3.1" in ips


def test_secrets_are_kubernetes_tls_and_read_back() -> None:
    ca = certs.new_ca(AUTO, NOW)
    issued = certs.issue_member(AUTO, ca, 0, NOW)
    server, peer = certs.member_secrets(AUTO, 0, issued, ca.cert)
    assert server["type"] == "kubernetes.io/tls"
    assert server["metadata"]["name"] == "demo-0-server-tls"
    assert peer["metadata"]["name"] == "demo-0-peer-tls"
    assert server["metadata"]["ownerReferences"][0]["uid"] == "0123456789abcdef"
    assert set(server["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    back = certs.pair_of(server["data"])
    assert back == (issued.server, ca.cert)
    assert certs.pair_of({"tls.crt": server["data"]["tls.crt"]}) is None
    assert certs.pair_of({**server["data"], "tls.crt": "bm90IGEgY2VydA=="}) is None
    expiry = issued.server.not_after
    assert certs.due(issued.server, expiry - 100, 100)
    assert not certs.due(issued.server, expiry - 101, 100)


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, host: str) -> None:
    """A full TLS handshake between two contexts over memory BIOs (no socket)."""
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    srv = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    cli = client_ctx.wrap_bio(c_in, c_out, server_hostname=host)
    done = {"s": False, "c": False}
    for _ in range(20):
        for name, end, out, peer_in in (("c", cli, c_out, s_in), ("s", srv, s_out, c_in)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(out.read())
        if all(done.values()):
            srv.write(b"x")  # TLS 1.3: the server learns of a bad client cert on data
            c_in.write(s_out.read())
            assert cli.read(1) == b"x"
            c_out_data = c_out.read()
            s_in.write(c_out_data)
            return
    raise AssertionError("handshake did not finish")


def _files(tmp: Path, name: str, pair: pki.KeyPair) -> tuple[str, str]:
    crt, key = tmp / f"{name}.crt", tmp / f"{name}.key"
    crt.write_bytes(pair.cert)
    key.write_bytes(pair.key)
    return str(crt), str(key)


def test_operator_client_and_member_complete_mutual_tls(tmp_path: Path) -> None:
    ca = certs.new_ca(AUTO, NOW - timedelta(days=1))
    now = datetime.now(UTC)  # ssl checks validity against the real clock
    member = certs.issue_member(AUTO, ca, 2, now).server
    client = certs.issue_client(AUTO, ca, now)
    (tmp_path / "ca.crt").write_bytes(ca.cert)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*_files(tmp_path, "server", member))
    server_ctx.load_verify_locations(str(tmp_path / "ca.crt"))
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    client_ctx.load_cert_chain(*_files(tmp_path, "client", client))
    _handshake(server_ctx, client_ctx, "demo-2.demo-peer.ns1.svc")

    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        _handshake(server_ctx, client_ctx, "demo-1.demo-peer.ns1.svc")
    other = certs.new_ca(OFF, NOW - timedelta(days=1))
    stranger = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    stranger.load_cert_chain(*_files(tmp_path, "stranger", certs.issue_client(OFF, other, now)))
    with pytest.raises(ssl.SSLError, match=r"certificate verify failed|unknown ca"):
        _handshake(server_ctx, stranger, "demo-2.demo-peer.ns1.svc")
