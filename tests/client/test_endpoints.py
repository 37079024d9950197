"""Endpoint strings as etcdctl accepts them (pure)."""

from __future__ import annotations

import pytest

from raftkv.client import parse_endpoint, parse_endpoints


def test_endpoint_parsing() -> None:
    assert parse_endpoint("127.0.0.1:2379").target == "127.0.0.1:2379"
    assert parse_endpoint("https://h:1").scheme == "https"
    assert parse_endpoint("h").port == 2379
    for bad in ("ftp://h:1", "http://:1", "h:99999", "unix:///x"):
        with pytest.raises(ValueError):
            parse_endpoint(bad)
    assert [e.port for e in parse_endpoints("a:1,a:1,b:2")] == [1, 2]
    with pytest.raises(ValueError):
        parse_endpoints(" , ")
