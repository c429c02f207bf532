#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions called from traps look unreachable to shellcheck
# scripts/test.sh — THE one command that runs Klaxon's whole test suite.
#
#   scripts/test.sh [CARGO TEST ARGS...]   provision, start a private Docker engine and a
#                                          private PostgreSQL, build the offline test images,
#                                          run `cargo test --workspace --locked ARGS...`,
#                                          stop everything, exit with cargo's exit code.
#                                          e.g. scripts/test.sh -p klaxon-core store
#                                          (with -p/--package, --workspace is left out so that
#                                          cargo honours the package selection).
#   scripts/test.sh --env-only             provision and start engine + database, print
#                                          `export ...` lines and PIDs on stdout, leave both
#                                          running and exit. Use it like this:
#                                            eval "$(scripts/test.sh --env-only)"
#                                            cargo test -p klaxon-core some_test
#                                            scripts/test-env-stop.sh
#                                          The same exports are kept in the state file
#                                          (default /tmp/klaxon-test-env), so another shell can
#                                          `source /tmp/klaxon-test-env`.
#   scripts/test.sh --stop                 stop what --env-only / KLAXON_TEST_KEEP=1 left
#                                          running (scripts/test-env-stop.sh calls this).
#
# Environment knobs:
#   KLAXON_TEST_KEEP=1         after the tests, leave engine and database running, print the
#                              exports and write the state file (stop with test-env-stop.sh).
#   KLAXON_TEST_DIR=/tmp/kt    use this (new or empty, short: unix sockets need < 108 chars)
#                              directory instead of a fresh /tmp/klaxon-test.XXXX.
#   KLAXON_TEST_STATE=FILE     state file for --env-only / KEEP (default /tmp/klaxon-test-env).
#   KLAXON_TEST_PG_PORT=N      first TCP port to try for PostgreSQL (default 55432).
#   KLAXON_TEST_EXTERNAL_DOCKER=unix:///run/user/1000/docker.sock
#                              use an engine you already run (e.g. rootless) instead of
#                              starting a private dockerd; images are built in it, the engine
#                              itself is never stopped.
#
# What the tests get (exported):
#   KLAXON_TEST_DOCKER_HOST=unix://$DIR/docker.sock
#   KLAXON_TEST_PG_URL=postgres://postgres@127.0.0.1:$PORT/postgres
#   KLAXON_TEST_IMAGE_PREFIX=klaxon-test/app      (tags v1, v2, and v3 = unhealthy release)
#   KLAXON_TEST_SWARM_HOST=unix://$DIR/docker.sock (the same engine, a single-node swarm)
#   KLAXON_TEST_DOCKER_HOST2=tcp://127.0.0.1:$PORT  a SECOND private engine (several engines,
#                              issue 16), over TCP with TLS (--tlsverify); the same test images
#   KLAXON_TEST_DOCKER_TLS_DIR=$DIR/tls            its client's ca.pem, cert.pem, key.pem (the CA,
#                              server and client certificates are made here with openssl)
#   (the second engine also listens on unix://$DIR/e2/docker.sock, for the docker CLI)
#
# The private dockerd runs with --bridge=none --iptables=false --ip-forward=false: it creates
# no docker0 and no 172.17.x addresses. Run test containers with `--network none` or
# `--network host`. Nothing here contacts anything but 127.0.0.1 and unix sockets (apart
# from apt-get when provisioning as root).
#
# Runs on Debian 12 as root (CI: provisions docker.io, busybox-static, postgresql and chromium with
# apt-get when missing) and on a developer machine as a normal user (then the packages must
# be installed already, and dockerd is started through `sudo -n`, or use
# KLAXON_TEST_EXTERNAL_DOCKER).
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT_DIR"

IMAGE_PREFIX=klaxon-test/app
BASE_IMAGE=klaxon-test/base:latest
APPLETS=(sh echo sleep cat httpd wget touch rm test ls date printf seq yes head true false env grep kill mkdir)
STATE_FILE=${KLAXON_TEST_STATE:-/tmp/klaxon-test-env}
PG_PORT_START=${KLAXON_TEST_PG_PORT:-55432}
BUSYBOX=/bin/busybox

log() { printf '[test.sh] %s\n' "$*" >&2; }
die() { printf '[test.sh] error: %s\n' "$*" >&2; exit 1; }
now_ms() { local t=${EPOCHREALTIME//[.,]/}; echo $((t / 1000)); }
secs_since() { local d=$(($(now_ms) - $1)); printf '%d.%01ds' $((d / 1000)) $((d % 1000 / 100)); }

MODE="test"
case "${1:-}" in
    --env-only) MODE="env"; shift ;;
    --stop) MODE="stop"; shift ;;
    -h | --help) sed -n '3,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
