#!/usr/bin/env bash
# A Docker engine for streamflow's containerised tests and images.
#
#   deploy/containers/engine.sh up       use an engine that answers, else start a private dockerd
#   deploy/containers/engine.sh down     stop the private dockerd (and its containers); an engine
#                                        this script did not start is left alone
#   deploy/containers/engine.sh status   exit 0 when the engine answers
#   deploy/containers/engine.sh env      print `export DOCKER_HOST=...` for the engine in use
#
# An engine "answers" when `docker version` reaches it through DOCKER_HOST or the default socket.
# Otherwise, as root on Debian, it installs docker.io (apt) and starts dockerd with loopback-only
# networking (--bridge=none --iptables=false --ip-masq=false: containers use --network host) and
# every file it writes under $STREAMFLOW_DOCKER_DIR (default <repo>/.streamflow/docker, git-ignored).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
STATE_DIR="${STREAMFLOW_DOCKER_DIR:-$REPO_ROOT/.streamflow/docker}"
SOCKET="$STATE_DIR/docker.sock"
PID_FILE="$STATE_DIR/dockerd.pid"
ENV_FILE="$STATE_DIR/engine.env"
LOG_FILE="$STATE_DIR/dockerd.log"
START_TIMEOUT="${STREAMFLOW_DOCKER_START_TIMEOUT:-60}"
STOP_TIMEOUT="${STREAMFLOW_DOCKER_STOP_TIMEOUT:-30}"

log() { printf '[engine] %s\n' "$*" >&2; }
die() { printf '[engine] ERROR: %s\n' "$*" >&2; exit 1; }

docker_cli() { # the Debian client first: it matches the Debian daemon's API
    if [[ -x /usr/bin/docker ]]; then printf '/usr/bin/docker'; else command -v docker || true; fi
}

answers() { # answers <DOCKER_HOST value or empty>: the engine replies within a few seconds
    local cli; cli="$(docker_cli)"
    [[ -n "$cli" ]] || return 1
    if [[ -n "$1" ]]; then
        DOCKER_HOST="$1" timeout 10 "$cli" version --format '{{.Server.Version}}' >/dev/null 2>&1
    else
        env -u DOCKER_HOST timeout 10 "$cli" version --format '{{.Server.Version}}' >/dev/null 2>&1
    fi
}

own_pid() { # the pid of the dockerd this script started, if it still runs
    local pid
    [[ -f "$PID_FILE" ]] || return 1
    pid="$(tr -dc '0-9' <"$PID_FILE")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--data-root $STATE_DIR/data" || return 1
    printf '%s' "$pid"
}

write_env() { # write_env <DOCKER_HOST> <origin>
    mkdir -p "$STATE_DIR"
    printf 'DOCKER_HOST=%s\nSTREAMFLOW_DOCKER_ORIGIN=%s\n' "$1" "$2" >"$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
}

install_engine() {
    if command -v dockerd >/dev/null 2>&1 && [[ -x /usr/bin/docker || -n "$(command -v docker)" ]]; then
        return 0
    fi
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        die "no Docker engine answers and none can be installed here (needs root and apt-get). Install Docker Engine (Debian/Ubuntu: apt-get install docker.io; elsewhere https://docs.docker.com/engine/install/), start it, and make DOCKER_HOST or /var/run/docker.sock reach it."
    fi
    log "installing docker.io, debootstrap and docker-compose from Debian's packages ..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap docker-compose >/dev/null
}

