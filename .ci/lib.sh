# shellcheck shell=bash
# Shared helpers for the .ci scripts (sourced, not executed).
# Conventions: timings and messages go to stderr; daemons started by these
# scripts log to files under $CI_STATE and never hold our stdout/stderr.

CI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$CI_DIR/.." && pwd)
CI_STATE=${DOCKERSPAWNER_CI_STATE:-$CI_DIR/state}
CI_CACHE=${DOCKERSPAWNER_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dockerspawner-ci}
DEFAULT_DOCKER_SOCK=/var/run/docker.sock

_ci_t0=${_ci_t0:-$(date +%s.%N)}
# ci_log TAG MESSAGE...   -> "[TAG  12.34s] message" on stderr (time since script start)
ci_log() {
    local tag=$1; shift
    awk -v a="$_ci_t0" -v b="$(date +%s.%N)" -v t="$tag" -v m="$*" \
        'BEGIN { printf "[%s %6.2fs] %s\n", t, b - a, m }' >&2
}
# ci_since T0 -> seconds elapsed since T0 (date +%s.%N), 2 decimals
ci_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }

ci_is_root() { [ "$(id -u)" = 0 ]; }

# ci_record_started NAME PID: remember a daemon we started, so that whoever
# asked for it (.ci/run, via DOCKERSPAWNER_CI_STARTED) can stop exactly it.
ci_record_started() {
    local name=$1 pid=$2
    mkdir -p "$CI_STATE"
    echo "$pid" >"$CI_STATE/$name.pid"
    if [ -n "${DOCKERSPAWNER_CI_STARTED:-}" ]; then
        echo "$name $pid" >>"$DOCKERSPAWNER_CI_STARTED"
    fi
}

# ci_start_daemon NAME LOGFILE CMD...: start CMD detached (own session, stdin
# from /dev/null, stdout+stderr appended to LOGFILE); sets CI_DAEMON_PID.
# Note: in a non-interactive shell the background subshell is not a process
# group leader, so setsid execs in place and $! is the daemon's own PID.
ci_start_daemon() {
    local name=$1 log=$2; shift 2
    mkdir -p "$(dirname "$log")"
    printf '=== %s: starting %s\n' "$(date '+%F %T')" "$*" >>"$log"
    (
        # the daemon must hold none of our file descriptors: not the set-up
        # lock, not a pipe of whoever runs us (CI waits for those to close)
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            case $fd in 0|1|2|255) ;; *) eval "exec $fd>&-" 2>/dev/null || true ;; esac
        done
        exec setsid "$@"
    ) >>"$log" 2>&1 </dev/null &
    CI_DAEMON_PID=$!
    ci_record_started "$name" "$CI_DAEMON_PID"
}

# ci_wait_until TIMEOUT_S PID LOG CHECK...: poll CHECK (a command) every 0.1s
# until it succeeds; fail (returning 1, log tail on stderr) if PID dies or
# TIMEOUT_S passes.
ci_wait_until() {
    local timeout_s=$1 pid=$2 log=$3; shift 3
    local deadline=$(( $(date +%s) + timeout_s ))
    until "$@"; do
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            echo "process $pid exited; last lines of $log:" >&2
            tail -n 30 "$log" >&2 || true
            return 1
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "timeout after ${timeout_s}s; last lines of $log:" >&2
            tail -n 30 "$log" >&2 || true
            return 1
        fi
        sleep 0.1
    done
}

# ci_stop_pid NAME PID [GRACE_S]: SIGTERM, bounded wait, then SIGKILL. Only
# touches PID if its command line still contains NAME's program.
ci_stop_pid() {
    local name=$1 pid=$2 grace=${3:-30} prog
    case $name in
        dockerd) prog=dockerd ;;
        registry) prog=docker-registry ;;
        podman) prog=podman ;;
        *) prog=$name ;;
    esac
    kill -0 "$pid" 2>/dev/null || return 0
    if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$prog"; then
        echo "not stopping pid $pid: it is no longer $prog" >&2
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || return 0
    local deadline=$(( $(date +%s) + grace ))
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "$name (pid $pid) still alive after ${grace}s: SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    rm -f "$CI_STATE/$name.pid"
}

# ci_targets ARGS...: sets CI_TARGETS to (tests) unless an argument names a
# test path (or path::node id): then the arguments choose, and CI_TARGETS=().
ci_targets() {
    local a
    CI_TARGETS=(tests)
    for a in "$@"; do
        case $a in -*) continue ;; esac
        if [ -e "${a%%::*}" ]; then CI_TARGETS=(); return 0; fi
    done
}

