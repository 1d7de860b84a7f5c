#!/usr/bin/env bash
# Read-replica load benchmark: a read-heavy pgbench mix (90 % point SELECTs,
# 10 % point UPDATEs on pgbench_accounts) directly against the primary, then
# through shardwire with 1 and with 2 streaming replicas, all in this one run
# on this machine. Prints TPS and p99 latency with their ratios to direct,
# and how many SELECTs each server executed (so one sees whether reads
# reached the replicas).
#
#   benches/replicas.sh                  # full run (15 s per pgbench run)
#   BENCH_SECONDS=3 benches/replicas.sh  # smoke run
#
# Environment:
#   BENCH_SECONDS   duration of each measured pgbench run     (default 15, 1..600)
#   BENCH_CLIENTS   pgbench -c                                (default 16)
#   BENCH_THREADS   pgbench -j                                (default 2)
#   BENCH_SCALE     pgbench -i -s                             (default 10)
#   BENCH_PROTOCOL  pgbench -M: simple, extended or prepared  (default simple)
#   BENCH_RYW       [replicas] read_your_writes: true or false (default true)
#   BENCH_PROBE_MS  [replicas] probe_interval_ms (default: the config default)
#   PG_BIN          folder of initdb/pg_ctl/postgres/pg_basebackup (default: pg_config --bindir)
#   SKIP_BUILD=1    do not run cargo build --release
#   SHARDWIRE_LOG   RUST_LOG for the proxy                    (default info)
#
# Setup: one Postgres primary (initdb, fsync off: benchmark only) and two hot
# standbys made with `pg_basebackup -R -X stream` after `pgbench -i`, each on
# its own free 127.0.0.1 port; shardwire in transaction mode, pool 8 per
# server, `[replicas]` at its defaults. The pgbench scripts are in
# benches/replicas/ (select.sql@9, update.sql@1).
#
# Output: the markdown tables on stdout and in
# benches/results/replicas-latest.md; pgbench outputs, the proxy's and the
# servers' logs in benches/results/logs/replicas/ (git-ignored). Everything
# it starts is stopped and its temporary directory removed on exit, also on
# failure or Ctrl-C. Run as root (Postgres then runs as the `postgres` OS
# user) or as a user that can run Postgres itself. Only 127.0.0.1 is used.

set -Eeuo pipefail

BENCH_SECONDS=${BENCH_SECONDS:-15}
BENCH_CLIENTS=${BENCH_CLIENTS:-16}
BENCH_THREADS=${BENCH_THREADS:-2}
BENCH_SCALE=${BENCH_SCALE:-10}
BENCH_PROTOCOL=${BENCH_PROTOCOL:-simple}
BENCH_RYW=${BENCH_RYW:-true}
POOL_SIZE=8
WARMUP_SECONDS=2

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LOADLIB="$HERE/loadlib.py"
REPORT="$HERE/replicas/report.py"
SCRIPTS="$HERE/replicas"
RESULTS="$HERE/results"
LOGS="$RESULTS/logs/replicas"
PY=${PYTHON:-python3}

BENCH_USER=bench
BENCH_DB=bench
BENCH_PASSWORD="bench-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
SUPER_PASSWORD="super-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"

