#!/usr/bin/env bash
# Idempotent set-up for rollcall on a Debian machine. Safe to run many times.
#  - apt packages the build needs (OpenCV headers, clang for the opencv bindings)
#  - a project-local Python venv with onnxruntime==1.31.1 (its libonnxruntime.so.1.31.1 is
#    what the Rust `ort` crate loads through ORT_DYLIB_PATH) plus numpy/opencv for the
#    Python reference benchmarks, and openapi-python-client (pinned) for the API's
#    generated-client test
#  - with --postgres: a running PostgreSQL on 127.0.0.1:5432 with database `test`
# Prints the environment to export (source scripts/env.sh afterwards).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
ORT_VERSION=1.31.1
mkdir -p "$CACHE"

log() { echo "[setup] $*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_pkgs=()
for p in libopencv-dev clang libclang-dev pkg-config python3-venv; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if [ "${WITH_POSTGRES:-0}" = 1 ] && ! command -v pg_ctlcluster >/dev/null 2>&1; then
  need_pkgs+=(postgresql)
fi
if [ "${WITH_BROWSER:-0}" = 1 ]; then
  for p in chromium chromium-driver; do dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p"); done
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing apt packages: ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# onnxruntime (the wheel's shared library) in a project-local venv
VENV="$CACHE/venv"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import onnxruntime, numpy, cv2; assert onnxruntime.__version__=='$ORT_VERSION'" 2>/dev/null; then
  log "installing onnxruntime==$ORT_VERSION numpy opencv-python-headless into the venv"
  "$VENV/bin/pip" install -q --disable-pip-version-check "onnxruntime==$ORT_VERSION" numpy opencv-python-headless
fi
# the API's generated-client test (services/api/tests/api.rs): a maintained OpenAPI client
# generator, pinned, in the same venv
OPENAPI_CLIENT_VERSION=0.29.1
if [ "$("$VENV/bin/openapi-python-client" --version 2>/dev/null | awk '{print $NF}')" != "$OPENAPI_CLIENT_VERSION" ]; then
  log "installing openapi-python-client==$OPENAPI_CLIENT_VERSION into the venv"
  "$VENV/bin/pip" install -q --disable-pip-version-check "openapi-python-client==$OPENAPI_CLIENT_VERSION"
fi
# onnx, pinned: models/make_batch_model.py (a dynamic-batch copy of an embedder; its test in
# services/vision/tests/fixtures.rs)
ONNX_VERSION=1.23.2
if ! "$VENV/bin/python" -c "import onnx; assert onnx.__version__=='$ONNX_VERSION'" 2>/dev/null; then
  log "installing onnx==$ONNX_VERSION into the venv"
  "$VENV/bin/pip" install -q --disable-pip-version-check "onnx==$ONNX_VERSION"
fi
ORT_LIB="$(ls "$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION | head -n1)"
mkdir -p "$CACHE/onnxruntime"
if [ ! -f "$CACHE/onnxruntime/libonnxruntime.so.$ORT_VERSION" ] || ! cmp -s "$ORT_LIB" "$CACHE/onnxruntime/libonnxruntime.so.$ORT_VERSION"; then
  cp "$ORT_LIB" "$CACHE/onnxruntime/libonnxruntime.so.$ORT_VERSION"
fi

if [ "${WITH_POSTGRES:-0}" = 1 ]; then
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    log "starting PostgreSQL"
    ver="$(ls /etc/postgresql | sort -V | tail -n1)"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  # trust auth over TCP for the local test database (the pre-provisioned machines have it already)
  if ! psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
    log "configuring PostgreSQL for tests (trust on 127.0.0.1, database test)"
    ver="$(ls /etc/postgresql | sort -V | tail -n1)"
    hba="/etc/postgresql/$ver/main/pg_hba.conf"
    if ! grep -q "rollcall-test" "$hba"; then
      $SUDO sed -i '1i host all all 127.0.0.1/32 trust # rollcall-test' "$hba"
      $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main reload || true
    fi
    $SUDO -u postgres createdb test 2>/dev/null || su postgres -c "createdb test" 2>/dev/null || true
  fi
fi

cat > "$CACHE/env.sh" <<ENV
export ORT_DYLIB_PATH="$CACHE/onnxruntime/libonnxruntime.so.$ORT_VERSION"
export ROLLCALL_PYTHON="$VENV/bin/python"
ENV
log "ok: ORT_DYLIB_PATH=$CACHE/onnxruntime/libonnxruntime.so.$ORT_VERSION"
