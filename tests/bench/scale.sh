#!/usr/bin/env bash
# Scale benchmark (docs/BENCHMARKS.md "Scale"): accounts of N devices on
# SQLite and on PostgreSQL (a private server the bench starts); time,
# bytes, requests and SQL statements of a sync with nothing new, a sync
# after one change, `mesh ssh authorized-keys` cold and cached,
# `mesh device revoke`, the agent's quick check; then signed-request
# throughput on one and two portal processes.
# Usage: tests/bench/scale.sh   (MESH_SCALE_SIZES=10,100 by default;
# MESH_SCALE_BACKENDS=sqlite or postgres; MESH_SCALE_KEEP=DIR keeps the SQLite accounts
# for later runs: docs/BENCHMARKS.md shows the 1,000-device command)
# MESH_BENCH_SMOKE=1 (CI): the debug build, 3 devices, 5 requests a
# client, and any FAILED row fails the run; its numbers mean nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -n "${MESH_BENCH_SMOKE:-}" ]; then
  export MESH_SCALE_SIZES=${MESH_SCALE_SIZES:-3} MESH_SCALE_REQUESTS=${MESH_SCALE_REQUESTS:-5}
  cargo build -q -p mesh-agent -p mesh-portal
  run() { cargo test -q -p mesh-tests --bench scale; }
else
  cargo build --release -q -p mesh-agent -p mesh-portal
  run() { cargo bench -q -p mesh-tests --bench scale; }
fi
OUT=$(mktemp /tmp/mesh-scale.XXXXXX)
trap 'rm -f "$OUT"' EXIT
# The operations, with every statement logged so that they can be counted.
MESH_PG_LOG_STATEMENTS=1 MESH_SCALE_SKIP_THROUGHPUT=1 run | tee "$OUT"
# Throughput, without the statement log.
MESH_SCALE_SKIP_OPS=1 run | tee -a "$OUT"
if [ -n "${MESH_BENCH_SMOKE:-}" ] && grep -q FAILED "$OUT"; then
  echo "scale.sh: a measurement failed at smoke size" >&2
  exit 1
fi
