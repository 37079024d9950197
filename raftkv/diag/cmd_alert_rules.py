"""``diag alert-rules``: print etcd alerting rules for a job selector.

``--kind rules`` (default) prints a Prometheus rules file, ``--kind prometheusrule`` a
PrometheusRule manifest; see :mod:`raftkv.diag.alerts` for the thresholds' sources.
Invariant: output goes to stdout only and is exactly what manifests/monitoring/ holds
for the default selector.
"""

from __future__ import annotations

from typing import Annotated

import typer

from raftkv.diag.alerts import DEFAULT_SELECTOR, render_prometheusrule, render_rules
from raftkv.diag.common import app


@app.command("alert-rules")
def alert_rules(
    selector: Annotated[str, typer.Option(help="PromQL selector for etcd's series")] =
    DEFAULT_SELECTOR,
    kind: Annotated[str, typer.Option(help="rules or prometheusrule")] = "rules",
    name: Annotated[str, typer.Option(help="PrometheusRule name")] = "etcd-alerts",
    namespace: Annotated[str, typer.Option(help="PrometheusRule namespace")] = "monitoring",
) -> None:
    """Print etcd alerting rules (the etcd mixin's, with sources) for a job selector."""
    if kind == "rules":
        print(render_rules(selector), end="")
    elif kind == "prometheusrule":
        print(render_prometheusrule(selector, name, namespace), end="")
    else:
        raise typer.BadParameter(f"--kind must be rules or prometheusrule, not {kind!r}")
