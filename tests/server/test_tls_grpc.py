"""The client port's gRPC credentials (issue 13), on an in-process gRPC server: a client
certificate the trusted CA signed is required, its CN reaches the handler (what Auth
takes as the user), and replaced certificate files reach the next connection."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from raftkv.server.tlsconfig import TLSInfo, TLSSettings
from raftkv.server.tlsfiles import CertSource
from tests.support.pki import ClusterPKI, cluster_pki, issue


class _Status(rpc_pb2_grpc.MaintenanceServicer):
    def __init__(self) -> None:
        self.users: list[bytes] = []

    async def Status(self, request: rpc_pb2.StatusRequest,
                     context: grpc.aio.ServicerContext) -> rpc_pb2.StatusResponse:
        self.users += context.auth_context().get("x509_common_name", [])
        return rpc_pb2.StatusResponse(version="3.6.16")


@pytest.fixture
def pki(tmp_path: Path) -> ClusterPKI:
    return cluster_pki(tmp_path / "pki")


@pytest.fixture
async def served(pki: ClusterPKI, tmp_path: Path) -> AsyncIterator[tuple[int, _Status, Path]]:
    own = tmp_path / "own"
    own.mkdir()
    for kind in ("crt", "key"):
        (own / f"server.{kind}").write_bytes((pki.dir / f"server.{kind}").read_bytes())
    info = TLSInfo(cert_file=str(own / "server.crt"), key_file=str(own / "server.key"),
                   trusted_ca_file=str(pki.crt(pki.ca)), client_cert_auth=True)
    server = grpc.aio.server()
    svc = _Status()
    rpc_pb2_grpc.add_MaintenanceServicer_to_server(svc, server)
    port = server.add_secure_port("127.0.0.1:0", CertSource(info, TLSSettings())
                                  .grpc_credentials())
    await server.start()
    try:
        yield port, svc, own
    finally:
        await server.stop(0)


async def _status(port: int, pki: ClusterPKI, with_cert: bool = True) -> str:
    creds = grpc.ssl_channel_credentials(
        pki.crt(pki.ca).read_bytes(),
        pki.key(pki.client).read_bytes() if with_cert else None,
        pki.crt(pki.client).read_bytes() if with_cert else None)
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds) as ch:
        r = await rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(), timeout=5)
        return str(r.version)


def _served_der(port: int) -> bytes:
    return ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", port)))


async def test_client_certificate_required_and_its_cn_seen(
        served: tuple[int, _Status, Path], pki: ClusterPKI) -> None:
    port, svc, _ = served
    assert await _status(port, pki) == "3.6.16"
    assert svc.users == [b"root"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _status(port, pki, with_cert=False)
    assert err.value.code() is grpc.StatusCode.UNAVAILABLE
    assert svc.users == [b"root"]  # the handler never ran for it


async def test_replaced_files_reach_the_next_connection(
        served: tuple[int, _Status, Path], pki: ClusterPKI) -> None:
    port, _, own = served
    assert _served_der(port) == ssl.PEM_cert_to_DER_cert(pki.crt("server").read_text())
    issue(pki.dir, pki.ca, "server2", "/CN=raftkv-server", usage="server")
    for kind in ("key", "crt"):
        tmp = own / f".new.{kind}"
        tmp.write_bytes((pki.dir / f"server2.{kind}").read_bytes())
        tmp.rename(own / f"server.{kind}")
    assert await _status(port, pki) == "3.6.16"
    assert _served_der(port) == ssl.PEM_cert_to_DER_cert(pki.crt("server2").read_text())
