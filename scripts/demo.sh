#!/usr/bin/env bash
# The demo: set-up (idempotent), build, then
#  1. the vision pipeline on the shared fixtures: enroll one photo per person and say who is who
#     on every other photo;
#  2. camera-sim scenario (a), one afternoon at a tutoring school, through the whole product
#     (`rollcall run-scenario`), into .cache/demo-data;
#  3. when run from a terminal: the staff web app on that data (http://127.0.0.1:8080, user
#     `demo`, password `demo-password`) until Ctrl-C. Set DEMO_SERVE=0 to skip, 1 to force.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
# shellcheck disable=SC1091
source .cache/env.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/rollcall-target}"
cargo build --release --locked -p rollcall
BIN="$CARGO_TARGET_DIR/release/rollcall"
"$BIN" demo --fixtures "${ROLLCALL_FIXTURES_DIR:-$ROOT/../shared/fixtures}" "$@"

echo
echo "== camera-sim scenario (a): one afternoon, 6 students, one late, one absent, a group, two strangers =="
DATA="$ROOT/.cache/demo-data"
rm -rf "$DATA"
# a template key for the demo's data (never committed; see PRIVACY.md)
ROLLCALL_TEMPLATE_KEYS="$("$BIN" privacy new-key --id demo | sed -n 's/.*"entry":"\([^"]*\)".*/\1/p')"
export ROLLCALL_TEMPLATE_KEYS
"$BIN" run-scenario camera-sim/scenarios/afternoon.toml --data "$DATA"

SERVE="${DEMO_SERVE:-auto}"
if [ "$SERVE" = "auto" ]; then
  if [ -t 0 ] && [ -t 1 ]; then SERVE=1; else SERVE=0; fi
fi
if [ "$SERVE" = "1" ]; then
  echo demo-password | "$BIN" admin create --data "$DATA" --username demo --role admin --password-stdin >/dev/null
  cat > "$DATA/serve.toml" <<TOML
data = "$DATA"
listen = "127.0.0.1:${DEMO_PORT:-8080}"
TOML
  echo
  echo "== staff web app: http://127.0.0.1:${DEMO_PORT:-8080}/  (user demo, password demo-password; Ctrl-C stops) =="
  exec "$BIN" serve --config "$DATA/serve.toml"
else
  echo
  echo "(staff web app on this data: DEMO_SERVE=1 bash scripts/demo.sh)"
fi
