#!/usr/bin/env bash
# A venv of its own for python-etcd3 (PyPI `etcd3`), which imports only with the
# pure-Python protobuf runtime (its generated code predates protobuf 4), so it cannot live
# in the project's venv. tests/client/test_python_etcd3.py runs its script with this venv's
# python and PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python.
#
# Invariants:
# - the venv is ${RAFTKV_ETCD3_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/raftkv/python-etcd3-0.12.0};
#   .complete is written last, so a venv without it (an interrupted build) is rebuilt;
# - a warm venv (.complete present) returns at once; concurrent runs serialise on a lock;
# - versions are pinned; prints the venv's path on stdout.
set -euo pipefail

PYTHON="${PYTHON:-python3.11}"
VENV="${RAFTKV_ETCD3_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/raftkv/python-etcd3-0.12.0}"
PINS=(etcd3==0.12.0 protobuf==7.36.2 grpcio==1.85.3 tenacity==9.2.1 six==1.17.0)

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
if [[ ! -e "$VENV/.complete" ]]; then
    rm -rf "$VENV"  # a venv's scripts name its path, so it is built where it lives
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PINS[@]}"
    PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python "$VENV/bin/python" -c "import etcd3"
    touch "$VENV/.complete"
fi
echo "$VENV"
