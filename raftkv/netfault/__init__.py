"""Fault-injecting TCP proxies for real members on loopback (per directed link: delay,
drop, cut, throttle), used by the history harness (tests/e2e/history) and by
``python -m raftkv.demo split-brain``. Nothing in the server imports this package."""