if [ "$MODE" != test ] && [ $# -gt 0 ]; then
    die "unexpected arguments: $*"
fi

if [ "$(id -u)" -eq 0 ]; then IS_ROOT=1; else IS_ROOT=0; fi
# Run a command as root (directly when we are root, else through non-interactive sudo).
asroot() {
    if [ "$IS_ROOT" = 1 ]; then "$@"; else sudo -n -- "$@"; fi
}

# ---------------------------------------------------------------------------------------
# State shared by setup and teardown. Everything that teardown touches is recorded here,
# so that it never touches an engine, database or directory that this script did not make.
DIR=""                 # our temp dir
OWN_DIR=0              # 1 if we created DIR (then teardown removes it, else only empties it)
DOCKER_MODE=private    # private | external
DOCKER_URL=""          # unix://.../docker.sock
DOCKERD_PID=""         # pid of the private dockerd (from its pidfile)
DOCKERD_LAUNCH_PID=""  # our direct child (dockerd itself, or sudo when not root)
PG_BIN=""              # /usr/lib/postgresql/N/bin
PG_ROOT=""             # $DIR/pg (socket dir, logs); PG_ROOT/data is the cluster
PG_PORT=""
PG_PID=""
CONTAINERD_PIDS=""     # pids of the containerd our dockerd ran (see stop_dockerd)
RUN_CONTAINERD_OURS=0  # 1 if /run/containerd did not exist before our engine started
SWARM_URL=""           # the engine that is a swarm manager (KLAXON_TEST_SWARM_HOST)
DOCKER2_URL=""         # tcp://127.0.0.1:PORT of the second (TLS) engine
DOCKERD2_PID=""        # its pid (from $DIR/e2/docker.pid)
READY=0                # 1 once everything is up (KEEP only keeps a complete environment)
KEEP_ON_EXIT=0

# Is the process alive (and not a zombie waiting to be reaped)?
proc_alive() {
    local pid=$1 stat state
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    read -r stat 2>/dev/null <"/proc/$pid/stat" || return 1
    state=${stat##*) }
    state=${state%% *}
    [ "$state" != Z ] && [ "$state" != X ]
}
proc_cmdline() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" || true; }

# PIDs (not ours) whose command line mentions $1, plus all their descendants.
pids_under_dir() {
    local needle=$1 p line rest cmd
    local -A parent_of=()
    local -a roots=() result=()
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [ "$p" = "$$" ] && continue
        read -r line 2>/dev/null <"/proc/$p/stat" || continue
        rest=${line##*) }
        # shellcheck disable=SC2086
        set -- $rest
        parent_of[$p]=$2
        cmd=$(proc_cmdline "$p")
        case $cmd in *"$needle"*) roots+=("$p") ;; esac
    done
    local -A seen=()
    local changed=1 q
    for p in "${roots[@]}"; do seen[$p]=1; done
    while [ "$changed" = 1 ]; do
        changed=0
        for q in "${!parent_of[@]}"; do
            if [ -z "${seen[$q]:-}" ] && [ -n "${seen[${parent_of[$q]}]:-}" ]; then
                seen[$q]=1
                changed=1
            fi
        done
    done
    for p in "${!seen[@]}"; do
        [ "$p" = "$$" ] || [ "$p" = "${BASHPID:-}" ] || result+=("$p")
    done
    [ ${#result[@]} -eq 0 ] || printf '%s\n' "${result[@]}"
}

# Wait until pid is gone (reaping it if it is our child); returns 1 on timeout.
wait_gone() {
    local pid=$1 tenths=$(($2 * 10))
    while [ "$tenths" -gt 0 ] && proc_alive "$pid"; do
        sleep 0.1
        tenths=$((tenths - 1))
    done
    proc_alive "$pid" && return 1
    wait "$pid" 2>/dev/null || true
    return 0
}

pg_run() {
    # initdb/pg_ctl refuse to run as root: run them as the postgres OS user then.
    if [ "$IS_ROOT" = 1 ]; then
        (cd "$PG_ROOT" && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

stop_postgres() {
    [ -n "$PG_ROOT" ] && [ -n "$PG_BIN" ] || return 0
    local data=$PG_ROOT/data pid=""
    [ -f "$data/postmaster.pid" ] || return 0
    read -r pid <"$data/postmaster.pid" || true
    log "stopping postgres (pid ${pid:-?})..."
    if ! pg_run "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1; then
        if [ -n "$pid" ] && proc_alive "$pid" && [[ "$(proc_cmdline "$pid")" == *"$data"* ]]; then
            log "pg_ctl stop failed; killing postmaster $pid"
            asroot kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" 10 || true
        fi
    fi
}

# The second engine ($DIR/e2, TCP + TLS): its containers removed, then stopped by its pid.
stop_dockerd2() {
    [ -n "$DIR" ] || return 0
    local pid=$DOCKERD2_PID sock=unix://$DIR/e2/docker.sock ids
    if [ -z "$pid" ] && [ -f "$DIR/e2/docker.pid" ]; then pid=$(cat "$DIR/e2/docker.pid"); fi
    [ -n "$pid" ] && proc_alive "$pid" && [[ "$(proc_cmdline "$pid")" == *"$DIR/e2/"* ]] || return 0
    local p
    for p in $(pids_under_dir "$DIR/e2/exec/containerd/containerd.toml"); do
        [[ "$(proc_cmdline "$p")" == containerd\ * ]] && CONTAINERD_PIDS+=" $p"
    done
    ids=$(DOCKER_CONFIG=$DIR/docker-config timeout 30 docker -H "$sock" ps -aq 2>/dev/null || true)
    # shellcheck disable=SC2086
    [ -z "$ids" ] || DOCKER_CONFIG=$DIR/docker-config timeout 60 docker -H "$sock" rm -f $ids >/dev/null 2>&1 || true
    log "stopping the second private dockerd (pid $pid)..."
    asroot kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 30; then
        asroot kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || true
    fi
}

stop_dockerd() {
    [ "$DOCKER_MODE" = private ] && [ -n "$DIR" ] || return 0
    local pid=$DOCKERD_PID
    if [ -z "$pid" ] && [ -f "$DIR/docker.pid" ]; then pid=$(cat "$DIR/docker.pid"); fi
    if [ -n "$pid" ] && proc_alive "$pid" && [[ "$(proc_cmdline "$pid")" == *"$DIR/"* ]]; then
        # containerd may dump its goroutines to /tmp/containerd.PID.stacks.log when dockerd
        # shuts it down: note its pid so that teardown can remove that file.
        local p
        for p in $(pids_under_dir "$DIR/exec/containerd/containerd.toml"); do
            [[ "$(proc_cmdline "$p")" == containerd\ * ]] && CONTAINERD_PIDS+=" $p"
        done
        # Every container in this private engine is ours: remove them all first.
        local ids
        ids=$(DOCKER_CONFIG=$DIR/docker-config timeout 30 docker -H "$DOCKER_URL" ps -aq 2>/dev/null || true)
        if [ -n "$ids" ]; then
            log "removing $(echo "$ids" | wc -l) leftover container(s)..."
            # shellcheck disable=SC2086
            DOCKER_CONFIG=$DIR/docker-config timeout 60 docker -H "$DOCKER_URL" rm -f $ids >/dev/null 2>&1 || true
        fi
        log "stopping private dockerd (pid $pid)..."
        asroot kill -TERM "$pid" 2>/dev/null || true
        if ! wait_gone "$pid" 30; then
            log "dockerd did not stop in 30s; killing it"
            asroot kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" 10 || true
        fi
    fi
    if [ -n "$DOCKERD_LAUNCH_PID" ]; then
        wait_gone "$DOCKERD_LAUNCH_PID" 10 || true
    fi
}

# Kill leftovers (containerd, containerd-shim, container processes) that this engine started.
kill_leftovers() {
    [ -n "$DIR" ] || return 0
    local -a pids
    mapfile -t pids < <(pids_under_dir "$DIR/")
    if [ ${#pids[@]} -gt 0 ]; then
        log "killing leftover processes: ${pids[*]}"
        asroot kill -KILL "${pids[@]}" 2>/dev/null || true
        local p
        for p in "${pids[@]}"; do wait_gone "$p" 5 || true; done
    fi
}

unmount_under_dir() {
    [ -n "$DIR" ] || return 0
    local -a mnts
    mapfile -t mnts < <(awk -v d="$DIR/" 'index($5, d) == 1 { print length($5) " " $5 }' /proc/self/mountinfo | sort -rn | cut -d' ' -f2-)
    local m
    for m in "${mnts[@]}"; do
        asroot umount -R "$m" 2>/dev/null || asroot umount -l "$m" 2>/dev/null || log "could not unmount $m"
    done
}

remove_dir() {
    [ -n "$DIR" ] && [ -d "$DIR" ] || return 0
    if [ "$OWN_DIR" = 1 ]; then
        asroot rm -rf --one-file-system "$DIR" 2>/dev/null || rm -rf --one-file-system "$DIR" 2>/dev/null ||
            log "could not remove $DIR"
    else
        find "$DIR" -mindepth 1 -maxdepth 1 -exec sh -c 'for f; do rm -rf --one-file-system "$f" 2>/dev/null || sudo -n rm -rf --one-file-system "$f"; done' sh {} + ||
            log "could not empty $DIR"
    fi
}

teardown() {
    set +e
    stop_postgres
    stop_dockerd2
    stop_dockerd
    kill_leftovers
    unmount_under_dir
    remove_dir
    local p
    for p in $CONTAINERD_PIDS; do rm -f "/tmp/containerd.$p.stacks.log"; done
    if [ "$RUN_CONTAINERD_OURS" = 1 ]; then
        asroot rmdir /run/containerd/s /run/containerd 2>/dev/null # only if empty
    fi
    if [ -n "$DIR" ]; then
        if [ "$OWN_DIR" = 1 ]; then log "stopped; removed $DIR"; else log "stopped; emptied $DIR"; fi
    fi
}

on_exit() {
    local rc=$?
    set +e
    trap - EXIT INT TERM HUP ERR
    if [ "$KEEP_ON_EXIT" = 1 ] && [ "$READY" = 1 ]; then
        write_state
        print_exports
        log "left running (state in $STATE_FILE); stop with scripts/test-env-stop.sh"
    else
        [ "$READY" = 1 ] || [ -z "$DIR" ] || [ "$rc" = 0 ] || log "setup failed; cleaning up"
        teardown
    fi
    exit "$rc"
}

CARGO_PID=""
# cargo runs in its own process group (so that a signal to this script alone still stops
# it and its test binaries at once); pass the signal on, then exit (the EXIT trap cleans up).
on_signal() {
    local sig=$1 code=$2
    trap - ERR
    if [ -n "$CARGO_PID" ] && proc_alive "$CARGO_PID"; then
        log "SIG$sig: stopping cargo test"
        kill -"$sig" -- -"$CARGO_PID" 2>/dev/null || kill -"$sig" "$CARGO_PID" 2>/dev/null
        if ! wait_gone "$CARGO_PID" 20; then
            kill -KILL -- -"$CARGO_PID" 2>/dev/null
            wait_gone "$CARGO_PID" 5
        fi
    fi
    exit "$code"
}

exports_text() {
    cat <<EOF
export KLAXON_TEST_DOCKER_HOST='$DOCKER_URL'
export KLAXON_TEST_PG_URL='postgres://postgres@127.0.0.1:$PG_PORT/postgres'
export KLAXON_TEST_IMAGE_PREFIX='$IMAGE_PREFIX'
export KLAXON_TEST_SWARM_HOST='$SWARM_URL'
export KLAXON_TEST_DOCKER_HOST2='$DOCKER2_URL'
export KLAXON_TEST_DOCKER_TLS_DIR='${DOCKER2_URL:+$DIR/tls}'
export KLAXON_TEST_DOCKERD2_PID='$DOCKERD2_PID'
export KLAXON_TEST_ENV_DIR='$DIR'
export KLAXON_TEST_ENV_OWN_DIR='$OWN_DIR'
export KLAXON_TEST_ENV_DOCKER_MODE='$DOCKER_MODE'
export KLAXON_TEST_DOCKERD_PID='$DOCKERD_PID'
export KLAXON_TEST_PG_PID='$PG_PID'
export KLAXON_TEST_PG_BIN='$PG_BIN'
export KLAXON_TEST_PG_ROOT='$PG_ROOT'
export KLAXON_TEST_ENV_RUN_CONTAINERD_OURS='$RUN_CONTAINERD_OURS'
EOF
}
print_exports() { exports_text; }
write_state() {
    local tmp
    tmp=$(mktemp "$STATE_FILE.XXXXXX")
    {
        echo "# Klaxon test environment written by scripts/test.sh on $(date)."
        echo "# 'source' this file to run cargo test by hand; stop it with scripts/test-env-stop.sh."
        exports_text
    } >"$tmp"
    chmod 644 "$tmp"
    mv -f "$tmp" "$STATE_FILE"
}

# Read the state file without sourcing it (it lives in /tmp): only known keys are taken.
read_state() {
    [ -f "$STATE_FILE" ] || return 1
    [ "$(stat -c %u "$STATE_FILE")" = "$(id -u)" ] || die "$STATE_FILE is not owned by you; not using it"
    local line key val
    while IFS= read -r line; do
        [[ $line =~ ^export\ (KLAXON_[A-Z_]+)=\'([^\']*)\'$ ]] || continue
        key=${BASH_REMATCH[1]}
        val=${BASH_REMATCH[2]}
        case $key in
            KLAXON_TEST_DOCKER_HOST) DOCKER_URL=$val ;;
            KLAXON_TEST_ENV_DIR) DIR=$val ;;
            KLAXON_TEST_ENV_OWN_DIR) OWN_DIR=$val ;;
            KLAXON_TEST_ENV_DOCKER_MODE) DOCKER_MODE=$val ;;
            KLAXON_TEST_DOCKERD_PID) DOCKERD_PID=$val ;;
            KLAXON_TEST_DOCKERD2_PID) DOCKERD2_PID=$val ;;
            KLAXON_TEST_DOCKER_HOST2) DOCKER2_URL=$val ;;
            KLAXON_TEST_PG_PID) PG_PID=$val ;;
            KLAXON_TEST_PG_BIN) PG_BIN=$val ;;
            KLAXON_TEST_PG_ROOT) PG_ROOT=$val ;;
            KLAXON_TEST_ENV_RUN_CONTAINERD_OURS) RUN_CONTAINERD_OURS=$val ;;
        esac
    done <"$STATE_FILE"
    case $DIR in /?*) ;; *) die "$STATE_FILE has no usable KLAXON_TEST_ENV_DIR" ;; esac
    return 0
}

