"""Which TLS mode a RaftCluster's members really run, and what to say when it is not the spec's.

RaftClusters created before ``spec.tls`` existed are read back by the API server with the
CRD's default, ``mode: Auto``, although their members serve plain text. Acting on that
default would change every member's peer and client URLs at once (a cluster whose members
cannot reach each other). So the operator records, in ``status.tls.mode``, the mode the
members were bootstrapped with, and trusts that record over the spec (pure: no I/O).

Rules of :func:`decide`, in order:
- a recorded mode (``status.tls.mode``) is the mode: the members run it;
- no record, and some member pod serves its clients over plain http while the spec asks
  for TLS: the cluster predates ``spec.tls``; it stays on plain text (``Disabled``) and is
  flagged ``legacy``, which the status reports as condition ``TLS`` False, reason
  :data:`LEGACY_REASON`, with how to opt in;
- otherwise (a new cluster, or pods that already serve https) the spec's mode.

Invariants:
- the decided mode never changes the URL scheme of a member pod that exists;
- a cluster recorded ``Disabled`` while its spec asks for TLS stays ``legacy`` on every
  later reconcile (the record outlives the pods' evidence: new pods are plain text too).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from raftkv.operator.tls import TLSMode

LEGACY_REASON = "PlainTextBeforeTLS"


@dataclass(frozen=True)
class ModeDecision:
    mode: TLSMode
    legacy: bool = False  # the spec asks for TLS; the members run plain text from before

    def message(self, spec_mode: TLSMode, cluster: str) -> str:
        if not self.legacy:
            return f"The members run spec.tls.mode {spec_mode.value}."
        return (f"The members of {cluster} were created before spec.tls existed and serve "
                f"plain text; spec.tls.mode reads {spec_mode.value} (the default), but the "
                "operator keeps them on plain text (status.tls.mode Disabled) rather than "
                "change every member's URL at once. To run with TLS, create a new "
                "RaftCluster (TLS is on by default) and copy the data into it (e.g. "
                "etcdctl make-mirror with --dest-cacert/--dest-cert/--dest-key).")


def recorded_mode(status_tls: object) -> TLSMode | None:
    """``status.tls.mode`` as a mode; None when absent or not one of the modes."""
    if not isinstance(status_tls, dict):
        return None
    try:
        return TLSMode(status_tls.get("mode"))
    except ValueError:
        return None


def decide(spec_mode: TLSMode, recorded: TLSMode | None,
           pod_schemes: Iterable[str | None]) -> ModeDecision:
    """The mode to run (see the module's rules); ``pod_schemes`` are the existing member
    pods' client URL schemes (None: not known from the pod)."""
    enabled = spec_mode is not TLSMode.DISABLED
    if recorded is not None:
        return ModeDecision(recorded, legacy=enabled and recorded is TLSMode.DISABLED)
    if enabled and "http" in set(pod_schemes):
        return ModeDecision(TLSMode.DISABLED, legacy=True)
    return ModeDecision(spec_mode)


def client_scheme(argv: Iterable[str]) -> str | None:
    """The scheme of ``--listen-client-urls`` on a member's command line, if given."""
    for arg in argv:
        if arg.startswith("--listen-client-urls="):
            scheme, sep, _ = arg.partition("=")[2].partition("://")
            return scheme if sep else None
    return None
