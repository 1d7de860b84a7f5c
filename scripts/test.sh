#!/usr/bin/env bash
# Runs every test of shardwire: unit tests, integration tests against real
# local Postgres clusters, and the benchmarks in test mode. Installs what is
# missing first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
