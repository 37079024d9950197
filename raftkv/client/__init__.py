"""raftkv's thin async etcd v3 client, shared by diag and the operator.

It speaks to real etcd and to raftkv alike through aetcd's generated etcd v3 stubs
(python-etcd3 fails to import with protobuf >= 4). One :class:`EtcdClient` per endpoint;
failures are :class:`EtcdError` with an :class:`ErrorKind`.
"""

from raftkv.client.auth import Credentials, parse_user
from raftkv.client.client import EtcdClient
from raftkv.client.endpoints import Endpoint, parse_endpoint, parse_endpoints
from raftkv.client.errors import ErrorKind, EtcdError, classify
from raftkv.client.tls import TLSConfig
from raftkv.client.types import Alarm, EndpointStatus, Member, MemberList, ReadResult

__all__ = [
    "Alarm",
    "Credentials",
    "Endpoint",
    "EndpointStatus",
    "ErrorKind",
    "EtcdClient",
    "EtcdError",
    "Member",
    "MemberList",
    "ReadResult",
    "TLSConfig",
    "classify",
    "parse_endpoint",
    "parse_endpoints",
    "parse_user",
]
