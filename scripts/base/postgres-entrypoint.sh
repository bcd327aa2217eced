#!/bin/sh
# The part of the official postgres image's entrypoint that compose.yaml relies on: on an empty
# PGDATA, initdb with POSTGRES_USER (default postgres) and POSTGRES_PASSWORD (required), password
# (scram-sha-256) authentication from any address, and POSTGRES_DB (default: the user's name).
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "error: the database is uninitialized and POSTGRES_PASSWORD is not set" >&2
    exit 1
  fi
  user="${POSTGRES_USER:-postgres}"
  db="${POSTGRES_DB:-$user}"
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb --pgdata="$PGDATA" --username="$user" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  if [ "$db" != postgres ]; then
    # Started on the socket only, so nobody connects before the database exists.
    pg_ctl --pgdata="$PGDATA" -o "-c listen_addresses=''" --wait start >/dev/null
    # On stdin: psql substitutes :"db" (quoted as an identifier) there, not in -c.
    echo 'CREATE DATABASE :"db";' | psql -v ON_ERROR_STOP=1 --username="$user" --dbname=postgres -q --set=db="$db"
    pg_ctl --pgdata="$PGDATA" --mode=fast --wait stop >/dev/null
  fi
  echo "initialized $PGDATA: user $user, database $db"
fi
exec "$@"
