"""The ``raftkv-operator`` command: run the kopf operator of RaftClusters.

``raftkv-operator [--namespace NS ... | --all-namespaces] [--peering NAME | --standalone]
[--liveness URL] [--verbose]``. With peering (the default name ``raftkv-operator``) any
number of replicas may run and exactly one acts (kopf's ClusterKopfPeering, or
KopfPeering when namespaced): the one with the highest ``--priority`` (random by
default, so that the replicas of one Deployment differ; equal priorities would freeze
them all); ``--standalone`` turns peering off for local runs.

Invariants: a bad flag is one sentence on stderr and exit code 2; the liveness endpoint
(kopf's, default ``http://0.0.0.0:8080/healthz``) answers while the operator runs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import sys
from typing import NoReturn

DEFAULT_LIVENESS = "http://0.0.0.0:8080/healthz"
DEFAULT_PEERING = "raftkv-operator"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"raftkv-operator: {message} (see raftkv-operator --help)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="raftkv-operator", allow_abbrev=False,
                description="Run the Kubernetes operator of raftkv RaftClusters.")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[],
                       help="watch this namespace (repeatable)")
    scope.add_argument("--all-namespaces", "-A", action="store_true",
                       help="watch RaftClusters in every namespace")
    peer = p.add_mutually_exclusive_group()
    peer.add_argument("--peering", default=DEFAULT_PEERING,
                      help="kopf peering object name (one of many replicas acts)")
    peer.add_argument("--standalone", action="store_true", help="no peering")
    p.add_argument("--priority", type=int, default=None,
                   help="peering priority (default: random, so that replicas of one "
                        "Deployment differ; kopf freezes all operators of equal priority)")
    p.add_argument("--liveness", default=DEFAULT_LIVENESS, help="liveness endpoint URL")
    p.add_argument("--verbose", "-v", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    if not ns.namespace and not ns.all_namespaces:
        sys.stderr.write("raftkv-operator: give --namespace NS or --all-namespaces\n")
        return 2
    # gRPC's own (c-ares) resolver may ignore resolv.conf's search domains; the members'
    # names (<pod>.<peer-svc>.<ns>.svc) need them, as every other client in a pod has.
    os.environ.setdefault("GRPC_DNS_RESOLVER", "native")
    import kopf

    import raftkv.operator.handlers  # noqa: F401  (registers the handlers)

    logging.basicConfig(level=logging.DEBUG if ns.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not ns.verbose:
        logging.getLogger("kubernetes").setLevel(logging.WARNING)
        logging.getLogger("aiohttp").setLevel(logging.WARNING)
    asyncio.run(kopf.operator(
        clusterwide=ns.all_namespaces,
        namespaces=ns.namespace,
        standalone=ns.standalone,
        priority=ns.priority if ns.priority is not None else random.randint(1, 2**31 - 1),
        peering_name=None if ns.standalone else ns.peering,
        liveness_endpoint=ns.liveness or None,
    ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
