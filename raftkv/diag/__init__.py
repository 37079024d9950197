"""diag: an etcd diagnostic CLI (status, health, members, fsync, check, watch).

Importing it silences grpc's C-core logging (unless the user set ``GRPC_VERBOSITY``):
diag reports each endpoint's failure itself, in one line, and grpc's own handshake logs
would otherwise interleave with them on stderr.
"""

import os

os.environ.setdefault("GRPC_VERBOSITY", "NONE")
