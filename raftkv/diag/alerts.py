"""etcd alerting rules in the style of etcd's mixin, rendered for a job selector.

One template renders two artefacts: a Prometheus rules file and a PrometheusRule
(prometheus-operator) manifest; ``manifests/monitoring/`` holds them rendered with the
mixin's default selector, and ``diag alert-rules --selector ...`` renders them for yours.

Thresholds and their sources:
- etcdNoLeader, ``etcd_server_has_leader == 0`` for 1m, critical: etcd mixin.
- etcdHighNumberOfLeaderChanges, >= 4 in 15m, warning: etcd mixin.
- etcdMembersDown (10m, critical) and etcdInsufficientMembers (3m, critical): etcd mixin.
- etcdHighFsyncDurations, WAL fsync P99 > 0.5s warning and > 1s critical for 10m: etcd
  mixin (etcd's FAQ asks for < 10ms on healthy disks; ``diag check`` warns there).
- etcdHighCommitDurations, backend commit P99 > 0.25s for 10m, warning: etcd mixin.
- etcdDatabaseQuotaLowSpace, DB size > 95% of the quota for 10m, critical: etcd mixin.

Invariant: the selector is substituted verbatim inside ``{...}`` of every etcd series;
the output is YAML that ``promtool check rules`` accepts (a test runs it).
"""

from __future__ import annotations

from string import Template

DEFAULT_SELECTOR = 'job=~".*etcd.*"'

RULES = Template('''groups:
  - name: etcd
    rules:
      # source: etcd mixin etcdNoLeader (has_leader == 0 for 1m, critical)
      - alert: etcdNoLeader
        expr: etcd_server_has_leader{$sel} == 0
        for: 1m
        labels:
          severity: critical
        annotations:
          summary: etcd cluster has no leader.
          description: >-
            etcd cluster "{{ $$labels.job }}": member {{ $$labels.instance }} has no leader.
      # source: etcd mixin etcdHighNumberOfLeaderChanges (>= 4 in 15m, warning)
      - alert: etcdHighNumberOfLeaderChanges
        expr: |
          increase(
            (
              max without (instance) (etcd_server_leader_changes_seen_total{$sel})
            or
              0 * absent(etcd_server_leader_changes_seen_total{$sel})
            )[15m:1m]
          ) >= 4
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: etcd cluster has high number of leader changes.
          description: >-
            etcd cluster "{{ $$labels.job }}": {{ $$value }} leader changes within the last
            15 minutes. Frequent elections may be a sign of insufficient resources, high
            network latency, or disruptions by other components and should be investigated.
      # source: etcd mixin etcdMembersDown (10m, critical)
      - alert: etcdMembersDown
        expr: |
          max without (endpoint) (
            sum without (instance) (up{$sel} == bool 0)
          or
            count without (To) (
              sum without (instance) (
                rate(etcd_network_peer_sent_failures_total{$sel}[120s])
              ) > 0.01
            )
          )
          > 0
        for: 10m
        labels:
          severity: critical
        annotations:
          summary: etcd cluster members are down.
          description: 'etcd cluster "{{ $$labels.job }}": members are down ({{ $$value }}).'
      # source: etcd mixin etcdInsufficientMembers (below quorum for 3m, critical)
      - alert: etcdInsufficientMembers
        expr: |
          sum(up{$sel} == bool 1) without (instance)
          < ((count(up{$sel}) without (instance) + 1) / 2)
        for: 3m
        labels:
          severity: critical
        annotations:
          summary: etcd cluster has insufficient number of members.
          description: 'etcd cluster "{{ $$labels.job }}": insufficient members ({{ $$value }}).'
      # source: etcd mixin etcdHighFsyncDurations (P99 > 0.5s for 10m, warning); etcd's
      # FAQ wants < 10ms on a healthy disk, which is `diag check`'s warning level
      - alert: etcdHighFsyncDurations
        expr: |
          histogram_quantile(0.99, sum by (job, instance, le) (
            rate(etcd_disk_wal_fsync_duration_seconds_bucket{$sel}[5m])
          ))
          > 0.5
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: etcd cluster 99th percentile fsync durations are too high.
          description: >-
            etcd cluster "{{ $$labels.job }}": 99th percentile fsync durations are
            {{ $$value | humanizeDuration }} on etcd instance {{ $$labels.instance }}.
      # source: etcd mixin etcdHighFsyncDurations (P99 > 1s for 10m, critical)
      - alert: etcdHighFsyncDurations
        expr: |
          histogram_quantile(0.99, sum by (job, instance, le) (
            rate(etcd_disk_wal_fsync_duration_seconds_bucket{$sel}[5m])
          ))
          > 1
        for: 10m
        labels:
          severity: critical
        annotations:
          summary: etcd cluster 99th percentile fsync durations are too high.
          description: >-
            etcd cluster "{{ $$labels.job }}": 99th percentile fsync durations are
            {{ $$value | humanizeDuration }} on etcd instance {{ $$labels.instance }}.
      # source: etcd mixin etcdHighCommitDurations (P99 > 0.25s for 10m, warning)
      - alert: etcdHighCommitDurations
        expr: |
          histogram_quantile(0.99, sum by (job, instance, le) (
            rate(etcd_disk_backend_commit_duration_seconds_bucket{$sel}[5m])
          ))
          > 0.25
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: etcd cluster 99th percentile commit durations are too high.
          description: >-
            etcd cluster "{{ $$labels.job }}": 99th percentile commit durations
            {{ $$value | humanizeDuration }} on etcd instance {{ $$labels.instance }}.
      # source: etcd mixin etcdDatabaseQuotaLowSpace (> 95% of quota for 10m, critical)
      - alert: etcdDatabaseQuotaLowSpace
        expr: |
          (
            last_over_time(etcd_mvcc_db_total_size_in_bytes{$sel}[5m])
          /
            last_over_time(etcd_server_quota_backend_bytes{$sel}[5m])
          ) * 100 > 95
        for: 10m
        labels:
          severity: critical
        annotations:
          summary: etcd cluster database is running full.
          description: >-
            etcd cluster "{{ $$labels.job }}": database size exceeds the defined quota on
            etcd instance {{ $$labels.instance }}, please defrag or increase the quota as the
            writes to etcd will be disabled when it is full.
''')

