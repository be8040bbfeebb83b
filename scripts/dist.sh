#!/usr/bin/env bash
# The shipped binary: `rollcall` built with the release profile (line tables for every crate),
# its debug info moved out into `rollcall.debug` beside it, and the binary stripped.
#
#   $DIST_DIR/rollcall         stripped (no debug info, no symbol table); its .gnu_debuglink
#                              and build id name rollcall.debug
#   $DIST_DIR/rollcall.debug   symbols and DWARF line tables, zlib-compressed
#
# Keep the two together: gdb, perf, `addr2line -e rollcall.debug` and Rust backtraces
# (RUST_BACKTRACE=1) find the file beside the binary. Default DIST_DIR: $CARGO_TARGET_DIR/dist.
#
# Why objcopy and not only Cargo's profile settings (checked with rustc 1.95 on Linux): with
# `split-debuginfo = "packed"` the .dwp gets the DWARF entries but the line tables stay in the
# executable, so it hardly shrinks; adding `strip = "debuginfo"` then removes the skeleton and
# the line tables the .dwp needs, and addresses no longer resolve to file:line.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
[ -f .cache/env.sh ] && source .cache/env.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/rollcall-target}"
OUT="${DIST_DIR:-$CARGO_TARGET_DIR/dist}"
cargo build --release --locked -p rollcall
BIN="$(cd "$CARGO_TARGET_DIR" && pwd)/release/rollcall"
mkdir -p "$OUT"
rm -f "$OUT/rollcall" "$OUT/rollcall.debug"
objcopy --only-keep-debug --compress-debug-sections=zlib "$BIN" "$OUT/rollcall.debug"
# --add-gnu-debuglink records the debug file's name and CRC; run from $OUT so it is found there
(cd "$OUT" && objcopy --strip-all --add-gnu-debuglink=rollcall.debug "$BIN" rollcall)
ls -l "$BIN" "$OUT/rollcall" "$OUT/rollcall.debug" >&2