log() { printf '[replicas.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $BENCH_SECONDS =~ ^[0-9]+$ && $BENCH_SECONDS -ge 1 && $BENCH_SECONDS -le 600 ]] \
    || die "BENCH_SECONDS must be a whole number of seconds from 1 to 600 (got '$BENCH_SECONDS')"
[[ $BENCH_RYW =~ ^(true|false)$ ]] || die "BENCH_RYW must be true or false (got '$BENCH_RYW')"
[[ $BENCH_PROTOCOL =~ ^(simple|extended|prepared)$ ]] \
    || die "BENCH_PROTOCOL must be simple, extended or prepared (got '$BENCH_PROTOCOL')"

# ---------------------------------------------------------------- cleanup
WORK=""
PIDS=()        # shardwire processes we started
DATA_DIRS=()   # data directories of running servers, in start order
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        stop_pid "$pid"
    done
    # Replicas (started last) first, so the primary has no WAL sender to wait for.
    local i
    for ((i = ${#DATA_DIRS[@]} - 1; i >= 0; i--)); do
        as_pg "$PG_BIN/pg_ctl" -D "${DATA_DIRS[i]}" -m fast -w -t 30 stop >/dev/null 2>&1 \
            || as_pg "$PG_BIN/pg_ctl" -D "${DATA_DIRS[i]}" -m immediate -w stop >/dev/null 2>&1
    done
    if [[ -n $WORK && -d $WORK ]]; then
        mkdir -p "$LOGS"
        cp -f "$WORK"/*.log "$WORK"/*.toml "$LOGS"/ 2>/dev/null
        rm -rf "$WORK"
    fi
    [[ $rc != 0 ]] && log "failed (exit $rc); logs in $LOGS"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


REQUIRED_PG_TOOLS="initdb pg_ctl postgres pg_basebackup"
# shellcheck source=benches/common.sh
source "$HERE/common.sh"

# ---------------------------------------------------------------- build
build_shardwire

# ---------------------------------------------------------------- work dir, ports
WORK=$(mktemp -d /tmp/shardwire-replicas.XXXXXX)
chmod 755 "$WORK"
chown "$SERVER_OWNER" "$WORK"
mkdir -p "$RESULTS"; rm -rf "$LOGS"; mkdir -p "$LOGS"
read -r PG_PORT R1_PORT R2_PORT SW0_PORT SW1_PORT SW2_PORT <<<"$("$PY" "$LOADLIB" ports 6)"
declare -A PORT=([primary]=$PG_PORT [replica1]=$R1_PORT [replica2]=$R2_PORT)
SERVERS=(primary replica1 replica2)
log "work dir $WORK; ports: primary $PG_PORT, replicas $R1_PORT $R2_PORT, shardwire $SW0_PORT $SW1_PORT $SW2_PORT"

# ---------------------------------------------------------------- Postgres
start_server() { # name: pg_ctl start of $WORK/<name>, remembered for cleanup
    local name=$1
    as_pg "$PG_BIN/pg_ctl" -D "$WORK/$name" -l "$WORK/$name.log" -w -t 60 start >/dev/null \
        || { tail -n 40 "$WORK/$name.log" >&2; die "$name did not start"; }
    DATA_DIRS+=("$WORK/$name")
}

log "initdb + start the primary, $PG_VERSION (fsync=off)"
printf '%s\n' "$SUPER_PASSWORD" >"$WORK/pwfile"
chown "$SERVER_OWNER" "$WORK/pwfile"; chmod 600 "$WORK/pwfile"
as_pg "$PG_BIN/initdb" -D "$WORK/primary" -U postgres --pwfile="$WORK/pwfile" \
    --auth=scram-sha-256 -E UTF8 --locale=C >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
rm -f "$WORK/pwfile"
cat >>"$WORK/primary/postgresql.conf" <<EOF

# benches/replicas.sh (the replicas get a copy of this file)
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$WORK'
max_connections = 300
shared_buffers = 256MB
password_encryption = 'scram-sha-256'
wal_level = replica
max_wal_senders = 10
wal_keep_size = 512MB
hot_standby = on
# Benchmark only: no durability, the data is thrown away at the end.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
start_server primary

export PGHOST=127.0.0.1 PGSSLMODE=disable PGCONNECT_TIMEOUT=10
super_psql() { # port sql...: psql as the superuser into the bench database
    local port=$1; shift
    PGPASSWORD=$SUPER_PASSWORD "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -p "$port" -U postgres -d "$BENCH_DB" "$@"
}
PGPASSWORD=$SUPER_PASSWORD "$PSQL" -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -U postgres -d postgres <<EOF
CREATE ROLE $BENCH_USER LOGIN PASSWORD '$BENCH_PASSWORD';
CREATE DATABASE $BENCH_DB OWNER $BENCH_USER;
EOF
export PGUSER=$BENCH_USER PGDATABASE=$BENCH_DB PGPASSWORD=$BENCH_PASSWORD

log "pgbench -i -s $BENCH_SCALE (on the primary)"
"$PGBENCH" -i -q -s "$BENCH_SCALE" -p "$PG_PORT" >"$LOGS/pgbench-init.txt" 2>&1 \
    || { cat "$LOGS/pgbench-init.txt" >&2; die "pgbench -i failed"; }

for i in 1 2; do
    name=replica$i
    log "pg_basebackup -R -X stream --checkpoint=fast -> $name (port ${PORT[$name]})"
    PGPASSWORD=$SUPER_PASSWORD as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" -U postgres \
        -D "$WORK/$name" -R -X stream --checkpoint=fast --no-sync >"$WORK/$name-basebackup.log" 2>&1 \
        || { cat "$WORK/$name-basebackup.log" >&2; die "pg_basebackup for $name failed"; }
    cat >>"$WORK/$name/postgresql.conf" <<EOF

# benches/replicas.sh: $name
port = ${PORT[$name]}
cluster_name = '$name'
EOF
    start_server "$name"
done

# Both replicas stream from the primary before anything is measured.
for _ in $(seq 300); do
    streaming=$(super_psql "$PG_PORT" -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
    [[ $streaming == 2 ]] && break
    sleep 0.1
done
[[ $streaming == 2 ]] || die "only $streaming of 2 replicas stream from the primary"
for name in replica1 replica2; do
    [[ $(super_psql "${PORT[$name]}" -c 'SELECT pg_is_in_recovery()') == t ]] || die "$name is not a hot standby"
done

# Warm every server's cache directly (read-only, not reported).
for name in "${SERVERS[@]}"; do
    "$PGBENCH" -S -n -c "$BENCH_CLIENTS" -j "$BENCH_THREADS" -T "$WARMUP_SECONDS" -p "${PORT[$name]}" >/dev/null 2>&1 \
        || die "warm-up pgbench -S against $name failed"
done

# ---------------------------------------------------------------- shardwire
start_shardwire() { # name port replica-ports... -> sets LAST_PID
    local name=$1 port=$2; shift 2
    local replicas="" p
    for p in "$@"; do replicas+="${replicas:+, }\"127.0.0.1:$p\""; done
    cat >"$WORK/$name.toml" <<EOF
[proxy]
listen = ["127.0.0.1:$port"]

[pool]
mode = "transaction"
size = $POOL_SIZE

[[users]]
name = "$BENCH_USER"
password = "$BENCH_PASSWORD"
auth = "scram-sha-256"

[[databases]]
name = "$BENCH_DB"

[[shards]]
name = "shard0"
primary = "127.0.0.1:$PG_PORT"
replicas = [$replicas]

[replicas]
read_your_writes = $BENCH_RYW
${BENCH_PROBE_MS:+probe_interval_ms = $BENCH_PROBE_MS}
EOF
    "$SHARDWIRE" check-config "$WORK/$name.toml" >"$WORK/$name-check.log" 2>&1 \
        || { cat "$WORK/$name-check.log" >&2; die "shardwire rejects the generated $name.toml"; }
    NO_COLOR=1 RUST_LOG=${SHARDWIRE_LOG:-info} "$SHARDWIRE" serve --config "$WORK/$name.toml" >"$WORK/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    "$PY" "$LOADLIB" wait-port "$port" 20 || { cat "$WORK/$name.log" >&2; die "$name did not start"; }
    local out
    out=$("$PSQL" -X -At -p "$port" -c 'SELECT count(*) FROM pgbench_branches' 2>&1) \
        || die "sanity query through $name failed: $out"
    [[ $out == "$BENCH_SCALE" ]] || die "sanity query through $name returned '$out', expected $BENCH_SCALE"
    # Let the proxy's replica probe (every second by default) see the replicas.
    sleep 2.5
}

# ---------------------------------------------------------------- measuring
snapshot() { # file: one line per server (see benches/replicas/report.py)
    local name
    for name in "${SERVERS[@]}"; do
        printf '%s\t%s\n' "$name" "$(super_psql "${PORT[$name]}" -F $'\t' -c "
            SELECT coalesce(t.idx_scan, 0), coalesce(t.n_tup_upd, 0), d.xact_commit
            FROM pg_stat_database d
            LEFT JOIN pg_stat_user_tables t ON t.relname = 'pgbench_accounts'
            WHERE d.datname = current_database()")"
    done >"$1"
}

# A backend publishes its statistics when it exits (while it lives, only
# about once a second): wait until the bench role has no session left.
wait_sessions_gone() {
    local name n
    for name in "${SERVERS[@]}"; do
        for _ in $(seq 200); do
            n=$(super_psql "${PORT[$name]}" -c "SELECT count(*) FROM pg_stat_activity WHERE usename = '$BENCH_USER'")
            [[ $n == 0 ]] && break
            sleep 0.1
        done
        [[ $n == 0 ]] || log "warning: $n sessions of $BENCH_USER still open on $name; its counts may be short"
    done
}

TSV="$WORK/runs.tsv"; : >"$TSV"
measure() { # run label port [proxy-pid]: one measured pgbench run
    local run=$1 label=$2 port=$3 proxy_pid=${4:-} dir="$WORK/pgbench-$1" rc
    local out="$LOGS/pgbench-$run.txt"
    mkdir -p "$dir"
    snapshot "$WORK/$run.before"
    log "$run: pgbench -M $BENCH_PROTOCOL -c $BENCH_CLIENTS -j $BENCH_THREADS -T $BENCH_SECONDS, select.sql@9 update.sql@1 -> port $port"
    set +e
    timeout --kill-after=10 $((BENCH_SECONDS + 60)) \
        "$PGBENCH" -n -M "$BENCH_PROTOCOL" -c "$BENCH_CLIENTS" -j "$BENCH_THREADS" -T "$BENCH_SECONDS" \
        -s "$BENCH_SCALE" -f "$SCRIPTS/select.sql@9" -f "$SCRIPTS/update.sql@1" \
        -l --log-prefix="$dir/pgbench_log" -p "$port" >"$out" 2>&1
    rc=$?
    set -e
    if [[ -n $proxy_pid ]]; then
        kill -0 "$proxy_pid" 2>/dev/null || { tail -n 40 "$WORK/$run.log" >&2; die "shardwire died during the $run run"; }
        stop_pid "$proxy_pid"
    fi
    wait_sessions_gone
    snapshot "$WORK/$run.after"
    log "  -> $("$PY" "$REPORT" record --run "$run" --label "$label" --pgbench-out "$out" --rc "$rc" \
        --log-dir "$dir" --before "$WORK/$run.before" --after "$WORK/$run.after" --out "$TSV")"
    rm -rf "$dir"   # the per-transaction logs are large
}

measure direct "Postgres 15 primary, direct" "$PG_PORT"

# The proxy without replicas: its plain forwarding path, the baseline of
# what the read/write split itself costs.
start_shardwire shardwire-0-replicas "$SW0_PORT"
measure shardwire-0-replicas "shardwire, no replica (primary only)" "$SW0_PORT" "$LAST_PID"

start_shardwire shardwire-1-replica "$SW1_PORT" "$R1_PORT"
measure shardwire-1-replica "shardwire, 1 replica" "$SW1_PORT" "$LAST_PID"

start_shardwire shardwire-2-replicas "$SW2_PORT" "$R1_PORT" "$R2_PORT"
measure shardwire-2-replicas "shardwire, 2 replicas" "$SW2_PORT" "$LAST_PID"

# ---------------------------------------------------------------- report
SW_LOG_WARN=$(cat "$WORK"/shardwire-*.log | grep -cE '\b(WARN|ERROR)\b|panicked' || true)
{
    echo "## shardwire read-replica benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/{print $2}') GiB RAM, kernel $(uname -r)"
    echo "- $PG_VERSION: 1 primary + 2 hot standbys (pg_basebackup -R, async streaming), fsync=off, synchronous_commit=off, full_page_writes=off, shared_buffers=256MB"
    echo "- shardwire at $SW_REV (state of the tree when built), release build, transaction mode, pool $POOL_SIZE per server, [replicas] defaults but read_your_writes = $BENCH_RYW"
    echo "- pgbench -M $BENCH_PROTOCOL, scale $BENCH_SCALE, -c $BENCH_CLIENTS -j $BENCH_THREADS -T $BENCH_SECONDS, -f select.sql@9 -f update.sql@1 (point SELECT / point UPDATE by random aid); p99 from pgbench -l per-transaction logs"
    echo "- everything (3 Postgres servers, proxy, pgbench) on this one box over 127.0.0.1; load average (1/5/15 min) at the start: $LOAD_START, at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    "$PY" "$REPORT" table "$TSV"
    echo
    echo "WARN/ERROR lines in the proxies' logs: $SW_LOG_WARN"
} >"$RESULTS/replicas-latest.md"
cat "$RESULTS/replicas-latest.md"
cp -f "$TSV" "$WORK"/*.before "$WORK"/*.after "$LOGS"/ 2>/dev/null || true
log "results written to $RESULTS/replicas-latest.md"
