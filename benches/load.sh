#!/usr/bin/env bash
# Load benchmark of shardwire against Postgres direct and PgBouncer, all on
# this machine and all measured in this one run.
#
#   benches/load.sh                    # full run (20 s per pgbench run)
#   BENCH_SECONDS=3 IDLE_CLIENTS=1000 benches/load.sh   # quick smoke run
#
# Environment:
#   BENCH_SECONDS   duration of each pgbench -S run          (default 20)
#   BENCH_ROUNDS    interleaved rounds of all eight runs       (default 1; >1 reports medians)
#   BENCH_CLIENTS   pgbench -c                               (default 16)
#   BENCH_THREADS   pgbench -j                               (default 2)
#   BENCH_SCALE     pgbench -i -s                            (default 10)
#   (shardwire runs twice: with statement statistics, its default, and with
#   `[observe] statistics = false`; the table reports their TPS ratio)
#   IDLE_CLIENTS    idle client connections per proxy        (default 10000; 0 skips the test)
#   IDLE_CONCURRENCY connections being opened at once        (default 64)
#   IDLE_ROUNDS     open+close all idle clients this often   (default 1; >1 shows
#                   whether RSS keeps growing from round to round)
#   PG_BIN          folder of initdb/pg_ctl/postgres         (default: pg_config --bindir)
#   SKIP_BUILD=1    do not run cargo build --release
#   SHARDWIRE_LOG   RUST_LOG for the proxy                   (default info)
#
# Output: the markdown tables on stdout and in benches/results/latest.md;
# pgbench outputs and proxy logs of the run in benches/results/logs/.
# Everything it starts (Postgres, PgBouncer, shardwire, clients) is stopped
# and its temporary directory removed on exit, also on failure or Ctrl-C.
# Must run as root (it runs Postgres and PgBouncer as the `postgres` OS user)
# or as an ordinary user that can run them itself.

set -Eeuo pipefail

BENCH_SECONDS=${BENCH_SECONDS:-20}
BENCH_ROUNDS=${BENCH_ROUNDS:-1}
BENCH_CLIENTS=${BENCH_CLIENTS:-16}
BENCH_THREADS=${BENCH_THREADS:-2}
BENCH_SCALE=${BENCH_SCALE:-10}
IDLE_CLIENTS=${IDLE_CLIENTS:-10000}
IDLE_CONCURRENCY=${IDLE_CONCURRENCY:-64}
POOL_SIZE=8

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LIB="$HERE/loadlib.py"
RESULTS="$HERE/results"
LOGS="$RESULTS/logs"
PY=${PYTHON:-python3}

BENCH_USER=bench
BENCH_DB=bench
BENCH_PASSWORD="bench-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
SUPER_PASSWORD="super-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"

