#!/usr/bin/env bash
# Build helm v3 from the Go module helm.sh/helm/v3 into
# ${RAFTKV_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/raftkv/helm/$VERSION}/bin/helm.
#
# Invariants: static (CGO_ENABLED=0); built into a temp dir and renamed into place, so bin/
# holds only a complete build; concurrent runs serialise on a lock and re-check; a warm
# cache (bin/.complete and bin/helm reports $VERSION) returns at once; ldflags stamp, as
# helm's Makefile does, the version (`helm version` reports the tag) and the Kubernetes
# version `helm template`/`helm lint` assume (1.<minor> of helm's client-go; without it
# they assume v1.20 and refuse charts with a newer kubeVersion).
set -euo pipefail

VERSION="${RAFTKV_HELM_VERSION:-v3.22.0}"
CACHE="${RAFTKV_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/raftkv/helm/$VERSION}"
BIN="$CACHE/bin"
say() { echo "build-helm: $*" >&2; }
cached() { [[ -f $BIN/.complete ]] && "$BIN/helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "$VERSION"; }

if cached; then say "cached: $BIN/helm ($VERSION)"; exit 0; fi
command -v go >/dev/null || { say "the Go toolchain is not on PATH"; exit 1; }
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
if cached; then say "cached: $BIN/helm ($VERSION)"; exit 0; fi
rm -rf "$CACHE"/build.*
WORK="$(mktemp -d "$CACHE/build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
start=$(date +%s)
LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$VERSION"
LDFLAGS+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
GOMOD=$(cd "$WORK" && go mod download -json "helm.sh/helm/v3@$VERSION" |
        sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
CLIENT_GO=$(awk '$1 == "k8s.io/client-go" {print $2}' "$GOMOD")   # v0.37.0 -> Kubernetes 1.37
[[ $CLIENT_GO =~ ^v0\.([0-9]+)\. ]] || { say "no k8s.io/client-go version in $GOMOD"; exit 1; }
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    LDFLAGS+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=${BASH_REMATCH[1]}"
done
say "building helm $VERSION"
GOBIN="$WORK/bin" CGO_ENABLED=0 go install -trimpath -ldflags "$LDFLAGS" \
    "helm.sh/helm/v3/cmd/helm@$VERSION"
"$WORK/bin/helm" version --template '{{.Version}}' | grep -qx "$VERSION" || {
    say "the built helm does not report $VERSION"; exit 1; }
touch "$WORK/bin/.complete"
if [[ -e "$BIN" ]]; then mv "$BIN" "$WORK/old-bin"; fi
mv "$WORK/bin" "$BIN"
echo "helm $VERSION built in $(( $(date +%s) - start ))s on $(nproc) cores" | tee "$CACHE/build-stats.txt" >&2
