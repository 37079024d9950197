"""The replicated state machine over the backend: revisions, KV requests, leases (no
watches yet: raftkv serves no Watch API)."""
