# shellcheck shell=bash
# A throwaway primary + 2 replicas (scripts/cluster) with pgsplit in front of it, for scripts that
# drive pgbench through pgsplit (scripts/flamegraph, scripts/pgo). Sourced, not run.
#
# The sourcing script sets ROOT (the repository), WORK (its temporary directory), SCALE, POOL and
# APP_PW, defines die() and note(), and calls throwaway_cleanup from its EXIT trap.
# throwaway_start sets PID, PORT, PGBENCH and PSQL.

CLUSTER=""
PGSPLIT_PID="" # set only when pgsplit was started here

find_tool() { # name [dir]: prints the path of an executable, empty if none
    if [[ -n "${2:-}" && -x "$2/$1" ]]; then
        echo "$2/$1"
    elif command -v "$1" >/dev/null 2>&1; then
        command -v "$1"
    elif [[ -x "$HOME/.cargo/bin/$1" ]]; then
        echo "$HOME/.cargo/bin/$1"
    fi
}

alive() { # pid: running and not a zombie
    local s
    s="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
    [[ -n "$s" && "$s" != Z* ]]
}

stop_pid() { # pid [seconds]: SIGTERM, then SIGKILL after the grace time (default 5 s)
    local pid="$1" i
    [[ -n "$pid" ]] || return 0
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < ${2:-5} * 10; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

throwaway_cleanup() { # stops pgsplit and destroys the cluster, if started here
    stop_pid "$PGSPLIT_PID"
    PGSPLIT_PID=""
    if [[ -n "$CLUSTER" && -d "$CLUSTER" ]]; then
        "$ROOT/scripts/cluster" destroy "$CLUSTER" >/dev/null 2>&1 || note "warning: could not destroy the cluster in $CLUSTER"
    fi
    CLUSTER=""
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_base() { # first [fixed]: a base port from first on whose BASE, +1, +2 and +10 are all free
    local base="$1" fixed="${2:-}" tries o busy
    for ((tries = 0; tries < 20; tries++)); do
        busy=0
        for o in 0 1 2 10; do
            if port_in_use $((base + o)); then busy=1; fi
        done
        if [[ "$busy" == 0 ]]; then
            echo "$base"
            return
        fi
        [[ -z "$fixed" ]] || die "a port of $base + (0 1 2 10) is in use"
        base=$((base + 100))
    done
    die "no free port range found from $1 on"
}

write_split_config() { # file port primary_port: two replicas, reads to them (scripts/bench, split)
    cat >"$1" <<CONFIG
[listen]
addr = "127.0.0.1:$2"

[pool]
mode = "transaction"
size = $POOL

[limits]
shutdown_timeout = "1s"

[log]
level = "warn"

[[users]]
name = "app"
password = "\${PGSPLIT_THROWAWAY_APP_PASSWORD}"

[databases.app]
primary = "127.0.0.1:$3"
replicas = ["127.0.0.1:$(($3 + 1))", "127.0.0.1:$(($3 + 2))"]

[routing]
primary_reads = false
CONFIG
}

# pgsplit's monitor needs a moment before it sends reads to replicas: wait until a plain read
# through it is answered by one.
wait_replica_reads() { # port primary_port log
    local deadline=$((SECONDS + 30)) got=""
    while :; do
        got="$(timeout 5 "$PSQL" -X -q -A -t -h 127.0.0.1 -p "$1" -U app -d app \
            -c 'select inet_server_port()' 2>/dev/null || true)"
        [[ "$got" == "$(($2 + 1))" || "$got" == "$(($2 + 2))" ]] && return 0
        if ! alive "$PGSPLIT_PID" || ((SECONDS >= deadline)); then
            echo "----- last lines of $3 -----" >&2
            tail -n 20 "$3" >&2 || true
            die "pgsplit (127.0.0.1:$1) sent no read to a replica within 30 s (last answer from port '${got:-none}')"
        fi
        sleep 0.2
    done
}

throwaway_start() { # pgsplit first_port [fixed]: cluster, pgbench tables, pgsplit in front
    local pgsplit="$1" base pgbin log="$WORK/pgsplit.log"
    [[ -x "$pgsplit" ]] || die "$pgsplit is not an executable"
    base="$(free_base "$2" "${3:-}")"
    CLUSTER="$WORK/cluster"
    note "starting a cluster in $CLUSTER (primary 127.0.0.1:$base, replicas $((base + 1)) $((base + 2)))"
    PGSPLIT_APP_PASSWORD="$APP_PW" "$ROOT/scripts/cluster" start "$CLUSTER" "$base" >/dev/null
    pgbin="$(sed -n 's/^PGSPLIT_PGBIN=//p' "$CLUSTER/cluster.env")"
    PGBENCH="$(find_tool pgbench "$pgbin")"
    PSQL="$(find_tool psql "$pgbin")"
    [[ -n "$PGBENCH" && -n "$PSQL" ]] || die "pgbench or psql not found"
    note "pgbench -i -s $SCALE"
    if ! PGPASSWORD="$APP_PW" timeout 600 "$PGBENCH" -i -q -s "$SCALE" -h 127.0.0.1 -p "$base" -U app app >"$WORK/init.log" 2>&1; then
        cat "$WORK/init.log" >&2
        die "pgbench -i failed"
    fi
    PORT=$((base + 10))
    write_split_config "$WORK/pgsplit.toml" "$PORT" "$base"
    PGSPLIT_THROWAWAY_APP_PASSWORD="$APP_PW" "$pgsplit" check-config --config "$WORK/pgsplit.toml" >/dev/null ||
        die "pgsplit check-config rejected $WORK/pgsplit.toml"
    note "starting pgsplit on 127.0.0.1:$PORT with both replicas"
    PGSPLIT_THROWAWAY_APP_PASSWORD="$APP_PW" RUST_LOG=warn "$pgsplit" --config "$WORK/pgsplit.toml" >"$log" 2>&1 &
    PGSPLIT_PID=$!
    PID="$PGSPLIT_PID"
    PGPASSWORD="$APP_PW" wait_replica_reads "$PORT" "$base" "$log"
}