cmd_up() {
    if own_pid >/dev/null; then # ours, perhaps still starting: never start a second one on its data
        local t0=$SECONDS
        until answers "unix://$SOCKET"; do
            (( SECONDS - t0 < START_TIMEOUT )) \
                || die "the private dockerd (pid $(own_pid)) does not answer; run: $0 down"
            sleep 0.5
        done
        write_env "unix://$SOCKET" private
        log "private dockerd already running (pid $(own_pid)), socket $SOCKET"
        return 0
    fi
    if answers "${DOCKER_HOST:-}"; then
        write_env "${DOCKER_HOST:-unix:///var/run/docker.sock}" external
        log "using the Docker engine that answers at ${DOCKER_HOST:-/var/run/docker.sock}"
        return 0
    fi
    [[ "$(id -u)" == 0 ]] || die "no Docker engine answers, and starting one needs root. Start Docker Engine (or rootless Docker, https://docs.docker.com/engine/security/rootless/) and make DOCKER_HOST or /var/run/docker.sock reach it; as root on Debian this script installs and starts one."
    install_engine
    (( ${#SOCKET} < 100 )) || die "socket path $SOCKET is too long for a unix socket; set STREAMFLOW_DOCKER_DIR to a shorter folder"
    mkdir -p "$STATE_DIR/data" "$STATE_DIR/exec"
    rm -f "$SOCKET"
    local t0=$SECONDS
    log "starting a private dockerd (data under $STATE_DIR, loopback-only networking) ..."
    setsid dockerd \
        --host "unix://$SOCKET" --data-root "$STATE_DIR/data" --exec-root "$STATE_DIR/exec" \
        --pidfile "$PID_FILE" --bridge=none --iptables=false --ip-masq=false --userland-proxy=false \
        --log-level warn </dev/null >"$LOG_FILE" 2>&1 &
    local launcher=$!
    while ! answers "unix://$SOCKET"; do
        if ! kill -0 "$launcher" 2>/dev/null; then
            tail -n 30 "$LOG_FILE" >&2 || true
            die "dockerd exited during start-up (log: $LOG_FILE)"
        fi
        if (( SECONDS - t0 >= START_TIMEOUT )); then
            tail -n 30 "$LOG_FILE" >&2 || true
            kill -TERM "$launcher" 2>/dev/null || true
            die "dockerd did not answer within ${START_TIMEOUT}s (log: $LOG_FILE)"
        fi
        sleep 0.5
    done
    write_env "unix://$SOCKET" private
    log "dockerd answers after $(( SECONDS - t0 ))s (pid $(own_pid)); export DOCKER_HOST=unix://$SOCKET"
}

leftovers() { # processes still using our state folder (dockerd, its containerd, shims)
    local p
    for p in $(pgrep -f -- "$STATE_DIR" 2>/dev/null || true); do
        [[ "$p" != "$$" ]] && tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qE 'dockerd|containerd' \
            && printf '%s\n' "$p"
    done
    return 0
}

cmd_down() {
    local pid cli
    if ! pid="$(own_pid)"; then
        if [[ -n "$(leftovers)" ]]; then
            log "no pid file, but engine processes use $STATE_DIR: stopping them"
            kill -TERM $(leftovers) 2>/dev/null || true
        else
            log "no private dockerd running (an engine this script did not start is left alone)"
        fi
        rm -f "$ENV_FILE"
        return 0
    fi
    cli="$(docker_cli)"
    local ids
    ids="$(DOCKER_HOST="unix://$SOCKET" "$cli" ps -aq 2>/dev/null || true)"
    if [[ -n "$ids" ]]; then
        log "removing $(wc -w <<<"$ids") container(s)"
        # shellcheck disable=SC2086
        DOCKER_HOST="unix://$SOCKET" "$cli" rm -f -v $ids >/dev/null 2>&1 || true
    fi
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    local t0=$SECONDS
    while kill -0 "$pid" 2>/dev/null || [[ -n "$(leftovers)" ]]; do
        if (( SECONDS - t0 >= STOP_TIMEOUT )); then
            log "still running after ${STOP_TIMEOUT}s: SIGKILL"
            kill -KILL "$pid" $(leftovers) 2>/dev/null || true
            sleep 1
            break
        fi
        sleep 0.3
    done
    # overlay and shm mounts dockerd did not get to release
    local m
    for m in $(awk -v d="$STATE_DIR/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    rm -f "$ENV_FILE" "$PID_FILE" "$SOCKET"
    [[ -z "$(leftovers)" ]] || die "engine processes survived: $(leftovers | tr '\n' ' ')"
    log "dockerd stopped"
}

cmd_status() {
    if own_pid >/dev/null && answers "unix://$SOCKET"; then
        printf 'private dockerd (pid %s): unix://%s\n' "$(own_pid)" "$SOCKET"; return 0
    fi
    if answers "${DOCKER_HOST:-}"; then
        printf 'engine: %s\n' "${DOCKER_HOST:-unix:///var/run/docker.sock}"; return 0
    fi
    printf 'no Docker engine answers\n'; return 1
}

cmd_env() {
    [[ -f "$ENV_FILE" ]] || die "no engine chosen yet; run: $0 up"
    sed -n 's/^DOCKER_HOST=/export DOCKER_HOST=/p' "$ENV_FILE"
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
