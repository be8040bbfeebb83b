#!/usr/bin/env bash
# The demo: set-up (idempotent), build, then run the vision pipeline on the shared fixtures:
# enroll one photo per person and say who is who on every other photo.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
# shellcheck disable=SC1091
source .cache/env.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/rollcall-target}"
cargo build --release --locked -p rollcall
"$CARGO_TARGET_DIR/release/rollcall" demo --fixtures "${ROLLCALL_FIXTURES_DIR:-$ROOT/../shared/fixtures}" "$@"
