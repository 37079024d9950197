"""Fixtures of the apiserver-on-a-store scenarios: one control plane per store.

Both control planes (etcd 3.6.16 and raftkv, three members each) are started together,
in parallel, once for this package, because the watch cache's consistency checker first
runs 5-7.5 min after the apiserver starts: started together, the two wait out that time
at once (``test_zz_consistency.py`` checks it last). ``control_plane`` is parametrized
over the stores, module-scoped, so each module runs all its scenarios on etcd and then on
raftkv. A store whose control plane failed to start fails its own tests only.
Without the kube binaries the tests are skipped, unless ``RAFTKV_REQUIRE_K8S=1``.
``RAFTKV_K8S_STORES=etcd`` (or ``raftkv``) starts one store only and skips the other's
tests, for a quicker run while developing.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.support.k8s import STORES, ControlPlane, Store, require_binaries


def selected_stores() -> list[Store]:
    wanted = os.environ.get("RAFTKV_K8S_STORES", ",".join(STORES)).split(",")
    return [s for s in STORES if s in wanted]


@dataclass
class Planes:
    """The started control planes by store, with start times and start failures."""

    ready: dict[Store, ControlPlane] = field(default_factory=dict)
    started_at: dict[Store, float] = field(default_factory=dict)
    failed: dict[Store, str] = field(default_factory=dict)
    # successful consistency checks of configmaps when the fault scenario ended, per store
    checks_at_fault: dict[Store, float] = field(default_factory=dict)

    def get(self, store: Store) -> ControlPlane:
        if store not in selected_stores():
            pytest.skip(f"{store} not in RAFTKV_K8S_STORES")
        if store in self.failed:
            pytest.fail(f"the {store} control plane did not start:\n{self.failed[store]}",
                        pytrace=False)
        return self.ready[store]


@pytest.fixture(scope="package")
def planes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planes]:
    require_binaries("make k8s etcd")
    result = Planes()
    lock = threading.Lock()

    # Work directories made here, not in the threads: the first mktemp creates pytest's
    # base directory, and two threads racing on it would make two.
    workdirs = {s: tmp_path_factory.mktemp(f"k8s-{s}") for s in selected_stores()}

    def start(store: Store) -> None:
        cp = ControlPlane(workdirs[store], store=store)
        try:
            cp.start(timeout=120)
        except Exception as exc:  # start() stopped what it started
            with lock:
                result.failed[store] = str(exc)
            return
        with lock:
            result.ready[store] = cp
            result.started_at[store] = time.monotonic()

    threads = [threading.Thread(target=start, args=(s,)) for s in selected_stores()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        yield result
    finally:
        for cp in result.ready.values():
            cp.stop()


@pytest.fixture(scope="module", params=STORES)
def control_plane(request: pytest.FixtureRequest, planes: Planes) -> ControlPlane:
    return planes.get(request.param)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.failed and hasattr(item, "funcargs"):
        cp = item.funcargs.get("control_plane")
        if isinstance(cp, ControlPlane):
            report.sections.append(("control plane logs", cp.logs()))
