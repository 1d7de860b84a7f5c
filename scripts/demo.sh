#!/usr/bin/env bash
# Runs `shardwire demo` on a fresh machine: installs what is missing, builds
# in release mode, starts local Postgres clusters with demo data and serves
# them on 127.0.0.1:6432. Extra arguments go to `shardwire demo`
# (--port, --dir, --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec cargo run --release --quiet -- demo "$@"
