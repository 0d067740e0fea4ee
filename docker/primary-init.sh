#!/usr/bin/env bash
# First-start init script for the compose primary: creates role/database app and a replication role, allows replication.
set -euo pipefail

: "${APP_PASSWORD:?APP_PASSWORD must be set}"
: "${REPLICATION_PASSWORD:?REPLICATION_PASSWORD must be set}"

psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    -v app_pw="$APP_PASSWORD" -v repl_pw="$REPLICATION_PASSWORD" <<'SQL'
SET password_encryption = 'scram-sha-256';
CREATE ROLE app LOGIN PASSWORD :'app_pw';
CREATE DATABASE app OWNER app;
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'repl_pw';
SQL

# The image's pg_hba.conf ends with "host all all all scram-sha-256", which does not cover
# replication connections: let the replicas in with the replication role.
echo "host replication replicator all scram-sha-256" >>"$PGDATA/pg_hba.conf"
