"""The replicated state machine over the backend: revisions, watches, leases."""
