#!/usr/bin/env bash
# The fuzz targets (issue 19; tests/common/fuzzkit.rs). Without arguments: each target's suite
# count from a fixed seed, as the test command runs them. `--long`: ROLLCALL_FUZZ_CASES inputs
# per target (default 100000) from a random seed, printing per-target counts; long runs go
# here, never in CI. A failing input is saved under tests/fuzz/crashes/ and the run fails.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
# shellcheck disable=SC1091
source .cache/env.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/rollcall-target}"
if [ "${1:-}" = "--long" ]; then
  export ROLLCALL_FUZZ_LONG=1
  export ROLLCALL_FUZZ_CASES="${ROLLCALL_FUZZ_CASES:-100000}"
fi
cargo test --workspace --locked --test fuzz -- --nocapture --test-threads 1
cargo test --workspace --locked --bin rollcall fuzz_serve_config -- --nocapture
cargo test --workspace --locked --test api api_json_bodies_fuzzed -- --nocapture
