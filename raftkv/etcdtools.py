"""Where ``scripts/build-etcd.sh`` (``make etcd``) caches etcd 3.6.16's binaries (``etcd``,
``etcdctl``, ``etcdutl``): the tests' control group and the demos' outside view.

Invariant: a binary is returned only when the build finished (its ``.complete`` marker
exists); otherwise FileNotFoundError says how to build it. ``RAFTKV_ETCD_CACHE`` overrides
the cache directory, else ``$XDG_CACHE_HOME/raftkv/etcd/v3.6.16`` (default ``~/.cache``).
"""

from __future__ import annotations

import os
from pathlib import Path

ETCD36_VERSION = "v3.6.16"


def etcd36_dir() -> Path:
    """Where scripts/build-etcd.sh caches etcd 3.6.16's binaries."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("RAFTKV_ETCD_CACHE")
                or cache / "raftkv" / "etcd" / ETCD36_VERSION) / "bin"


def etcd36_bin(name: str = "etcd") -> Path:
    """Path of etcd 3.6.16's ``etcd``, ``etcdctl`` or ``etcdutl`` (the control group)."""
    path = etcd36_dir() / name
    if not (etcd36_dir() / ".complete").exists() or not path.exists():
        raise FileNotFoundError(f"{name} {ETCD36_VERSION} not built at {path}; run `make etcd` "
                                "(bash scripts/build-etcd.sh)")
    return path
