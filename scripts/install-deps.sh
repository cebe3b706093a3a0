#!/usr/bin/env bash
# Installs what wick needs to build, test, serve and bench: the C libraries and tools from
# Debian (12 or 13), and a Python 3.11 virtual environment in .venv/ with the pinned torch
# that wick builds against and that its Python workers run (requirements/*.txt).
# Idempotent and fast when nothing is missing: apt runs only for a missing package, pip
# only when a requirements file changed since .venv/ was last brought up to date.
# usage: install-deps.sh           everything (make, tests, fuzzing, benchmarks)
#        install-deps.sh --serve   only what building and serving need (the Dockerfile's)
# env:   PYTHON311=/path/to/python3.11   the interpreter the venv is made from
#        WICK_VENV=DIR                   the venv (default: .venv in the checkout)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)

# Debian 12 (bookworm) or 13 (trixie): a few package names differ.
DEBIAN_MAJOR=$(cut -d. -f1 /etc/debian_version 2>/dev/null || echo 12)
case "$DEBIAN_MAJOR" in
  12) LLVM=14; NGINX=nginx-light ;;
  13) LLVM=19; NGINX=nginx ;;
  *) LLVM=""; NGINX=nginx
     echo "install-deps: /etc/debian_version is '$(cat /etc/debian_version 2>/dev/null)':" \
          "only Debian 12 and 13 are tested; trying Debian 13's package names" >&2 ;;
esac

SERVE_PKGS=(
  # build
  build-essential cmake pkg-config
  # libraries
  libmicrohttpd-dev libjansson-dev libyaml-dev zlib1g-dev libcurl4-openssl-dev
  libturbojpeg0-dev libpng-dev
  # gRPC ([12]): HTTP/2, TLS and protobuf in C, the .proto files compiled at build time
  # (protoc-c for the messages, protoc for the reflection descriptors)
  libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler libssl-dev
  # the venv (libtorch itself comes from the pinned torch wheel in .venv/)
  python3-venv
  # health checks
  curl
)

DEV_PKGS=(
  # fuzzing (the unversioned clang is 14 on Debian 12, 19 on 13)
  clang ${LLVM:+libfuzzer-$LLVM-dev libclang-rt-$LLVM-dev}
  # tests (tmux: the terminal wick top's end-to-end tests read)
  libcmocka-dev openssl tmux
  # the status page in a real browser (tests/e2e/test_status_page.py, make screenshot):
  # headless chromium driven through Debian's chromedriver, and a font to draw text with
  chromium chromium-driver fonts-dejavu-core
  # demo data
  dataset-fashion-mnist
  # bench: load generators (h2load drives unary gRPC), HTTP ceiling
  wrk nghttp2-client "$NGINX"
)

REQS=(requirements/serve.txt)
case "${1:-}" in
  --serve) PKGS=("${SERVE_PKGS[@]}") ;;
  "") PKGS=("${SERVE_PKGS[@]}" "${DEV_PKGS[@]}"); REQS+=(requirements/dev.txt) ;;
  *) echo "usage: $0 [--serve]" >&2; exit 2 ;;
esac

# --- Debian packages -----------------------------------------------------------------
missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} Debian packages present"
else
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- the Python 3.11 venv --------------------------------------------------------------
# The torch wheel pinned in requirements/ is built for CPython 3.11. Debian 13's python3 is
# 3.13, so take python3.11 from PATH (pyenv on these machines), else Debian 12's python3.
VENV=${WICK_VENV:-$ROOT/.venv}
find_python311() {
  local c
  for c in "${PYTHON311:-}" "$(command -v python3.11 || true)" /usr/bin/python3.11 /usr/bin/python3; do
    [ -n "$c" ] && [ -x "$c" ] || continue
    if "$c" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      echo "$c"
      return 0
    fi
  done
  return 1
}

if [ -x "$VENV/bin/python" ] &&
   ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  echo "install-deps: $VENV is not a Python 3.11 venv; making it again"
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  if ! PY311=$(find_python311); then
    echo "install-deps: no Python 3.11 found (tried \$PYTHON311, python3.11 on PATH," \
         "/usr/bin/python3.11, /usr/bin/python3); torch's pinned wheel needs CPython 3.11" >&2
    exit 1
  fi
  echo "install-deps: making $VENV with $PY311"
  "$PY311" -m venv "$VENV"
fi

# The stamp records the requirement files (names and contents) last installed; pip runs
# only when they differ, so a second run costs nothing.
STAMP="$VENV/.wick-requirements"
want=$(cd "$ROOT" && for r in "${REQS[@]}"; do echo "== $r"; cat "$r"; done)
have=$(cat "$STAMP" 2>/dev/null || true)
# A dev install also satisfies --serve: only install when the stamp lacks a wanted file.
up_to_date=1
for r in "${REQS[@]}"; do
  block=$(cd "$ROOT" && echo "== $r" && cat "$r")
  case "$have" in *"$block"*) ;; *) up_to_date=0 ;; esac
done
if [ "$up_to_date" -eq 1 ]; then
  echo "install-deps: $VENV is up to date with ${REQS[*]}"
  exit 0
fi

echo "install-deps: pip install ${REQS[*]} into $VENV"
args=()
for r in "${REQS[@]}"; do args+=(-r "$ROOT/$r"); done
# (pip warns once per package about index folders of this machine's pip.conf that do not
# hold it: noise, filtered.)
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${args[@]}" \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
# Never TorchServe here: wick's `ts` shim steps aside when a real `ts` package is importable.
if "$VENV/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("ts") is None)'; then
  echo "install-deps: a real 'ts' package (TorchServe) is installed in $VENV: it would replace" \
       "wick's ts shim in every test; remove it (pip uninstall torchserve)" >&2
  exit 1
fi
printf '%s\n' "$want" > "$STAMP"
echo "install-deps: $VENV ready ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
