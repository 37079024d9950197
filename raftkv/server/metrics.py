"""The server's Prometheus metrics, named as etcd names them.

One registry per member (``ServerMetrics.registry``) so several embedded members in one
process do not collide; the storage layer's histograms (WAL fsync, backend commit) live
in ``raftkv.storage.metrics.REGISTRY`` and are served beside these.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class ServerMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.has_leader = Gauge("etcd_server_has_leader",
                                "Whether or not a leader exists. 1 is existence, 0 is not.",
                                registry=r)
        self.is_leader = Gauge("etcd_server_is_leader",
                               "Whether or not this member is a leader. 1 if is, 0 otherwise.",
                               registry=r)
        self.leader_changes = Counter("etcd_server_leader_changes_seen",
                                      "The number of leader changes seen.", registry=r)
        self.proposals_committed = Gauge("etcd_server_proposals_committed_total",
                                         "The total number of consensus proposals committed.",
                                         registry=r)
        self.proposals_applied = Gauge("etcd_server_proposals_applied_total",
                                       "The total number of consensus proposals applied.",
                                       registry=r)
        self.proposals_pending = Gauge("etcd_server_proposals_pending",
                                       "The current number of pending proposals to commit.",
                                       registry=r)
        self.proposals_failed = Counter("etcd_server_proposals_failed",
                                        "The total number of failed proposals seen.",
                                        registry=r)
        self.db_size = Gauge("etcd_mvcc_db_total_size_in_bytes",
                             "Total size of the underlying database physically allocated "
                             "in bytes.", registry=r)
        self.db_size_in_use = Gauge("etcd_mvcc_db_total_size_in_use_in_bytes",
                                    "Total size of the underlying database logically in use "
                                    "in bytes.", registry=r)
        self.is_learner = Gauge("etcd_server_is_learner",
                                "Whether or not this member is a learner. 1 if is, 0 otherwise.",
                                registry=r)
        # bounds on memory (issue 11, defect 8): each limit has its gauge
        self.pending_reads = Gauge("raftkv_server_pending_reads",
                                   "Linearizable reads waiting for a read index or apply.",
                                   registry=r)
        self.peer_inbox = Gauge("raftkv_server_peer_inbox_messages",
                                "Messages from peers waiting for the Raft loop.", registry=r)
        self.peer_inbox_dropped = Counter("raftkv_server_peer_inbox_dropped",
                                          "Messages from peers dropped: the inbox was full.",
                                          registry=r)
        self.uncommitted_bytes = Gauge("raftkv_server_uncommitted_entries_bytes",
                                       "Payload bytes of the leader's uncommitted entries.",
                                       registry=r)
        self.ready_committed_bytes = Gauge(
            "raftkv_server_ready_committed_bytes",
            "Payload bytes of the committed entries of the last Ready.", registry=r)
        self.apply_backlog = Gauge("raftkv_server_apply_backlog_entries",
                                   "Committed entries not applied yet (committed - applied).",
                                   registry=r)
        self.too_many_requests = Counter(
            "raftkv_server_too_many_requests",
            "Proposals refused: apply too far behind or uncommitted entries too big.",
            registry=r)
