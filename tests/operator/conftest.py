"""Fixtures of the operator tests: one real control plane per session.

Without the kube binaries the tests that need them are skipped, unless
``RAFTKV_REQUIRE_K8S=1`` (set by ``.ci/run``), which turns the skip into a failure.
A failing test that used the control plane gets the tails of its logs in its report.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.k8s import ControlPlane, require_binaries


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    require_binaries("make k8s etcd")
    cp = ControlPlane(tmp_path_factory.mktemp("k8s")).start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.failed and "control_plane" in getattr(item, "fixturenames", ()):
        cp = item.funcargs.get("control_plane") if hasattr(item, "funcargs") else None
        if isinstance(cp, ControlPlane):
            report.sections.append(("control plane logs", cp.logs()))
