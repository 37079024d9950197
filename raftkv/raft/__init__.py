"""Consensus core: a deterministic Raft state machine stepped by its caller; no I/O."""