log() { printf '[load.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- cleanup
WORK=""
PIDS=()          # processes we started (shardwire, pgbouncer)
PG_STARTED=0
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null
        fi
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    done
    if [[ $PG_STARTED == 1 ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$WORK/pgdata" -m fast -w -t 30 stop >/dev/null 2>&1 \
            || as_pg "$PG_BIN/pg_ctl" -D "$WORK/pgdata" -m immediate -w stop >/dev/null 2>&1
    fi
    if [[ -n $WORK && -d $WORK ]]; then
        mkdir -p "$LOGS"
        cp -f "$WORK"/*.log "$WORK"/pgbouncer*/*.log "$LOGS"/ 2>/dev/null
        rm -rf "$WORK"
    fi
    [[ $rc != 0 ]] && log "failed (exit $rc); logs in $LOGS"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=benches/common.sh
source "$HERE/common.sh"

if ! command -v pgbouncer >/dev/null 2>&1; then
    log "pgbouncer missing: installing it with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y pgbouncer >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y pgbouncer >/dev/null; } \
        || die "cannot install pgbouncer"
    # The package enables a system service; we run our own instance only.
    if command -v systemctl >/dev/null 2>&1; then systemctl stop pgbouncer >/dev/null 2>&1 || true; fi
fi
PGBOUNCER=$(command -v pgbouncer)
PGBOUNCER_VERSION=$("$PGBOUNCER" --version 2>&1 | head -1 | awk '{print $NF}')

if [[ $IDLE_CLIENTS -gt 0 ]] && ! "$PY" -c 'import asyncpg' 2>/dev/null; then
    log "asyncpg missing: pip install asyncpg (for the idle-connections test)"
    "$PY" -m pip install --quiet asyncpg >&2 || die "cannot pip install asyncpg"
fi

# Idle test needs ~IDLE_CLIENTS fds in the proxy and in the client process.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
if [[ $IDLE_CLIENTS -gt 0 && $FD_LIMIT != unlimited && $FD_LIMIT -lt $((IDLE_CLIENTS + 1000)) ]]; then
    die "open-files limit is $FD_LIMIT (hard limit $(ulimit -Hn)), too low for IDLE_CLIENTS=$IDLE_CLIENTS"
fi

# ---------------------------------------------------------------- build
build_shardwire

# ---------------------------------------------------------------- work dir, ports
WORK=$(mktemp -d /tmp/shardwire-load.XXXXXX)
chmod 755 "$WORK"
chown "$SERVER_OWNER" "$WORK"
mkdir -p "$RESULTS"; rm -rf "$LOGS"; mkdir -p "$LOGS"
read -r PG_PORT SW_PORT PB_PORT SW_IDLE_PORT PB_IDLE_PORT SW_NOSTATS_PORT <<<"$("$PY" "$LIB" ports 6)"
log "work dir $WORK; ports: postgres $PG_PORT, shardwire $SW_PORT (statistics off: $SW_NOSTATS_PORT), pgbouncer $PB_PORT"

# ---------------------------------------------------------------- Postgres
log "initdb + start $PG_VERSION (fsync=off)"
printf '%s\n' "$SUPER_PASSWORD" >"$WORK/pwfile"
chown "$SERVER_OWNER" "$WORK/pwfile"; chmod 600 "$WORK/pwfile"
as_pg "$PG_BIN/initdb" -D "$WORK/pgdata" -U postgres --pwfile="$WORK/pwfile" \
    --auth=scram-sha-256 -E UTF8 --locale=C >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
rm -f "$WORK/pwfile"
cat >>"$WORK/pgdata/postgresql.conf" <<EOF

# benches/load.sh
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$WORK'
max_connections = 300
shared_buffers = 256MB
password_encryption = 'scram-sha-256'
# Benchmark only: no durability, the data is thrown away at the end.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
as_pg "$PG_BIN/pg_ctl" -D "$WORK/pgdata" -l "$WORK/postgres.log" -w -t 60 start >/dev/null \
    || { cat "$WORK/postgres.log" >&2; die "postgres did not start"; }
PG_STARTED=1

export PGHOST=127.0.0.1 PGSSLMODE=disable PGCONNECT_TIMEOUT=10
PGPASSWORD=$SUPER_PASSWORD "$PSQL" -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -U postgres -d postgres <<EOF
CREATE ROLE $BENCH_USER LOGIN PASSWORD '$BENCH_PASSWORD';
CREATE DATABASE $BENCH_DB OWNER $BENCH_USER;
EOF
export PGUSER=$BENCH_USER PGDATABASE=$BENCH_DB PGPASSWORD=$BENCH_PASSWORD

log "pgbench -i -s $BENCH_SCALE (directly)"
"$PGBENCH" -i -q -s "$BENCH_SCALE" -p "$PG_PORT" >"$LOGS/pgbench-init.txt" 2>&1 \
    || { cat "$LOGS/pgbench-init.txt" >&2; die "pgbench -i failed"; }

# ---------------------------------------------------------------- proxies
start_pgbouncer() { # name port pool_size -> sets LAST_PID
    local name=$1 port=$2 pool=$3 dir="$WORK/$1"
    mkdir -p "$dir"
    printf '"%s" "%s"\n' "$BENCH_USER" "$BENCH_PASSWORD" >"$dir/userlist.txt"
    cat >"$dir/pgbouncer.ini" <<EOF
[databases]
$BENCH_DB = host=127.0.0.1 port=$PG_PORT dbname=$BENCH_DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = $pool
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 11000
logfile = $dir/$name.log
pidfile = $dir/$name.pid
log_connections = 0
log_disconnections = 0
client_tls_sslmode = disable
server_tls_sslmode = disable
EOF
    chown -R "$SERVER_OWNER" "$dir"; chmod 600 "$dir/userlist.txt"
    "${AS_PG[@]}" "$PGBOUNCER" "$dir/pgbouncer.ini" >"$dir/$name.stdout.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    "$PY" "$LIB" wait-port "$port" 20 || { cat "$dir"/*.log >&2; die "$name did not start"; }
}

start_shardwire() { # name port pool_size [extra TOML] -> sets LAST_PID
    local name=$1 port=$2 pool=$3 extra=${4:-}
    cat >"$WORK/$name.toml" <<EOF
[proxy]
listen = ["127.0.0.1:$port"]

[pool]
mode = "transaction"
size = $pool

[[users]]
name = "$BENCH_USER"
password = "$BENCH_PASSWORD"
auth = "scram-sha-256"

[[databases]]
name = "$BENCH_DB"

[[shards]]
name = "shard0"
primary = "127.0.0.1:$PG_PORT"

$extra
EOF
    NO_COLOR=1 RUST_LOG=${SHARDWIRE_LOG:-info} "$SHARDWIRE" serve --config "$WORK/$name.toml" >"$WORK/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    "$PY" "$LIB" wait-port "$port" 20 || { cat "$WORK/$name.log" >&2; die "$name did not start"; }
}


alive_or_report() { # name pid logfile
    if ! kill -0 "$2" 2>/dev/null; then
        log "$1 (pid $2) is no longer running! last lines of $3:"
        tail -n 40 "$3" >&2 || true
        return 1
    fi
}

log "starting shardwire (transaction, pool $POOL_SIZE) and PgBouncer $PGBOUNCER_VERSION (transaction, pool $POOL_SIZE)"
start_shardwire shardwire "$SW_PORT" "$POOL_SIZE"; SW_PID=$LAST_PID
# The same proxy with statement statistics off: what they cost on the hot path.
start_shardwire shardwire-nostats "$SW_NOSTATS_PORT" "$POOL_SIZE" $'[observe]\nstatistics = false'
SW_NOSTATS_PID=$LAST_PID
start_pgbouncer pgbouncer "$PB_PORT" "$POOL_SIZE"; PB_PID=$LAST_PID

TARGETS=(direct shardwire shardwire-nostats pgbouncer)
declare -A PORT=([direct]=$PG_PORT [shardwire]=$SW_PORT [shardwire-nostats]=$SW_NOSTATS_PORT [pgbouncer]=$PB_PORT)
for t in "${TARGETS[@]}"; do
    out=$("$PSQL" -X -At -p "${PORT[$t]}" -c 'SELECT count(*) FROM pgbench_branches' 2>&1) \
        || die "sanity query through $t failed: $out"
    [[ $out == "$BENCH_SCALE" ]] || die "sanity query through $t returned '$out', expected $BENCH_SCALE"
done

# Warm the caches once, directly, so the first measured run is not the cold one.
"$PGBENCH" -S -n -c "$BENCH_CLIENTS" -j "$BENCH_THREADS" -T 3 -p "$PG_PORT" >/dev/null 2>&1 || true

# ---------------------------------------------------------------- pgbench runs
TSV="$WORK/runs.tsv"; : >"$TSV"
for round in $(seq "$BENCH_ROUNDS"); do
    for mode in simple prepared; do
        for t in "${TARGETS[@]}"; do
            f="$LOGS/pgbench-r$round-$mode-$t.txt"
            log "round $round: pgbench -S -M $mode -c $BENCH_CLIENTS -j $BENCH_THREADS -T $BENCH_SECONDS -> $t"
            set +e
            timeout --kill-after=10 $((BENCH_SECONDS + 60)) \
                "$PGBENCH" -S -n -M "$mode" -c "$BENCH_CLIENTS" -j "$BENCH_THREADS" -T "$BENCH_SECONDS" \
                -p "${PORT[$t]}" >"$f" 2>&1
            rc=$?
            set -e
            line=$("$PY" "$LIB" parse-pgbench "$f" "$rc")
            printf '%s\t%s\t%s\t%s\n' "$round" "$mode" "$t" "$line" >>"$TSV"
            log "  -> $(cut -f1-3 <<<"$line" | tr '\t' ' ') $(cut -f4 <<<"$line" | cut -c1-150)"
            alive_or_report shardwire "$SW_PID" "$WORK/shardwire.log" || die "shardwire died during the $mode run against $t"
            alive_or_report shardwire-nostats "$SW_NOSTATS_PID" "$WORK/shardwire-nostats.log" || die "shardwire (statistics off) died"
            alive_or_report pgbouncer "$PB_PID" "$WORK/pgbouncer/pgbouncer.log" || die "pgbouncer died"
        done
    done
done
SW_RSS_AFTER_LOAD=$(awk '/VmRSS/{print $2}' "/proc/$SW_PID/status")
stop_pid "$SW_PID"; stop_pid "$SW_NOSTATS_PID"; stop_pid "$PB_PID"

# ---------------------------------------------------------------- idle connections
IDLE_JSONL="$WORK/idle.jsonl"; : >"$IDLE_JSONL"
if [[ $IDLE_CLIENTS -gt 0 ]]; then
    log "idle test: shardwire (transaction, pool 1), $IDLE_CLIENTS clients"
    start_shardwire shardwire-idle "$SW_IDLE_PORT" 1
    timeout --kill-after=10 $((900 * ${IDLE_ROUNDS:-1})) "$PY" "$LIB" idle --name "shardwire (pool 1)" --pid "$LAST_PID" \
        --port "$SW_IDLE_PORT" --user "$BENCH_USER" --password "$BENCH_PASSWORD" --database "$BENCH_DB" \
        -n "$IDLE_CLIENTS" --concurrency "$IDLE_CONCURRENCY" --rounds "${IDLE_ROUNDS:-1}" --out "$IDLE_JSONL" >&2 \
        || log "idle client against shardwire failed or timed out"
    alive_or_report shardwire-idle "$LAST_PID" "$WORK/shardwire-idle.log" || log "shardwire died during the idle test"
    stop_pid "$LAST_PID"

    log "idle test: PgBouncer (transaction, pool 1, max_client_conn 11000), $IDLE_CLIENTS clients"
    start_pgbouncer pgbouncer-idle "$PB_IDLE_PORT" 1
    timeout --kill-after=10 $((900 * ${IDLE_ROUNDS:-1})) "$PY" "$LIB" idle --name "PgBouncer $PGBOUNCER_VERSION (pool 1)" --pid "$LAST_PID" \
        --port "$PB_IDLE_PORT" --user "$BENCH_USER" --password "$BENCH_PASSWORD" --database "$BENCH_DB" \
        -n "$IDLE_CLIENTS" --concurrency "$IDLE_CONCURRENCY" --rounds "${IDLE_ROUNDS:-1}" --out "$IDLE_JSONL" >&2 \
        || log "idle client against pgbouncer failed or timed out"
    stop_pid "$LAST_PID"
fi

# ---------------------------------------------------------------- report
SW_LOG_WARN=$(grep -cE '\b(WARN|ERROR)\b|panicked' "$WORK/shardwire.log" || true)
{
    echo "## shardwire load benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/{print $2}') GiB RAM, kernel $(uname -r)"
    echo "- $PG_VERSION, fsync=off, synchronous_commit=off, full_page_writes=off, shared_buffers=256MB, max_connections=300, SCRAM auth"
    echo "- PgBouncer $PGBOUNCER_VERSION; shardwire at $SW_REV (state of the tree when built), release build"
    echo "- pgbench -S, scale $BENCH_SCALE, -c $BENCH_CLIENTS -j $BENCH_THREADS -T $BENCH_SECONDS, $BENCH_ROUNDS round(s), targets interleaved; everything on this one box over 127.0.0.1"
    echo "- load average (1/5/15 min) at the start: $LOAD_START, at the end: $(cut -d' ' -f1-3 /proc/loadavg) (anything above ~2 means other work shared the 2 cores)"
    echo
    echo "### pgbench -S"
    echo
    "$PY" "$LIB" table "$TSV" --pgbouncer-version "$PGBOUNCER_VERSION"
    echo
    echo "shardwire RSS after the load runs: $((SW_RSS_AFTER_LOAD / 1024)) MiB; WARN/ERROR lines in its log: $SW_LOG_WARN"
    if [[ $IDLE_CLIENTS -gt 0 ]]; then
        echo
        echo "### $IDLE_CLIENTS idle client connections (asyncpg, full startup + SCRAM each), proxy RSS from /proc/PID/status"
        echo
        "$PY" "$LIB" idle-table "$IDLE_JSONL"
    fi
} >"$RESULTS/latest.md"
cat "$RESULTS/latest.md"
cp -f "$TSV" "$IDLE_JSONL" "$LOGS"/ 2>/dev/null || true
log "results written to $RESULTS/latest.md"
