#!/usr/bin/env bash
# Entrypoint for the compose replicas: on first start clones the primary with pg_basebackup -R, then runs postgres as a hot standby.
set -euo pipefail

PGDATA="${PGDATA:-/var/lib/postgresql/data}"
PRIMARY_HOST="${PRIMARY_HOST:-primary}"
PRIMARY_PORT="${PRIMARY_PORT:-5432}"
REPLICATION_USER="${REPLICATION_USER:-replicator}"
: "${REPLICATION_PASSWORD:?REPLICATION_PASSWORD must be set}"
export PGDATA

# Started as root (the image default): fix ownership of the data volume, then drop to postgres.
if [[ "$(id -u)" == 0 ]]; then
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    exec gosu postgres bash "$0" "$@"
fi

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    echo "replica: waiting for the primary at $PRIMARY_HOST:$PRIMARY_PORT"
    for _ in $(seq 1 120); do
        if pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT"; then
            break
        fi
        sleep 1
    done
    echo "replica: cloning the primary into $PGDATA"
    export PGPASSWORD="$REPLICATION_PASSWORD"
    mkdir -p "$PGDATA"
    cloned=0
    for _ in $(seq 1 30); do
        # the data directory must be empty for pg_basebackup; clear what a failed attempt left
        find "$PGDATA" -mindepth 1 -delete
        if pg_basebackup -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$REPLICATION_USER" \
            -D "$PGDATA" -R -X stream -c fast; then
            cloned=1
            break
        fi
        echo "replica: pg_basebackup failed, retrying in 2s"
        sleep 2
    done
    if [[ "$cloned" != 1 ]]; then
        echo "replica: could not clone the primary" >&2
        exit 1
    fi
    chmod 700 "$PGDATA"
fi

exec postgres -c hot_standby=on "$@"
