"""The asyncio node: Ready loop, peer transport, etcd gRPC services, metrics."""
