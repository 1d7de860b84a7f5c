# Shared by the load scripts (load.sh, replicas.sh); sourced after the script
# has defined log(), die() and ROOT. Sets up who runs the servers, finds the
# Postgres tools, builds shardwire, and offers stop_pid.
#
#   REQUIRED_PG_TOOLS   server binaries that must exist in PG_BIN
#                       (default: initdb pg_ctl postgres)

# ---------------------------------------------------------------- who runs servers
if [[ $(id -u) == 0 ]]; then
    id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' OS user to run the servers as"
    # setpriv and env exec the program itself, so `"${AS_PG[@]}" prog &`
    # leaves the server's own pid in $!.
    AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups -- env HOME=/tmp USER=postgres LOGNAME=postgres)
    SERVER_OWNER=postgres
else
    AS_PG=()
    SERVER_OWNER=$(id -un)
fi
as_pg() { "${AS_PG[@]}" "$@"; }

# ---------------------------------------------------------------- tools
if [[ -z ${PG_BIN:-} ]]; then
    PG_BIN=$(pg_config --bindir 2>/dev/null || true)
    if [[ ! -x $PG_BIN/initdb ]]; then
        PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    fi
fi
for p in ${REQUIRED_PG_TOOLS:-initdb pg_ctl postgres}; do
    [[ -x $PG_BIN/$p ]] || die "no $p in PG_BIN=$PG_BIN (install postgresql-15 or set PG_BIN)"
done
PGBENCH=$PG_BIN/pgbench; [[ -x $PGBENCH ]] || PGBENCH=$(command -v pgbench) || die "pgbench not found"
PSQL=$PG_BIN/psql; [[ -x $PSQL ]] || PSQL=$(command -v psql) || die "psql not found"
PG_VERSION=$("$PG_BIN/postgres" --version)

# ---------------------------------------------------------------- build
build_shardwire() { # sets SHARDWIRE, SW_REV, LOAD_START
    cd "$ROOT" || die "cannot cd to $ROOT"
    if [[ ${SKIP_BUILD:-0} != 1 ]]; then
        log "cargo build --release"
        cargo build --release --bin shardwire >&2
    fi
    SHARDWIRE=$ROOT/target/release/shardwire
    [[ -x $SHARDWIRE ]] || die "$SHARDWIRE not built"
    SW_REV="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted src changes')"
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
}

# ---------------------------------------------------------------- processes
stop_pid() { # pid: SIGTERM, then SIGKILL after 10 s
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}
