"""diag: a typer CLI that diagnoses etcd and raftkv clusters."""
