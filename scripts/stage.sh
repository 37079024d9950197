#!/usr/bin/env bash
# Run one stage of `make test` and print how long it took, so the CI budget stays
# visible: "== stage NAME: N s (ok|failed)". The stage's exit code is passed through.
set -uo pipefail
name="$1"; shift
start=$(date +%s)
echo "== stage $name: start $(date -u +%H:%M:%S)" >&2
"$@"
rc=$?
verdict=ok; [ "$rc" -eq 0 ] || verdict="failed (exit $rc)"
echo "== stage $name: $(( $(date +%s) - start )) s $verdict" >&2
exit "$rc"
