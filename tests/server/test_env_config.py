"""Configuration from the environment as etcd's (ETCD_<FLAG>, plus RAFTKV_<FLAG>): the
mapping and its precedence without processes, the CLI's exit code for a bad value, and a
member added with `etcdctl member add` and started from exactly the ETCD_* lines that
command prints (no flags at all), on raftkv and, the same way, on etcd 3.6.16."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftkv.cli import build_parser
from raftkv.server.envflags import EnvFlagError, env_name, from_env
from tests.support.etcd import Cluster, Member, etcd36_bin, raftkv_bin, raftkv_cluster, running
from tests.support.proc import Proc, free_port, wait_until


def test_env_names_follow_etcds_rule() -> None:
    assert env_name("ETCD", "initial-cluster-state") == "ETCD_INITIAL_CLUSTER_STATE"
    assert env_name("RAFTKV", "data-dir") == "RAFTKV_DATA_DIR"


def test_variables_become_flags_and_flags_win() -> None:
    p = build_parser()
    env = {"ETCD_NAME": "m3", "ETCD_DATA_DIR": "/d", "RAFTKV_HEARTBEAT_INTERVAL": "50",
           "ETCD_HEARTBEAT_INTERVAL": "70", "ETCD_ELECTION_TIMEOUT": "",
           "ETCD_LISTEN_CLIENT_URLS": "http://127.0.0.1:1", "ETCD_FOO": "bar",
           "ETCD_UNSUPPORTED_ARCH": "arm", "RAFTKV_SEED": "1"}
    out = from_env(p, ["--listen-client-urls=http://127.0.0.1:2"], env)
    ns = p.parse_args([*out.args, "--listen-client-urls=http://127.0.0.1:2"])
    assert (ns.name, ns.data_dir, ns.heartbeat_interval) == ("m3", "/d", 50)
    assert ns.listen_client_urls == "http://127.0.0.1:2"  # the flag wins
    assert ns.election_timeout == 1000  # empty counts as unset
    assert out.sources["heartbeat-interval"] == "RAFTKV_HEARTBEAT_INTERVAL"
    joined = "\n".join(out.warnings)
    assert "unrecognized environment variable ETCD_FOO=bar" in joined
    assert "ETCD_LISTEN_CLIENT_URLS" in joined and "RAFTKV_HEARTBEAT_INTERVAL" in joined
    assert "UNSUPPORTED_ARCH" not in joined and "RAFTKV_SEED" not in joined


@pytest.mark.parametrize(("var", "value", "says"), [
    ("ETCD_HEARTBEAT_INTERVAL", "abc", 'invalid value "abc" for ETCD_HEARTBEAT_INTERVAL'),
    ("RAFTKV_INITIAL_CLUSTER_STATE", "maybe",
     'invalid value "maybe" for RAFTKV_INITIAL_CLUSTER_STATE'),
])
def test_a_bad_value_names_its_variable(var: str, value: str, says: str) -> None:
    with pytest.raises(EnvFlagError, match=re.escape(says)):
        from_env(build_parser(), [], {var: value})


@pytest.mark.slow
@pytest.mark.parametrize(("env", "says"), [
    ({"ETCD_HEARTBEAT_INTERVAL": "abc"}, 'invalid value "abc" for ETCD_HEARTBEAT_INTERVAL'),
    ({"ETCD_LISTEN_CLIENT_URLS": "localhost"}, "(set by ETCD_LISTEN_CLIENT_URLS)"),
])
def test_bad_variables_exit_2_like_bad_flags(env: dict[str, str], says: str) -> None:
    r = subprocess.run([str(raftkv_bin())], capture_output=True, text=True, timeout=30,
                       env=env)
    assert r.returncode == 2, r.stderr
    assert says in r.stderr and "Traceback" not in r.stderr


def _member_add_env(out: str) -> dict[str, str]:
    env = dict(re.findall(r'^(ETCD_[A-Z_]+)="(.*)"$', out, re.MULTILINE))
    assert set(env) == {"ETCD_NAME", "ETCD_INITIAL_CLUSTER",
                        "ETCD_INITIAL_ADVERTISE_PEER_URLS", "ETCD_INITIAL_CLUSTER_STATE"}, out
    return env


@pytest.fixture(params=["raftkv", "etcd-3.6.16"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    c = (raftkv_cluster(tmp_path / "c", 3) if request.param == "raftkv"
         else Cluster(tmp_path / "c", 3, binary=etcd36_bin()))
    yield from running(c)


@pytest.mark.slow
def test_a_member_added_by_etcdctl_starts_from_its_env_lines(cluster: Cluster,
                                                             tmp_path: Path) -> None:
    c = cluster
    new = Member("m3", tmp_path / "m3.data", free_port(), free_port(), free_port(),
                 health_on_metrics=c.members[0].health_on_metrics)
    added: list[str] = []

    def add() -> bool:
        # etcd refuses reconfiguration until its peers have been connected a while
        # ("etcdserver: unhealthy cluster"); raftkv's check is the live quorum
        r = c.etcdctl("member", "add", "m3", f"--peer-urls={new.peer_url}", version="3.6",
                      check=False)
        assert r.returncode == 0 or "unhealthy cluster" in r.stderr, r.stderr
        added.append(r.stdout)
        return r.returncode == 0
    wait_until(add, 30, "member add accepted")
    env = _member_add_env(added[-1])
    assert env["ETCD_INITIAL_CLUSTER_STATE"] == "existing"
    env.update({  # what etcdctl leaves to the operator: where to listen and store
        "ETCD_DATA_DIR": str(new.data_dir),
        "ETCD_LISTEN_PEER_URLS": new.peer_url,
        "ETCD_LISTEN_CLIENT_URLS": new.client_url,
        "ETCD_ADVERTISE_CLIENT_URLS": new.client_url,
        "ETCD_LISTEN_METRICS_URLS": new.metrics_url,
        "ETCD_HEARTBEAT_INTERVAL": "50", "ETCD_ELECTION_TIMEOUT": "500",
    })
    new.proc = Proc("m3", [str(c.binary)], tmp_path / "m3.log", env=env)
    c.members.append(new)  # stopped by pid with the others at teardown
    new.proc.start()
    wait_until(new.health, 30, "m3 (configured by environment only) healthy")
    log = (tmp_path / "m3.log").read_text()
    used = re.search(r"recognized and used environment variable\W+(variable-name\W+)?"
                     r"ETCD_NAME\b", log)
    assert used, log[-2000:]
    c.etcdctl("put", "via-m3", "1", endpoints=[new.client_url], version="3.6")
    members = json.loads(c.etcdctl("member", "list", "-w", "json", version="3.6",
                                   endpoints=[new.client_url]).stdout)["members"]
    m3 = next(m for m in members if m.get("name") == "m3")
    assert m3["peerURLs"] == [new.peer_url] and m3["clientURLs"] == [new.client_url]
    assert len(members) == 4
