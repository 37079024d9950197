"""Last in this package: the watch caches' consistency checks ran, after every scenario,
on each store, and none found the cache and the store disagreeing.

kube-apiserver 1.36.3 (k8s.io/apiserver ``pkg/storage/cacher/delegator.go``) checks each
resource's watch cache against a list from the store at the cache's revision, first
5-7.5 min after start and every 5-7.5 min after, counting outcomes in
``apiserver_storage_consistency_checks_total{status=success|failure|error}``. With
``KUBE_WATCHCACHE_CONSISTENCY_CHECKER=true`` a failure panics the apiserver, so a live
apiserver, no failure sample and no "Cache consistency check failed" in its log are the
verdict. A check of configmaps must also have passed after the leader-SIGKILL scenario
(which wrote configmaps). The wait is up to 9 min from the control plane's start (both
stores started together, so they wait it out at once).
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.apiserver.conftest import Planes
from tests.support.k8s import CONSISTENCY_METRIC, STORES, Store
from tests.support.proc import wait_until

pytestmark = pytest.mark.k8s

FIRST_CHECK_BY_S = 9 * 60  # 5 min + 50 % jitter, and slack for a busy machine
MUST_PASS = {("", "configmaps"), ("", "namespaces"), ("apps", "deployments"), ("", "pods")}


@pytest.mark.parametrize("store", STORES)
def test_watch_cache_consistency_checks_ran_and_passed(planes: Planes, store: Store) -> None:
    cp = planes.get(store)
    deadline = planes.started_at[store] + FIRST_CHECK_BY_S
    if planes.checks_at_fault.get(store, 0) > 0:  # checked before the fault: wait a period more
        deadline += FIRST_CHECK_BY_S

    def passed() -> set[tuple[str, str]]:
        return {(labels.get("group", ""), labels.get("resource", ""))
                for labels, value in cp.metric_samples(CONSISTENCY_METRIC)
                if labels.get("status") == "success" and value > 0}

    def checked_after_fault() -> bool:  # the fault wrote configmaps: check them after it
        after = cp.consistency_checks("configmaps").get("success", 0)
        return after > planes.checks_at_fault.get(store, -1)

    def done() -> bool:
        return passed() >= MUST_PASS and checked_after_fault()

    wait_until(lambda: done() or not cp.apiserver or not cp.apiserver.alive(),
               max(deadline - time.monotonic(), 1.0),
               f"a passed consistency check of each of {sorted(MUST_PASS)}", 2.0)
    assert cp.apiserver is not None and cp.apiserver.alive(), (
        f"kube-apiserver exited (a consistency failure panics it):\n{cp.logs(60)}")
    totals = cp.consistency_checks()
    log = cp.workdir.joinpath("kube-apiserver.log").read_text(errors="replace")
    assert "Cache consistency check failed" not in log
    assert totals.get("failure", 0) == 0, totals
    assert passed() >= MUST_PASS, (sorted(MUST_PASS - passed()), totals)
    assert checked_after_fault(), ("no configmaps check passed after the leader's SIGKILL",
                                   planes.checks_at_fault.get(store))
    print(f"[{store}] consistency checks: {totals}")
