#!/bin/bash
# k2-prefect-db: PostgreSQL 15 from the host's Debian packages. First start: initdb, role, database,
# and the watermark DDL of the chosen layout, or K2's own file in the conformance lane (WATERMARK_DDL), like
# /docker-entrypoint-initdb.d on K2's first init.
set -euo pipefail
BIN=/usr/lib/postgresql/15/bin
export PGDATA=/var/lib/postgresql/data
mkdir -p "$PGDATA" /var/run/postgresql
chown -R postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  runuser -u postgres -- "$BIN/initdb" --no-sync -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  runuser -u postgres -- "$BIN/pg_ctl" -w -o "-c listen_addresses=''" start >/dev/null
  runuser -u postgres -- psql -v ON_ERROR_STOP=1 -q -v pw="$POSTGRES_PASSWORD" <<SQL
CREATE ROLE "$POSTGRES_USER" LOGIN PASSWORD :'pw';
CREATE DATABASE "$POSTGRES_DB" OWNER "$POSTGRES_USER";
SQL
  runuser -u postgres -- psql -v ON_ERROR_STOP=1 -q -U "$POSTGRES_USER" -d "$POSTGRES_DB" \
    -f "${WATERMARK_DDL:-/docker-entrypoint-initdb.d/offload-watermarks-${WATERMARK_LAYOUT:-state}.sql}"
  runuser -u postgres -- "$BIN/pg_ctl" -w stop >/dev/null
  echo "k2-prefect-db: initialised (watermark DDL: ${WATERMARK_DDL:-layout ${WATERMARK_LAYOUT:-state}})"
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups "$BIN/postgres" -c listen_addresses='*' -c fsync=off -c timezone=UTC \
  -c log_timezone=UTC -c max_connections=200
