#!/usr/bin/env bash
# Start or stop the kind setup's private dockerd, inside network namespace $KIND_NETNS.
#
#   dockerd.sh start   create the netns (no default route), start dockerd in it, wait until
#                      it answers; print its pid. Already running: print the pid, do nothing.
#   dockerd.sh stop    stop dockerd by the pid in its pidfile (TERM, then KILL after 30 s),
#                      then delete the netns.
#   dockerd.sh status  exit 0 when it answers.
#
# Invariants: dockerd joins only the network namespace (nsenter --net; `ip netns exec`
# would also remount /sys and hide the host's cgroup v1 mounts from it); its socket,
# pidfile, exec root and data root are private to this setup (data root under $KIND_CACHE,
# so the images persist between runs); the default runtime is files/runc-wrapper.
source "$(dirname "$0")/lib.sh"
DATA_ROOT="$KIND_CACHE/docker"
LOG="$KIND_CACHE/dockerd.log"

pid_alive() { [[ -f $KIND_DOCKER_PID ]] && kill -0 "$(cat "$KIND_DOCKER_PID")" 2>/dev/null; }

start() {
    lock dockerd
    if ! ip netns list | grep -qx "$KIND_NETNS\( .*\)\?"; then ip netns add "$KIND_NETNS"; fi
    ip -n "$KIND_NETNS" link set lo up
    if pid_alive && docker_up; then echo "$(cat "$KIND_DOCKER_PID")"; return 0; fi
    if pid_alive; then say "dockerd pid $(cat "$KIND_DOCKER_PID") runs but does not answer"; return 1; fi
    install -m 0755 "$KIND_SCRIPTS/files/runc-wrapper" "$KIND_BIN/runc-raftkv"
    mkdir -p "$DATA_ROOT"
    rm -f "$KIND_DOCKER_SOCK" "$KIND_DOCKER_PID"
    # setsid: dockerd outlives this script (the caller stops it with `dockerd.sh stop`);
    # the subshell first closes our lock fds so dockerd does not hold the locks forever
    (
        for fd in "${LOCK_FDS[@]}"; do eval "exec $fd>&-"; done
        exec setsid nsenter --net="/run/netns/$KIND_NETNS" -- dockerd \
            --data-root "$DATA_ROOT" --exec-root "$KIND_DOCKER_EXEC" \
            -H "unix://$KIND_DOCKER_SOCK" --pidfile "$KIND_DOCKER_PID" \
            --storage-driver overlay2 \
            --add-runtime "raftkv=$KIND_BIN/runc-raftkv" --default-runtime raftkv \
            >"$LOG" 2>&1 </dev/null
    ) &
    local launcher=$!
    local deadline=$((SECONDS + 60))
    until docker_up; do
        if ! kill -0 "$launcher" 2>/dev/null; then
            say "dockerd exited during startup; log tail:"; tail -20 "$LOG" >&2; return 1
        fi
        ((SECONDS < deadline)) || { say "dockerd did not answer in 60 s"; tail -20 "$LOG" >&2; return 1; }
        sleep 0.2
    done
    if ip -n "$KIND_NETNS" route | grep -q '^default'; then
        say "netns $KIND_NETNS has a default route: refusing to run a cluster in it"; return 1
    fi
    echo "$(cat "$KIND_DOCKER_PID")"
}

stop() {
    lock dockerd
    if [[ -f $KIND_DOCKER_PID ]]; then
        local pid
        pid=$(cat "$KIND_DOCKER_PID")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            local deadline=$((SECONDS + 30))
            while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
            if kill -0 "$pid" 2>/dev/null; then say "dockerd $pid ignored TERM; KILL"; kill -KILL "$pid"; fi
        fi
        rm -f "$KIND_DOCKER_PID"
    fi
    if ip netns list | grep -qx "$KIND_NETNS\( .*\)\?"; then ip netns del "$KIND_NETNS"; fi
}

case "${1:-}" in
    start) stage dockerd-start start ;;
    stop) stage dockerd-stop stop ;;
    status) docker_up ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
