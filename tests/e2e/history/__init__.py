"""A Jepsen-style history harness: clusters behind per-link fault proxies, a recorded
workload, a seeded nemesis, and checkers (single-key linearizability, revision order,
no acknowledged write lost). Real etcd must pass it before raftkv relies on it.
"""
