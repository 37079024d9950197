"""tests/operator/test_crd.py's CRD tests, run here on both stores (etcd 3.6.16, raftkv).

The test functions and their ``k8s`` fixture are imported unchanged; this package's
``control_plane`` fixture (parametrized over the stores) replaces the operator tests' one.
"""

from __future__ import annotations

import pytest

from tests.operator.test_crd import (  # noqa: F401 - collected here, on each store
    k8s,
    test_controller_manager_finishes_namespace_deletion,
    test_crd_is_established_with_short_name,
    test_election_timeout_must_be_five_heartbeats,
    test_even_or_out_of_range_refused_with_our_message,
    test_kubectl_scale_to_even_refused_and_odd_allowed,
    test_other_odd_counts_accepted,
    test_replicas_default_to_three,
    test_status_condition_type_is_checked,
    test_status_written_through_subresource_and_printer_columns,
    test_three_replicas_accepted_and_defaults_filled,
)

pytestmark = pytest.mark.k8s