# ---------------------------------------------------------------- set-up steps
# ci_step TAG NAME: one line as a step starts; ci_step_done TAG DETAIL: one
# line with the step's running time as it ends.
ci_step() { _ci_step_t0=$(date +%s.%N); _ci_step_name=$2; ci_log "$1" "$2 ..."; }
ci_step_done() { ci_log "$1" "$_ci_step_name: $2 ($(ci_since "$_ci_step_t0")s)"; }

# ci_run_logged TAG LOG CMD...: CMD with stdout+stderr to LOG (appended), a
# progress line every CI_PROGRESS_S (20) seconds with the log's last line; on
# failure the log's tail and path on stderr. Returns CMD's exit code.
ci_run_logged() {
    local tag=$1 log=$2 pid rc=0 n=0 last every=${CI_PROGRESS_S:-20}; shift 2
    mkdir -p "$(dirname "$log")"
    printf '=== %s: %s\n' "$(date '+%F %T')" "$*" >>"$log"
    "$@" >>"$log" 2>&1 </dev/null &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        n=$((n + 1))
        if [ $((n % every)) = 0 ] && kill -0 "$pid" 2>/dev/null; then
            last=$(tail -n 1 "$log" 2>/dev/null | tr -cd '[:print:]' | cut -c1-70)
            ci_log "$tag" "  ... ${n}s: $last"
        fi
    done
    wait "$pid" || rc=$?
    if [ "$rc" != 0 ]; then
        tail -n 20 "$log" >&2 || true
        ci_log "$tag" "FAILED (exit $rc): $* (full log: $log)"
    fi
    return "$rc"
}

# ci_engine_changes PURPOSE ORIGIN ALLOW: what set-up may change on the
# Docker engine, as words (swarm: `docker swarm init`; singleuser-image and
# busybox-image: build and tag those images). A pure function, table-tested
# in tests/hub/test_demo.py.
#   PURPOSE test (the test suite needs all of it) | demo (a single-user image
#           at most; a demo never needs a swarm)
#   ORIGIN  ours (set-up started it) | theirs (it was already running) |
#           custom (DOCKER_HOST named by the user) | none (nothing answers)
#   ALLOW   1 when asked to change an engine set-up did not start
#           (DOCKERSPAWNER_CHANGE_ENGINE=1, `make demo CHANGE_ENGINE=1`)
ci_engine_changes() {
    local purpose=$1 origin=$2 allow=${3:-0}
    case $purpose:$origin in
        test:none|demo:none) echo "" ;;
        test:custom) echo "singleuser-image busybox-image" ;;
        test:ours|test:theirs) echo "swarm singleuser-image busybox-image" ;;
        demo:ours) echo "singleuser-image" ;;
        demo:theirs|demo:custom) if [ "$allow" = 1 ]; then echo "singleuser-image"; else echo ""; fi ;;
        *) echo "ci_engine_changes: bad purpose '$purpose' or origin '$origin'" >&2; return 2 ;;
    esac
}

# ci_apt_packages NEED...: the Debian packages for what set-up needs (before
# checking what is installed): dockerd (no engine answers, or no docker CLI),
# image-build (the single-user image is built), test-extras. The python and
# proxy phases need none (set-up adds python3-venv when ensurepip is missing,
# nodejs npm when npm is missing). A machine whose engine answers gets no
# docker.io (it may run docker-ce or Docker Desktop).
ci_apt_packages() {
    local p out=()
    for p in $(printf '%s\n' "$@" | sort -u); do
        case $p in
            dockerd) out+=(docker.io iptables cgroupfs-mount) ;;
            image-build) out+=(debootstrap ca-certificates) ;;
            # curl: set-up's own probe of the registry
            test-extras) out+=(iproute2 busybox-static docker-registry chromium chromium-driver curl) ;;
        esac
    done
    echo "${out[*]}"
}

# ci_demo_banner URL: how to open the demo, here and from another machine
# (the hub listens on the loopback interface only).
ci_demo_banner() {
    local url=$1 hostport port host
    hostport=${url#*://}; hostport=${hostport%%/*}
    port=${hostport##*:}; host=${hostport%:*}
    echo "open $url in a browser on this machine; log in with any name and password"
    echo "it listens on $host only; from another machine: ssh -L $port:$host:$port $(hostname -f 2>/dev/null || hostname)"
    echo "  then open $url there. Ctrl-C stops the hub and its servers."
}
