#!/usr/bin/env bash
# Runs every test of shardwire: unit tests, integration tests against real
# local Postgres clusters, and the benchmarks in test mode. Installs what is
# missing first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# Benchmarks run once in test mode (they must keep working), then every
# unit and integration test; the summary of the last ends the output.
cargo test --benches --locked
cargo test --lib --bins --tests --locked
