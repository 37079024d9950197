#!/usr/bin/env bash
# make test's pytest stage as two lanes run side by side, each a pytest process of its own:
#   k8s:  the Kubernetes tests (kube-apiserver on both stores, kind, the operator envtest),
#         which mostly wait on kube-apiserver, the kubelet and the watch cache's
#         consistency checker's fixed 5-minute period;
#         and, to even out the two lanes' times (the k8s lane's own tests end about 7 min
#         before the core lane's), the Paxos simulation, the fuzz comparison and the demos;
#   core: everything else.
# Each lane has its own --basetemp, and so its own files; the k8s lane's output is kept
# in a log printed, in full, when both lanes are done (and the files kept if one failed). Exit code: 0 only if both passed.
# Usage: pytest-lanes.sh PYTEST [ARGS...]; LANES=serial runs the two one after the other.
set -uo pipefail
pytest="$1"; shift
K8S_PATHS=(tests/e2e/apiserver tests/e2e/kind tests/operator tests/paxos tests/fuzz tests/e2e/demo)
IGNORE=(); for p in "${K8S_PATHS[@]}"; do IGNORE+=("--ignore=$p"); done
tmp="${TMPDIR:-/tmp}/raftkv-lanes-$$"
mkdir -p "$tmp"
k8s_log="$tmp/k8s.log"

run_k8s() {
    "$pytest" -m "not isolated" --basetemp="$tmp/k8s" "$@" "${K8S_PATHS[@]}"
}
run_core() {
    "$pytest" -m "not isolated" --basetemp="$tmp/core" "${IGNORE[@]}" "$@" tests
}

if [ "${LANES:-parallel}" = serial ]; then
    run_k8s "$@"; k8s_rc=$?
    run_core "$@"; core_rc=$?
else
    start=$(date +%s)
    run_k8s "$@" >"$k8s_log" 2>&1 &
    k8s_pid=$!
    trap 'kill -TERM "$k8s_pid" 2>/dev/null; wait "$k8s_pid"' INT TERM
    run_core "$@"; core_rc=$?
    echo "== lane core: $(( $(date +%s) - start )) s (exit $core_rc); waiting for lane k8s" >&2
    wait "$k8s_pid"; k8s_rc=$?
    trap - INT TERM
    echo "== lane k8s: $(( $(date +%s) - start )) s (exit $k8s_rc); its output:" >&2
    cat "$k8s_log"
fi
echo "== lanes: core exit $core_rc, k8s exit $k8s_rc" >&2
if [ "$core_rc" -eq 0 ] && [ "$k8s_rc" -eq 0 ]; then rm -rf "$tmp"; else echo "== lanes: test files kept in $tmp" >&2; fi
[ "$core_rc" -eq 0 ] && [ "$k8s_rc" -eq 0 ]
