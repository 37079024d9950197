#!/usr/bin/env bash
# Installs the Debian components the tests run: etcd 3.4.23 (server and etcdctl) for
# diag against an older etcd, Prometheus 2.42 and promtool. Idempotent; quiet when present.
set -euo pipefail
need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
[ -x /usr/bin/etcd ] || need+=(etcd-server)
[ -x /usr/bin/etcdctl ] || need+=(etcd-client)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# --no-install-recommends keeps the Debian etcd/prometheus services from pulling extras;
# policy-rc.d stops the packages from starting their system services.
printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
$SUDO chmod +x /usr/sbin/policy-rc.d
$SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
$SUDO rm -f /usr/sbin/policy-rc.d
