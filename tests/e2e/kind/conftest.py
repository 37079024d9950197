"""The ``kind_cluster`` fixture: one real kind cluster per test session.

Without the kind infrastructure (``make kind``: scripts/kind/setup.sh) the tests that use
it are skipped, unless ``RAFTKV_REQUIRE_KIND=1`` (set by ``.ci/run``), which turns the skip
into a failure. A failing test that used the cluster gets pods, events and the kubelet's
log in its report. Startup timings are printed once the cluster is up.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.kind import KindCluster, infra_missing


@pytest.fixture(scope="session")
def kind_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KindCluster]:
    missing = infra_missing()
    if missing:
        msg = (f"kind infrastructure missing: {'; '.join(missing)}; "
               "run `make kind` (scripts/kind/setup.sh)")
        if os.environ.get("RAFTKV_REQUIRE_KIND") == "1":
            pytest.fail(f"RAFTKV_REQUIRE_KIND=1 and {msg}", pytrace=False)
        pytest.skip(msg)
    cluster = KindCluster(tmp_path_factory.mktemp("kind")).start()
    print(f"\nkind cluster up: {cluster.timings}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.failed and "kind_cluster" in getattr(item, "fixturenames", ()):
        cluster = item.funcargs.get("kind_cluster") if hasattr(item, "funcargs") else None
        if isinstance(cluster, KindCluster):
            report.sections.append(("kind cluster", cluster.diagnostics()))
