#!/usr/bin/env bash
# The whole test suite: set-up (idempotent; PostgreSQL, and Chromium + chromedriver for the
# browser test), `cargo fmt --check` and clippy (`-D warnings`), then every workspace test,
# SQLite and PostgreSQL.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WITH_POSTGRES=1 WITH_BROWSER=1 bash scripts/setup.sh
# shellcheck disable=SC1091
source .cache/env.sh
# Reuse a target directory outside the clone when one exists (CI runs in fresh clones).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/rollcall-target}"
export ROLLCALL_TEST_DATABASE_URL="${ROLLCALL_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
export ROLLCALL_MODELS_DIR="${ROLLCALL_MODELS_DIR:-$ROOT/../shared/models}"
export ROLLCALL_FIXTURES_DIR="${ROLLCALL_FIXTURES_DIR:-$ROOT/../shared/fixtures}"
export RUST_BACKTRACE=1
# Checks that keep the code so (issue 18): formatting, then clippy with every warning an error,
# before the tests. Clippy checks into the same target directory as the tests (its metadata
# builds sit beside theirs), so a warm CI machine re-checks only the crates that changed.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# One Qdrant server node for the remote gallery tests (conformance, privacy, run-scenario and
# serve against a server): ../shared/tools/qdrant on free loopback ports, storage in a
# temporary directory, stopped by its pid when this script exits. Its gRPC URL is exported as
# ROLLCALL_TEST_QDRANT_URL, a test-only name, so that nothing which must stay embedded (the
# tests spawn rollcall with QDRANT_URL removed) turns remote by accident. A missing binary
# fails the suite here.
QDRANT_BIN="${ROLLCALL_QDRANT_BIN:-$ROOT/../shared/tools/qdrant}"
if [ ! -x "$QDRANT_BIN" ]; then
  echo "test.sh: no Qdrant server binary at $QDRANT_BIN (see ../shared/tools/README.md);" \
       "the remote gallery tests need it" >&2
  exit 1
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
QDRANT_DIR="$(mktemp -d)"
QDRANT_HTTP_PORT="$(free_port)"
QDRANT_GRPC_PORT="$(free_port)"
while [ "$QDRANT_GRPC_PORT" = "$QDRANT_HTTP_PORT" ]; do QDRANT_GRPC_PORT="$(free_port)"; done
cd "$QDRANT_DIR"
QDRANT__SERVICE__HOST=127.0.0.1 \
QDRANT__SERVICE__HTTP_PORT="$QDRANT_HTTP_PORT" QDRANT__SERVICE__GRPC_PORT="$QDRANT_GRPC_PORT" \
QDRANT__STORAGE__STORAGE_PATH="$QDRANT_DIR/storage" \
QDRANT__STORAGE__SNAPSHOTS_PATH="$QDRANT_DIR/snapshots" \
QDRANT__TELEMETRY_DISABLED=true \
  "$QDRANT_BIN" >"$QDRANT_DIR/qdrant.log" 2>&1 &
# (started in the temporary directory below: the server writes .qdrant-initialized in its
# working directory)
QDRANT_PID=$!
cd "$ROOT"
stop_qdrant() {
  kill "$QDRANT_PID" 2>/dev/null || true
  wait "$QDRANT_PID" 2>/dev/null || true
  rm -rf "$QDRANT_DIR"
}
trap stop_qdrant EXIT
# GET /readyz over bash's /dev/tcp (no curl needed): 0 when it answers 200
qdrant_ready() {
  local line
  { exec 3<>"/dev/tcp/127.0.0.1/$QDRANT_HTTP_PORT"; } 2>/dev/null || return 1
  printf 'GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
  IFS= read -r -t 2 line <&3 || line=""
  exec 3<&- 3>&-
  [[ "$line" == "HTTP/1.1 200"* ]]
}
for _ in $(seq 1 300); do
  if qdrant_ready; then break; fi
  if ! kill -0 "$QDRANT_PID" 2>/dev/null; then break; fi
  sleep 0.2
done
if ! qdrant_ready; then
  echo "test.sh: the Qdrant server did not become ready; its log:" >&2
  tail -n 30 "$QDRANT_DIR/qdrant.log" >&2 || true
  exit 1
fi
export ROLLCALL_TEST_QDRANT_URL="http://127.0.0.1:$QDRANT_GRPC_PORT"
echo "test.sh: Qdrant $("$QDRANT_BIN" --version 2>/dev/null | head -n 1) at $ROLLCALL_TEST_QDRANT_URL (pid $QDRANT_PID)"

# The CUDA path (`--features cuda`, issue 22) compiles under clippy, and where the provider
# cannot be registered (this CPU-only libonnxruntime, no GPU) `--cuda` runs on the CPU with the
# CPU's vectors (services/vision/tests/fixtures.rs). No GPU is used here.
cargo clippy -p rollcall-vision --all-targets --features cuda --locked -- -D warnings
# (by its exact name, and the run must report it passed: a filter that matched nothing
# would pass with 0 tests)
CUDA_TEST=cuda_requested_runs_where_it_can_and_says_where
CUDA_OUT="$(cargo test -p rollcall-vision --features cuda --locked --test fixtures -- --exact "$CUDA_TEST")"
echo "$CUDA_OUT"
if ! grep -q "^test result: ok. 1 passed" <<<"$CUDA_OUT"; then
  echo "test.sh: $CUDA_TEST did not run and pass" >&2
  exit 1
fi

cargo test --workspace --locked "$@"
