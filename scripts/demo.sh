#!/usr/bin/env bash
# The demo: set-up (idempotent), build, then run the vision pipeline on the shared fixtures:
# enroll one photo per person and say who is who on every other photo; then play camera-sim
# scenario (a), one afternoon at a tutoring school, through the whole product.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
# shellcheck disable=SC1091
source .cache/env.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/rollcall-target}"
cargo build --release --locked -p rollcall
"$CARGO_TARGET_DIR/release/rollcall" demo --fixtures "${ROLLCALL_FIXTURES_DIR:-$ROOT/../shared/fixtures}" "$@"
echo
echo "== camera-sim scenario (a): one afternoon, 6 students, one late, one absent, a group, two strangers =="
"$CARGO_TARGET_DIR/release/rollcall" run-scenario camera-sim/scenarios/afternoon.toml
