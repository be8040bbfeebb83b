#!/usr/bin/env bash
# The whole test suite: set-up (idempotent; PostgreSQL, and Chromium + chromedriver for the
# browser test), then every workspace test, SQLite and PostgreSQL.
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
cargo test --workspace --locked "$@"
