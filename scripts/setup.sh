#!/usr/bin/env bash
# Installs what shardwire's demo and tests need beyond the Rust toolchain:
# the PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_basebackup)
# and clients (psql, pgbench). Safe to run again: it installs only what is
# missing. Uses Debian packages; on other systems install PostgreSQL 15+
# yourself and point PG_BIN at the folder holding initdb.
set -euo pipefail

have_server_binaries() {
  if [ -n "${PG_BIN:-}" ] && [ -x "$PG_BIN/initdb" ]; then return 0; fi
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then return 0; fi
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

missing=()
have_server_binaries || missing+=(postgresql)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v pgbench >/dev/null 2>&1 || missing+=(postgresql-client)

if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: missing ${missing[*]} and no apt-get: install PostgreSQL 15+ and set PG_BIN" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# initdb refuses to run as root: localcluster then runs Postgres as the
# 'postgres' OS user, which the Debian package creates.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home /var/lib/postgresql --shell /bin/bash postgres
fi
