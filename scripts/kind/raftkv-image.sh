#!/usr/bin/env bash
# The raftkv images raftkv:0.1.0 and raftkv:0.1.1 (registry-free; the repo's Dockerfile
# documents the same image for people with a registry).
#
# Layers:
#   base    Debian bookworm minbase + python3 (3.11) in a chroot, a venv /opt/raftkv with
#           the project's runtime dependencies (wheels fetched on the host from PyPI, then
#           installed with --no-index), user raftkv (uid 10001), /var/lib/raftkv, and
#           etcdctl 3.6.16 (scripts/build-etcd.sh). Keyed on the dependency list.
#   project raftkv's own wheel, installed --no-deps. Keyed on a hash of the tracked files'
#           current contents, so any source change rebuilds it (and only it).
# Two tags, built from the same source: the wheel is built from a temp copy whose
# pyproject version is rewritten to the tag, so importlib.metadata.version("raftkv") in
# the image reports the tag (a rolling upgrade is visible in members[].version).
# Invariants: builds happen in temp dirs; images carry label raftkv.key and are rebuilt
# only when it changes; a warm run hashes the tracked files and returns.
source "$(dirname "$0")/lib.sh"
TAGS=(${RAFTKV_IMAGE_TAGS:-0.1.0 0.1.1})
IMAGE_REPO=raftkv
ROOT="$KIND_CACHE/rootfs/python"
WORK=$(mktemp -d "$KIND_CACHE/.raftkv-image.XXXXXX")
trap 'mountpoint -q "$ROOT/proc" && umount "$ROOT/proc"; rm -rf "$WORK"' EXIT
# a Python 3.11+ with pip (builds the wheel, fetches the dependencies): the repo's venv if any
PY=${PYTHON:-$( [[ -x $REPO/.venv/bin/python ]] && echo "$REPO/.venv/bin/python" || echo python3)}

deps() {  # the runtime dependencies from pyproject.toml, one a line
    "$PY" -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' \
        "$REPO/pyproject.toml"
}
# tracked and not-ignored new files, by path (sorted: committing a file must not change it)
SRC_KEY=$(cd "$REPO" && git ls-files -z --cached --others --exclude-standard | sort -zu |
          xargs -0 sha256sum 2>/dev/null | sha256sum | cut -c1-16)

base() {
    need_docker
    have_image "$BASE_TAG" && return 0
    lock raftkv-base
    if [[ ! -f $ROOT/.done ]]; then
        derive_rootfs "$ROOT"
        chroot_apt "$ROOT" python3 python3-venv ca-certificates
        touch "$ROOT/.done"
    fi
    local R="$WORK/rootfs"
    cp -a "$ROOT" "$R"; rm -f "$R/.done"
    mkdir -p "$WORK/wheels"
    deps >"$WORK/requirements.txt"
    # host pip (the machine's CA and index settings), manylinux wheels for CPython 3.11
    "$PY" -m pip download -q --only-binary=:all: --python-version 3.11 --platform manylinux2014_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform any \
        -d "$WORK/wheels" -r "$WORK/requirements.txt"
    cp -r "$WORK/wheels" "$WORK/requirements.txt" "$R/tmp/"
    chroot "$R" python3 -m venv /opt/raftkv
    chroot "$R" env -u PIP_FIND_LINKS /opt/raftkv/bin/pip install -q --no-index --find-links /tmp/wheels \
        -r /tmp/requirements.txt
    rm -rf "$R/tmp/wheels" "$R/tmp/requirements.txt" "$R/root/.cache"
    install -m 0755 "$ETCD_BIN/etcdctl" "$R/usr/local/bin/etcdctl"
    chroot "$R" groupadd --gid 10001 raftkv
    chroot "$R" useradd --uid 10001 --gid 10001 --home-dir /var/lib/raftkv --no-create-home \
        --shell /usr/sbin/nologin raftkv
    install -d -o 10001 -g 10001 -m 0750 "$R/var/lib/raftkv"
    import_rootfs "$R" "$BASE_TAG" --change "LABEL raftkv.key=$DEPS_KEY"
    rm -rf "$R"
}

# the base layer's key: its recipe (this function's text and lib.sh's chroot helpers), the
# dependency list and etcdctl; editing the project-layer code below does not rebuild it
DEPS_KEY=$(input_key "$(declare -f base chroot_apt derive_rootfs)" "$(deps)" "$ETCD_BIN/etcdctl")
BASE_TAG="raftkv.local/raftkv-base:$DEPS_KEY"

wheel() {  # wheel VERSION -> $WORK/dist-VERSION/raftkv-VERSION-*.whl
    local v="$1" src="$WORK/src-$1"
    mkdir -p "$src"
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard |
        xargs -0 -I{} cp --parents {} "$src/" 2>/dev/null) || true
    "$PY" - "$src/pyproject.toml" "$v" <<'PYEOF'
import re, sys
p, v = sys.argv[1], sys.argv[2]
text = open(p).read()
new, n = re.subn(r'(?m)^version = "[^"]*"$', f'version = "{v}"', text, count=1)
if n != 1:
    sys.exit("raftkv-image: no version line in pyproject.toml")
open(p, "w").write(new)
PYEOF
    "$PY" -m pip wheel -q --no-deps -w "$WORK/dist-$v" "$src" >&2
}

project() {
    local tag="$1" key ctx="$WORK/ctx-$1"
    key=$(input_key "$DEPS_KEY" "$SRC_KEY" "$0" "$tag")
    image_current "$IMAGE_REPO:$tag" "$key" && return 0
    wheel "$tag"
    mkdir -p "$ctx"; cp "$WORK/dist-$tag"/raftkv-*.whl "$ctx/"
    cat >"$ctx/Dockerfile" <<DF
FROM $BASE_TAG
COPY raftkv-*.whl /tmp/
RUN /opt/raftkv/bin/pip install -q --no-index --no-deps /tmp/raftkv-*.whl && rm /tmp/raftkv-*.whl \\
 && /opt/raftkv/bin/python -c 'import importlib.metadata as m, sys; v = m.version("raftkv"); sys.exit(v != "$tag" and f"version {v} != $tag")'
ENV PATH=/opt/raftkv/bin:/usr/local/bin:/usr/bin:/bin PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/raftkv
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \\
  CMD ["/opt/raftkv/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('RAFTKV_LIVEZ_URL', 'http://127.0.0.1:2381/livez'), timeout=2)"]
LABEL raftkv.key=$key org.opencontainers.image.version=$tag
CMD ["raftkv", "--help"]
DF
    docker build -q -t "$IMAGE_REPO:$tag" "$ctx" >/dev/null
    say "built $IMAGE_REPO:$tag"
}

[[ -x $ETCD_BIN/etcdctl ]] || { say "run scripts/build-etcd.sh first"; exit 1; }
lock raftkv-image   # one builder at a time re-tags raftkv:<tag>
stage raftkv-image-base base
for t in "${TAGS[@]}"; do stage "raftkv-image-$t" project "$t"; done
# the previous project layers, now untagged (this dockerd holds only this setup's images)
docker image prune -f >/dev/null
