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
cargo test --workspace --locked "$@"
