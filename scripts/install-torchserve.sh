#!/usr/bin/env bash
# TorchServe for the bench and the compatibility harness, in a venv of its own (never the
# project's .venv, where a real `ts` package would replace wick's shim):
#
#   bash scripts/install-torchserve.sh [VENV]        (default build/ts-venv)
#
# Installs torchserve and torch-model-archiver, pinned, from PyPI, and points the venv at
# the project venv's site-packages (a .pth file) for torch, torchvision and Pillow, so the
# same torch runs in TorchServe's workers without a second multi-GB install. Needs Java 17
# (Debian's openjdk-17-jre-headless). Idempotent.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${1:-$ROOT/build/ts-venv}
PY=${PYTHON311:-$(command -v python3.11 || true)}
TS_VERSION=0.12.0
if ! java -version 2>&1 | grep -q 'version "17'; then
  echo "install-torchserve: TorchServe $TS_VERSION needs Java 17 (apt-get install openjdk-17-jre-headless)" >&2
  exit 1
fi
[ -n "$PY" ] || { echo "install-torchserve: python3.11 not found" >&2; exit 1; }
[ -d "$ROOT/.venv" ] || { echo "install-torchserve: run make deps first (.venv)" >&2; exit 1; }
if [ ! -x "$VENV/bin/torchserve" ]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "torchserve==$TS_VERSION" "torch-model-archiver==$TS_VERSION" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
fi
SITE=$("$ROOT/.venv/bin/python" -c 'import site; print(site.getsitepackages()[0])')
TS_SITE=$("$VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')
echo "$SITE" > "$TS_SITE/wick_project_torch.pth"
"$VENV/bin/python" -c 'import ts, torch; print("install-torchserve: TorchServe", __import__("importlib.metadata").metadata.version("torchserve"), "with torch", torch.__version__)'
