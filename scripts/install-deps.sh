#!/usr/bin/env bash
# Installs the Debian packages wick needs to build, test, serve and bench.
# Idempotent: packages already present are skipped, apt runs only when one is missing.
# usage: install-deps.sh           everything (make, tests, fuzzing, benchmarks)
#        install-deps.sh --serve   only what building and serving need (the Dockerfile's)
set -euo pipefail

SERVE_PKGS=(
  # build
  build-essential cmake pkg-config
  # libraries
  libmicrohttpd-dev libjansson-dev libyaml-dev zlib1g-dev libcurl4-openssl-dev
  libturbojpeg0-dev libpng-dev
  # libtorch (C++) and the fast BLAS it should use (see MACHINE-NOTES: reference BLAS is 25x slower)
  libtorch-dev libopenblas0-pthread
  # Python handlers (the worker imports torch; image handlers use torchvision and PIL)
  python3-torch python3-torchvision python3-numpy python3-pil
  # per-model requirements (install_py_dep_per_model): pip install --target
  python3-pip
  # health checks
  curl
)

DEV_PKGS=(
  # fuzzing
  clang-14 libfuzzer-14-dev libclang-rt-14-dev
  # tests
  libcmocka-dev python3-pytest python3-yaml openssl
  # demo data
  dataset-fashion-mnist
  # bench: load generator, peers
  wrk nginx-light python3-fastapi python3-uvicorn
)

case "${1:-}" in
  --serve) PKGS=("${SERVE_PKGS[@]}") ;;
  "") PKGS=("${SERVE_PKGS[@]}" "${DEV_PKGS[@]}") ;;
  *) echo "usage: $0 [--serve]" >&2; exit 2 ;;
esac

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
