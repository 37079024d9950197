"""raftkv: an embedded, durable, Raft-replicated key-value store speaking the etcd v3 API.

Sub-packages: ``raft`` (the pure consensus core), ``storage`` (WAL, backend, snapshots),
``mvcc`` (the replicated keyspace), ``server`` (the asyncio node and its gRPC services),
``client`` (the thin etcd v3 client), ``operator`` (the kopf operator), ``diag`` (the
diagnostic CLI). Dependencies point one way; ``.importlinter`` enforces it.
"""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # raftkv.Node (the embedded member) is imported lazily, so that using the consensus
    # core alone does not pull in gRPC and the server.
    if name == "Node":
        from raftkv.server.embed import Node

        return Node
    raise AttributeError(f"module 'raftkv' has no attribute {name!r}")