HEADER = (
    "# Generated by `diag alert-rules{args}`. Alerts and thresholds follow etcd's mixin\n"
    "# (etcd-io/etcd contrib/mixin/alerts/alerts.libsonnet); each rule names its source.\n"
)


def render_rules(selector: str = DEFAULT_SELECTOR) -> str:
    """A Prometheus rules file."""
    return HEADER.format(args=_args(selector)) + RULES.substitute(sel=selector)


def render_prometheusrule(selector: str = DEFAULT_SELECTOR, name: str = "etcd-alerts",
                          namespace: str = "monitoring") -> str:
    """The same groups as a prometheus-operator PrometheusRule."""
    body = RULES.substitute(sel=selector)
    indented = "".join(f"  {line}" if line.strip() else line
                       for line in body.splitlines(keepends=True))
    return (
        HEADER.format(args=_args(selector, " --kind prometheusrule"))
        + "apiVersion: monitoring.coreos.com/v1\n"
        + "kind: PrometheusRule\n"
        + "metadata:\n"
        + f"  name: {name}\n"
        + f"  namespace: {namespace}\n"
        + "  labels:\n"
        + "    app.kubernetes.io/part-of: raftkv\n"
        + "spec:\n"
        + indented
    )


def _args(selector: str, extra: str = "") -> str:
    sel = "" if selector == DEFAULT_SELECTOR else f" --selector '{selector}'"
    return f"{extra}{sel}"
