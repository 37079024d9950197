"""diag: an etcd diagnostic CLI (status, health, members, fsync, check, watch).

Importing it silences grpc's C-core logging (unless the user set ``GRPC_VERBOSITY``):
diag reports each endpoint's failure itself, in one line, and grpc's own handshake logs
would otherwise interleave with them on stderr. It also selects gRPC's native (getaddrinfo)
resolver (unless ``GRPC_DNS_RESOLVER`` is set): gRPC's own c-ares resolver may ignore
resolv.conf's search domains, so in a pod a short Service name (``etcd:2379``,
``<cluster>.<ns>.svc``) would not resolve for diag while it does for etcdctl and curl.
"""

import os

os.environ.setdefault("GRPC_VERBOSITY", "NONE")
os.environ.setdefault("GRPC_DNS_RESOLVER", "native")