state_is_live() {
    (
        # shellcheck disable=SC2030
        DIR="" DOCKERD_PID="" PG_PID=""
        read_state 2>/dev/null || exit 1
        { [ -n "$DOCKERD_PID" ] && proc_alive "$DOCKERD_PID"; } || { [ -n "$PG_PID" ] && proc_alive "$PG_PID"; } ||
            { [ -n "$DOCKERD2_PID" ] && proc_alive "$DOCKERD2_PID"; }
    )
}

# ---------------------------------------------------------------------------------------
if [ "$MODE" = stop ]; then
    read_state || die "no state file $STATE_FILE: nothing to stop"
    # shellcheck disable=SC2031
    log "stopping the test environment in $DIR"
    teardown
    rm -f "$STATE_FILE"
    exit 0
fi

if [ "$MODE" = env ] || [ "${KLAXON_TEST_KEEP:-0}" = 1 ]; then
    if state_is_live; then
        die "a test environment from $STATE_FILE is still running; stop it with scripts/test-env-stop.sh (or set KLAXON_TEST_STATE)"
    fi
fi

# ---------------------------------------------------------------------------------------
# 1. Provisioning.
t_prov=$(now_ms)

find_pg_bin() {
    if [ -n "${KLAXON_TEST_PG_BIN:-}" ] && [ -x "$KLAXON_TEST_PG_BIN/postgres" ]; then
        echo "$KLAXON_TEST_PG_BIN"
        return 0
    fi
    local d
    d=$(for b in /usr/lib/postgresql/*/bin/postgres; do [ -x "$b" ] && dirname "$b"; done | sort -V | tail -n 1)
    [ -n "$d" ] && echo "$d"
}

busybox_ok() {
    [ -x "$BUSYBOX" ] || return 1
    if command -v dpkg-query >/dev/null 2>&1; then
        [ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null)" = "install ok installed" ]
    elif command -v readelf >/dev/null 2>&1; then
        if readelf -l "$BUSYBOX" 2>/dev/null | grep -q INTERP; then return 1; fi
    else
        command -v file >/dev/null 2>&1 && file -L "$BUSYBOX" | grep -q 'statically linked'
    fi
}

# dockerd lives in /usr/sbin, which is not on a normal user's PATH on Debian.
find_dockerd() {
    local d
    d=$(command -v dockerd 2>/dev/null) && { echo "$d"; return 0; }
    for d in /usr/sbin/dockerd /usr/local/sbin/dockerd /sbin/dockerd /usr/bin/dockerd /usr/local/bin/dockerd; do
        [ -x "$d" ] && { echo "$d"; return 0; }
    done
    return 1
}

missing_packages() {
    local -a m=()
    if [ -n "${KLAXON_TEST_EXTERNAL_DOCKER:-}" ]; then
        command -v docker >/dev/null 2>&1 || m+=(docker.io)
    else
        { find_dockerd >/dev/null && command -v docker >/dev/null 2>&1; } || m+=(docker.io)
    fi
    busybox_ok || m+=(busybox-static)
    find_pg_bin >/dev/null || m+=(postgresql)
    # promtool checks docs/monitoring/*.yml (tests/tests/monitoring.rs).
    command -v promtool >/dev/null 2>&1 || m+=(prometheus)
    # The status page is read by a real headless browser (tests/tests/status_page.rs).
    [ -x /usr/bin/chromium ] || m+=(chromium)
    echo "${m[*]}"
}

# Wait while another apt/dpkg (e.g. unattended upgrades, a parallel install) holds the locks.
wait_apt_locks() {
    command -v fuser >/dev/null 2>&1 || return 0
    local waited=0
    while fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock >/dev/null 2>&1; do
        [ "$waited" = 0 ] && log "waiting for another apt/dpkg process to finish..."
        [ "$waited" -ge 900 ] && die "apt/dpkg locks still held after 15 minutes"
        sleep 3
        waited=$((waited + 3))
    done
}
# apt-get with lock waiting; retries a few times when it failed because of a held lock.
apt_get() {
    local i rc out
    out=$(mktemp /tmp/klaxon-apt.XXXXXX)
    for i in 1 2 3 4 5 6 7 8 9 10; do
        wait_apt_locks
        set +e
        apt-get -o DPkg::Lock::Timeout=600 "$@" 2>&1 </dev/null | tee "$out" >&2
        rc=${PIPESTATUS[0]}
        set -e
        if [ "$rc" = 0 ]; then rm -f "$out"; return 0; fi
        if grep -qE 'Could not get lock|Unable to acquire|Unable to lock' "$out"; then
            log "apt lock busy, retrying ($i)..."
            sleep 10
        else
            break
        fi
    done
    rm -f "$out"
    return "$rc"
}

MISSING=$(missing_packages)
if [ -n "$MISSING" ]; then
    if [ "$IS_ROOT" = 1 ] && command -v apt-get >/dev/null 2>&1; then
        log "provisioning: installing $MISSING ..."
        export DEBIAN_FRONTEND=noninteractive
        wait_apt_locks
        MISSING=$(missing_packages) # another process may just have installed them
        if [ -n "$MISSING" ]; then
            # shellcheck disable=SC2086
            # Try with the package lists we have; `apt-get update` only when they are
            # missing or too old for what we need.
            if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null || ! apt_get install -y $MISSING; then
                log "apt-get update..."
                apt_get update || die "apt-get update failed"
                # shellcheck disable=SC2086
                apt_get install -y $MISSING || die "apt-get install -y $MISSING failed"
            fi
        fi
        MISSING=$(missing_packages)
        [ -z "$MISSING" ] || die "still missing after apt-get install: $MISSING"
        # postgresql's package may have started its own cluster (port 5432): we leave it
        # alone and run our own server.
    elif [ "$IS_ROOT" = 1 ]; then
        die "missing packages: $MISSING (no apt-get here: install Docker (dockerd + docker CLI), a static busybox at /bin/busybox, and a PostgreSQL server under /usr/lib/postgresql/*/bin)"
    else
        die "missing packages: $MISSING. Install them with:
    sudo apt-get install -y $MISSING
(or run this script as root, which installs them)"
    fi
fi
PG_BIN=$(find_pg_bin)
if [ "$IS_ROOT" = 1 ] && ! id postgres >/dev/null 2>&1; then
    die "the 'postgres' OS user does not exist (initdb refuses to run as root); install the postgresql package"
fi
if [ -n "${KLAXON_TEST_EXTERNAL_DOCKER:-}" ]; then
    DOCKER_MODE=external
elif [ "$IS_ROOT" = 0 ]; then
    if ! command -v sudo >/dev/null 2>&1 || ! sudo -n true 2>/dev/null; then
        die "a private dockerd needs root. Either run 'sudo -v' first (passwordless/cached sudo is used to start and stop dockerd), run this script as root, or set KLAXON_TEST_EXTERNAL_DOCKER=unix:///path/to/an/engine/you/own.sock"
    fi
fi
DOCKERD=$(find_dockerd || true)
log "provisioning ok ($(secs_since "$t_prov")): dockerd ${DOCKERD:--}, busybox $BUSYBOX, postgres $PG_BIN"
T_PROV=$(secs_since "$t_prov")

# ---------------------------------------------------------------------------------------
# 2. Temp dir (short: unix socket paths must stay < 108 chars).
trap on_exit EXIT
set -E
trap '[[ $- != *e* ]] || log "failed: line $LINENO: $BASH_COMMAND"' ERR
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM
trap 'on_signal HUP 129' HUP

if [ -n "${KLAXON_TEST_DIR:-}" ]; then
    if [ -e "$KLAXON_TEST_DIR" ]; then
        if [ ! -d "$KLAXON_TEST_DIR" ] || [ -n "$(ls -A "$KLAXON_TEST_DIR")" ]; then
            die "KLAXON_TEST_DIR=$KLAXON_TEST_DIR exists and is not an empty directory"
        fi
        DIR=$(cd "$KLAXON_TEST_DIR" && pwd -P)
    else
        mkdir -p "$KLAXON_TEST_DIR"
        DIR=$(cd "$KLAXON_TEST_DIR" && pwd -P)
        OWN_DIR=1
    fi
else
    DIR=$(mktemp -d /tmp/klaxon-test.XXXX)
    OWN_DIR=1
fi
[[ $DIR =~ ^/[A-Za-z0-9._/-]+$ ]] || { d=$DIR; DIR=""; die "unsupported characters in temp dir path: $d"; }
if [ $((${#DIR} + 40)) -ge 108 ]; then
    d=$DIR
    [ "$OWN_DIR" = 1 ] || DIR=""
    die "temp dir path too long for unix sockets ($d); use a shorter KLAXON_TEST_DIR"
fi
export DOCKER_CONFIG=$DIR/docker-config # keep the CLI away from ~/.docker (credential helpers)
mkdir -p "$DOCKER_CONFIG"

# ---------------------------------------------------------------------------------------
# 3. Docker engine.
export DOCKER_BUILDKIT=0
t_docker=$(now_ms)
if [ "$DOCKER_MODE" = external ]; then
    DOCKER_URL=$KLAXON_TEST_EXTERNAL_DOCKER
    log "using the existing engine at $DOCKER_URL"
    docker -H "$DOCKER_URL" version >/dev/null 2>&1 || die "cannot reach the engine at $DOCKER_URL"
else
    DOCKER_URL=unix://$DIR/docker.sock
    # Our own config file: a developer's /etc/docker/daemon.json must not apply.
    # dockerd < 23 writes a trust key to /etc/docker/key.json unless the config file moves it
    # ("deprecated-key-path" is a config-file-only setting there).
    dockerd_major=$("$DOCKERD" --version 2>/dev/null | sed -n 's/^Docker version \([0-9]*\)\..*/\1/p')
    if [ -n "$dockerd_major" ] && [ "$dockerd_major" -lt 23 ]; then
        printf '{ "deprecated-key-path": "%s" }\n' "$DIR/key.json" >"$DIR/daemon.json"
    else
        echo '{}' >"$DIR/daemon.json"
    fi
    dockerd_args=(
        --host "$DOCKER_URL"
        --data-root "$DIR/root"
        --exec-root "$DIR/exec"
        --pidfile "$DIR/docker.pid"
        --config-file "$DIR/daemon.json"
        --bridge=none --iptables=false --ip-forward=false
    )
    # containerd shims put their sockets in /run/containerd/s; tidy it if we made it.
    [ -e /run/containerd ] || RUN_CONTAINERD_OURS=1
    [ "$IS_ROOT" = 1 ] || dockerd_args+=(--group "$(id -gn)")
    log "starting private dockerd..."
    (
        trap - ERR
        asroot setsid -w "$DOCKERD" "${dockerd_args[@]}"
    ) </dev/null >"$DIR/dockerd.log" 2>&1 &
    DOCKERD_LAUNCH_PID=$!
    deadline=$(($(now_ms) + 60000))
    until docker -H "$DOCKER_URL" version >/dev/null 2>&1; do
        if ! proc_alive "$DOCKERD_LAUNCH_PID"; then
            tail -n 40 "$DIR/dockerd.log" >&2
            die "dockerd exited during startup (log above: $DIR/dockerd.log)"
        fi
        if [ "$(now_ms)" -ge "$deadline" ]; then
            tail -n 40 "$DIR/dockerd.log" >&2
            die "dockerd not ready after 60s (log above)"
        fi
        sleep 0.2
    done
    DOCKERD_PID=$(cat "$DIR/docker.pid") # no trailing newline: `read` would fail
    log "dockerd ready (pid $DOCKERD_PID, $(secs_since "$t_docker")): $DOCKER_URL"
fi
T_DOCKER=$(secs_since "$t_docker")
dk() { docker -H "$DOCKER_URL" "$@"; }
port_in_use_early() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------------------------------
# 4. Offline test images: a busybox root imported as klaxon-test/base, then app:v1..v3.
t_images=$(now_ms)
app_dockerfile() { # $1 = version, $2 = 1 for the broken release
    cat <<EOF
FROM $BASE_IMAGE
COPY VERSION /VERSION
# /app is where runbooks put the maintenance flag file (/app/MAINTENANCE).
COPY VERSION /app/VERSION
CMD ["sh","-c","while true; do echo \"\$(date) INFO app $1 ok\"; sleep 1; done"]
EOF
    [ "${2:-0}" = 1 ] && echo 'HEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD false'
    return 0
}
RECIPE=$( {
    printf '%s\n' "${APPLETS[@]}"
    sha256sum "$BUSYBOX" | cut -d' ' -f1
    app_dockerfile v1
    app_dockerfile v3 1
} | sha256sum | cut -c1-16)

images_current() {
    local v
    for v in v1 v2 v3; do
        [ "$(dk image inspect -f '{{index .Config.Labels "klaxon.test.recipe"}}' "$IMAGE_PREFIX:$v" 2>/dev/null)" = "$RECIPE" ] || return 1
    done
}

if images_current; then
    log "test images already present"
else
    log "building test images..."
    ib=$DIR/images
    mkdir -p "$ib/rootfs/bin" "$ib/rootfs/etc" "$ib/rootfs/tmp" "$ib/rootfs/proc" "$ib/rootfs/sys" "$ib/rootfs/dev"
    chmod 1777 "$ib/rootfs/tmp"
    cp "$BUSYBOX" "$ib/rootfs/bin/busybox"
    for a in "${APPLETS[@]}"; do ln -sf busybox "$ib/rootfs/bin/$a"; done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$ib/rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$ib/rootfs/etc/group"
    tar -C "$ib/rootfs" --owner=0 --group=0 --numeric-owner -c . |
        dk import -c 'CMD ["sh"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$BASE_IMAGE" >"$ib/import.log" 2>&1 ||
        { cat "$ib/import.log" >&2; die "docker import failed"; }
    for v in v1 v2 v3; do
        mkdir -p "$ib/$v"
        echo "$v" >"$ib/$v/VERSION"
        broken=0
        [ "$v" = v3 ] && broken=1
        app_dockerfile "$v" "$broken" >"$ib/$v/Dockerfile"
        dk build --network none \
            --label "org.opencontainers.image.version=$v" \
            --label "klaxon.test.recipe=$RECIPE" \
            -t "$IMAGE_PREFIX:$v" "$ib/$v" >"$ib/build-$v.log" 2>&1 ||
            { cat "$ib/build-$v.log" >&2; die "docker build of $IMAGE_PREFIX:$v failed"; }
    done
    rm -rf "$ib"
    images_current || die "images built but their labels do not match"
fi
log "images ready ($(secs_since "$t_images")): $BASE_IMAGE $IMAGE_PREFIX:v1 :v2 :v3 (v3 is unhealthy)"
T_IMAGES=$(secs_since "$t_images")

# ---------------------------------------------------------------------------------------
# 4b. A single-node Docker Swarm on the private engine, for the Swarm service tests
#     (KLAXON_TEST_SWARM_HOST). Idempotent: an engine already in a swarm is left as it
#     is. Only the private engine is turned into a swarm (never an external one: that is
#     a developer's own engine; use one that is already a swarm manager, or none).
#     `swarm init` makes an `ingress` overlay network and, for it, a docker_gwbridge
#     bridge on a 172.x address plus a VXLAN socket on 0.0.0.0:4789, even with
#     --bridge=none. The tests' services run with --network host and publish no ports, so
#     both are removed at once: nothing but 127.0.0.1 is left (checked on dockerd 20.10).
SWARM_URL=""
swarm_state() { dk info -f '{{.Swarm.LocalNodeState}}' 2>/dev/null || true; }
if [ "$DOCKER_MODE" = private ]; then
    if [ "$(swarm_state)" != active ]; then
        swarm_port=2377
        while port_in_use_early "$swarm_port"; do swarm_port=$((swarm_port + 1)); done
        dk swarm init --advertise-addr 127.0.0.1 --listen-addr "127.0.0.1:$swarm_port" \
            --data-path-addr 127.0.0.1 >"$DIR/swarm-init.log" 2>&1 ||
            { cat "$DIR/swarm-init.log" >&2; die "docker swarm init failed (log above)"; }
        # The ingress network appears a moment after `init` returns: wait for it
        # (at most 5 s), remove it, then the bridge made for it.
        ingress_seen=0
        for i in $(seq 100); do
            if dk network inspect ingress >/dev/null 2>&1; then
                ingress_seen=1
                echo y | dk network rm ingress >/dev/null 2>&1 || true
            elif [ "$ingress_seen" = 1 ] || [ "$i" -gt 50 ]; then
                dk network rm docker_gwbridge >/dev/null 2>&1 || true
                dk network inspect docker_gwbridge >/dev/null 2>&1 || break
            fi
            sleep 0.1
        done
        ! dk network inspect ingress >/dev/null 2>&1 || die "could not remove the swarm's ingress network"
        ! dk network inspect docker_gwbridge >/dev/null 2>&1 || die "could not remove docker_gwbridge"
    fi
    SWARM_URL=$DOCKER_URL
    log "swarm ready on the private engine: $(dk info -f '{{.Swarm.NodeID}}')"
elif [ "$(swarm_state)" = active ]; then
    SWARM_URL=$DOCKER_URL
fi

# 4c. A second private engine over TCP with TLS (several engines, issue 16). The CA, the
#     server certificate (for 127.0.0.1) and the client certificate are made here; the
#     engine verifies clients (--tlsverify) and also listens on its own unix socket.
make_tls() { # $1 = directory
    local d=$1
    mkdir -p "$d"
    (
        cd "$d"
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=klaxon-test-ca" \
            -keyout ca-key.pem -out ca.pem
        openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server-key.pem -out server.csr
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
            -extfile server.ext -out server-cert.pem
        openssl req -newkey rsa:2048 -nodes -subj "/CN=klaxon" -keyout key.pem -out client.csr
        printf 'extendedKeyUsage=clientAuth\n' >client.ext
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
            -extfile client.ext -out cert.pem
        rm -f ./*.csr ./*.ext ./*.srl
        chmod 644 ./*.pem
    ) >"$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; die "making the TLS certificates failed"; }
}
if [ "$DOCKER_MODE" = private ]; then
    t_docker2=$(now_ms)
    make_tls "$DIR/tls"
    mkdir -p "$DIR/e2"
    port2=""
    for p in $(seq 23760 23860); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { port2=$p; break; }
    done
    [ -n "$port2" ] || die "no free port for the second engine in 23760..23860"
    cp "$DIR/daemon.json" "$DIR/e2/daemon.json"
    sed -i "s#$DIR/key.json#$DIR/e2/key.json#" "$DIR/e2/daemon.json"
    dockerd2_args=(
        --host "unix://$DIR/e2/docker.sock" --host "tcp://127.0.0.1:$port2"
        --tlsverify --tlscacert "$DIR/tls/ca.pem"
        --tlscert "$DIR/tls/server-cert.pem" --tlskey "$DIR/tls/server-key.pem"
        --data-root "$DIR/e2/root" --exec-root "$DIR/e2/exec"
        --pidfile "$DIR/e2/docker.pid" --config-file "$DIR/e2/daemon.json"
        --bridge=none --iptables=false --ip-forward=false
    )
    [ "$IS_ROOT" = 1 ] || dockerd2_args+=(--group "$(id -gn)")
    log "starting the second private dockerd (tcp://127.0.0.1:$port2, TLS)..."
    (
        trap - ERR
        asroot setsid -w "$DOCKERD" "${dockerd2_args[@]}"
    ) </dev/null >"$DIR/e2/dockerd.log" 2>&1 &
    deadline=$(($(now_ms) + 60000))
    until docker -H "unix://$DIR/e2/docker.sock" version >/dev/null 2>&1; do
        [ "$(now_ms)" -lt "$deadline" ] || { tail -n 40 "$DIR/e2/dockerd.log" >&2; die "second dockerd not ready after 60s"; }
        sleep 0.2
    done
    DOCKERD2_PID=$(cat "$DIR/e2/docker.pid")
    # The client side over TLS, as Klaxon will speak it.
    docker --tlsverify --tlscacert "$DIR/tls/ca.pem" --tlscert "$DIR/tls/cert.pem" --tlskey "$DIR/tls/key.pem" \
        -H "tcp://127.0.0.1:$port2" version >/dev/null 2>&1 || die "the second engine does not answer over TLS"
    # Same images, so a test runs the same containers on either engine.
    dk save "$BASE_IMAGE" "$IMAGE_PREFIX:v1" "$IMAGE_PREFIX:v2" "$IMAGE_PREFIX:v3" |
        docker -H "unix://$DIR/e2/docker.sock" load >/dev/null || die "loading the test images into the second engine failed"
    DOCKER2_URL=tcp://127.0.0.1:$port2
    log "second dockerd ready (pid $DOCKERD2_PID, $(secs_since "$t_docker2")): $DOCKER2_URL (TLS: $DIR/tls)"
fi

# ---------------------------------------------------------------------------------------
# 5. PostgreSQL.
t_pg=$(now_ms)
PG_ROOT=$DIR/pg
mkdir -p "$PG_ROOT"
if [ "$IS_ROOT" = 1 ]; then
    chmod 711 "$DIR" # the postgres user must be able to reach $DIR/pg
    chown postgres:postgres "$PG_ROOT"
fi
log "starting private postgres ($PG_BIN)..."
pg_run "$PG_BIN/initdb" -D "$PG_ROOT/data" --auth=trust -U postgres -E UTF8 --locale=C --no-sync \
    >"$PG_ROOT/initdb.log" 2>&1 || { tail -n 30 "$PG_ROOT/initdb.log" >&2; die "initdb failed"; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=$PG_PORT_START
last=$((PG_PORT_START + 50))
while :; do
    [ "$port" -le "$last" ] || die "no free port for postgres in $PG_PORT_START..$last"
    if port_in_use "$port"; then
        port=$((port + 1))
        continue
    fi
    : >"$PG_ROOT/postgres.log"
    [ "$IS_ROOT" = 0 ] || chown postgres:postgres "$PG_ROOT/postgres.log"
    if pg_run "$PG_BIN/pg_ctl" -D "$PG_ROOT/data" -l "$PG_ROOT/postgres.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_ROOT -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null 2>&1; then
        break
    fi
    if grep -qiE 'could not bind|already in use|could not create any TCP/IP sockets' "$PG_ROOT/postgres.log"; then
        log "port $port busy, trying $((port + 1))"
        port=$((port + 1))
        continue
    fi
    tail -n 30 "$PG_ROOT/postgres.log" >&2
    die "postgres failed to start (log above: $PG_ROOT/postgres.log)"
done
PG_PORT=$port
"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -t 30 || die "postgres not accepting connections on 127.0.0.1:$PG_PORT"
read -r PG_PID <"$PG_ROOT/data/postmaster.pid"
log "postgres ready on 127.0.0.1:$PG_PORT (pid $PG_PID, $(secs_since "$t_pg"))"
T_PG=$(secs_since "$t_pg")

export KLAXON_TEST_DOCKER_HOST=$DOCKER_URL
export KLAXON_TEST_PG_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres
export KLAXON_TEST_IMAGE_PREFIX=$IMAGE_PREFIX
export KLAXON_TEST_SWARM_HOST=$SWARM_URL
export KLAXON_TEST_DOCKER_HOST2=$DOCKER2_URL
export KLAXON_TEST_DOCKER_TLS_DIR=${DOCKER2_URL:+$DIR/tls}
READY=1
log "environment ready: provisioning $T_PROV, dockerd $T_DOCKER, images $T_IMAGES, postgres $T_PG"

# ---------------------------------------------------------------------------------------
# 7. The runtime image (packaging/Dockerfile.runtime), run after a full `cargo test`
#    (or with KLAXON_TEST_IMAGE=1): built offline from a release binary on the private
#    engine, started against the fake Discord, and checked: it runs as uid 10001, its
#    HEALTHCHECK (/healthz) turns healthy, its slash commands are registered, SIGTERM
#    stops it with exit code 0 well within the 35 s stop timeout and without a WARN,
#    and its size is printed. KLAXON_RUNTIME_BINARY=path skips the release build.

# GET http://127.0.0.1:$1$2 over bash's /dev/tcp (no curl needed); prints the
# status line and the body. $3: an Authorization header value.
http_get() {
    local port=$1 path=$2 hdr=""
    [ -z "${3:-}" ] || hdr="Authorization: $3"$'\r\n'
    exec 5<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n%sConnection: close\r\n\r\n' "$path" "$hdr" >&5
    timeout 10 cat <&5
    exec 5<&-
}

free_port() {
    local p
    for p in $(seq 18600 18700); do
        port_in_use "$p" || { echo "$p"; return 0; }
    done
    return 1
}

runtime_image_test() {
    # cid and fake_pid are not local: the EXIT trap of this subshell reads them.
    local t0 binary rdir api port status uid size elapsed i
    cid="" fake_pid=""
    t0=$(now_ms)
    rdir=$DIR/runtime
    mkdir -p "$rdir"
    binary=${KLAXON_RUNTIME_BINARY:-}
    if [ -z "$binary" ]; then
        log "runtime image: cargo build --release -p klaxon --locked ..."
        cargo build --release -p klaxon --locked >"$rdir/release-build.log" 2>&1 ||
            { tail -n 30 "$rdir/release-build.log" >&2; return 1; }
        binary=$ROOT_DIR/target/release/klaxon
    fi
    cargo build -p klaxon-fake-discord --locked >"$rdir/fake-build.log" 2>&1 ||
        { tail -n 30 "$rdir/fake-build.log" >&2; return 1; }
    local t_build
    t_build=$(now_ms)
    DOCKER_HOST=$DOCKER_URL bash packaging/build-runtime-image.sh "$binary" klaxon-test/runtime:latest >"$rdir/image.log" 2>&1 ||
        { cat "$rdir/image.log" >&2; return 1; }
    log "runtime image: $(tail -n 1 "$rdir/image.log") ($(secs_since "$t_build"))"

    cleanup_runtime() {
        [ -z "${cid:-}" ] || dk rm -f "$cid" >/dev/null 2>&1 || true
        [ -z "${fake_pid:-}" ] || { kill "$fake_pid" 2>/dev/null; wait "$fake_pid" 2>/dev/null; } || true
    }
    trap cleanup_runtime EXIT # this function runs in its own subshell

    "$ROOT_DIR/target/debug/fake-discord" --port 0 >"$rdir/fake.out" 2>"$rdir/fake.log" &
    fake_pid=$!
    for i in $(seq 100); do
        api=$(head -n 1 "$rdir/fake.out" 2>/dev/null || true)
        [ -n "$api" ] && break
        sleep 0.1
    done
    [ -n "$api" ] || { log "the fake Discord did not start"; cat "$rdir/fake.log" >&2; return 1; }
    port=$(free_port) || { log "no free port"; return 1; }
    mkdir -p "$rdir/etc"
    cat >"$rdir/etc/klaxon.toml" <<TOML
[discord]
api_url = "$api"
guild_id = 123
[database]
url = "sqlite:///var/lib/klaxon/klaxon.db"
[http]
listen = "127.0.0.1:$port"
[channels]
alerts = 111
[roles]
admin = [1004]
[alerts]
docker_events = false
probe_interval_secs = 0
[[services]]
name = "self"
health_url = "http://127.0.0.1:$port/healthz"
TOML
    chmod 755 "$rdir" "$rdir/etc"
    chmod 644 "$rdir/etc/klaxon.toml"
    cid=$(dk run -d --network host --health-interval 1s --health-start-period 1s \
        -e DISCORD_TOKEN=fake-token -e KLAXON_LOG=info \
        -v "$rdir/etc/klaxon.toml:/etc/klaxon/klaxon.toml:ro" klaxon-test/runtime:latest)

    # Non-root: the container's process, seen from the host.
    local pid
    pid=$(dk inspect -f '{{.State.Pid}}' "$cid")
    uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
    [ "$uid" = 10001 ] || { log "runtime image: runs as uid $uid, not 10001"; return 1; }
    # The HEALTHCHECK (klaxon healthcheck → /healthz) turns healthy.
    status=""
    for i in $(seq 60); do
        status=$(dk inspect -f '{{.State.Health.Status}}' "$cid")
        [ "$status" = healthy ] && break
        sleep 0.5
    done
    [ "$status" = healthy ] || { log "runtime image: health $status"; dk logs "$cid" >&2; return 1; }
    local healthz
    healthz=$(http_get "$port" /healthz || true)
    [[ $healthz == "HTTP/1."?" 200 "* ]] || { log "runtime image: /healthz answered: $healthz"; return 1; }
    # The slash commands are registered in the guild (the fake answers Discord's GET).
    local commands=""
    for i in $(seq 60); do
        commands=$(http_get "${api##*:}" /api/v10/applications/2/guilds/123/commands "Bot fake-token" || true)
        [[ $commands == *'"name":"health"'* ]] && break
        sleep 0.5
    done
    [[ $commands == *'"name":"health"'* ]] ||
        { log "runtime image: slash commands not registered"; dk logs "$cid" >&2; return 1; }
    # SIGTERM: exit 0 within the stop timeout, no WARN on the way out.
    local t_stop code
    t_stop=$(now_ms)
    dk stop -t 35 "$cid" >/dev/null
    elapsed=$(($(now_ms) - t_stop))
    code=$(dk inspect -f '{{.State.ExitCode}}' "$cid")
    [ "$code" = 0 ] || { log "runtime image: exit code $code after SIGTERM"; dk logs "$cid" >&2; return 1; }
    [ "$elapsed" -lt 35000 ] || { log "runtime image: stopping took ${elapsed} ms"; return 1; }
    if dk logs "$cid" 2>&1 | grep -q ' WARN '; then
        log "runtime image: a clean run logged warnings:"
        dk logs "$cid" 2>&1 | grep ' WARN ' >&2
        return 1
    fi
    size=$(dk image inspect -f '{{.Size}}' klaxon-test/runtime:latest)
    log "runtime image: uid 10001, healthy, commands registered, SIGTERM -> exit 0 in ${elapsed} ms"
    log "runtime image size: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f MB", s / 1000000 }')) ($(secs_since "$t0") in all)"
}

# ---------------------------------------------------------------------------------------
# 6. Tests.
if [ "$MODE" = env ]; then
    KEEP_ON_EXIT=1
    exit 0 # on_exit writes the state file and prints the exports
fi
[ "${KLAXON_TEST_KEEP:-0}" = 1 ] && KEEP_ON_EXIT=1

cargo_args=(test --locked)
with_workspace=1
for a in "$@"; do
    case $a in
        --) break ;;
        -p | --package | -p?* | --package=*) with_workspace=0 ;;
        --locked) cargo_args=(test) ;;
    esac
done
[ "$with_workspace" = 0 ] || cargo_args+=(--workspace)
log "running: cargo ${cargo_args[*]} $*"
# A background job of a non-interactive shell starts with SIGINT/SIGQUIT ignored, and test
# binaries would inherit that: reset them to the default (GNU env >= 8.31).
reset_signals=()
# shellcheck disable=SC2054
if env --default-signal=INT,QUIT true 2>/dev/null; then reset_signals=(env --default-signal=INT,QUIT); fi
setsid "${reset_signals[@]}" cargo "${cargo_args[@]}" "$@" &
CARGO_PID=$!
set +e
wait "$CARGO_PID"
rc=$?
set -e
CARGO_PID=""
if [ "$rc" = 0 ]; then log "tests passed"; else log "tests failed (cargo exit code $rc)"; fi
if [ "$rc" = 0 ] && { [ "$with_workspace" = 1 ] || [ "${KLAXON_TEST_IMAGE:-0}" = 1 ]; }; then
    set +e
    (set -e; trap - ERR; runtime_image_test)
    rc=$?
    set -e
    if [ "$rc" = 0 ]; then log "runtime image test passed"; else log "runtime image test failed"; fi
fi
exit "$rc"
