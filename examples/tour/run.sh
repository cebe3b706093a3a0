#!/usr/bin/env bash
# The PyTorch tour's deployment, with wick in place of torch-model-archiver and torchserve:
# train and export (Lightning, TorchScript), pack, serve, predict, explain, stop.
# usage: examples/tour/run.sh [WORK_DIR]      (from the repository root, after make build)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${1:-$ROOT/build/tour}
WICK=${WICK:-$ROOT/build/wick}
PY=${PYTHON:-$ROOT/.venv/bin/python}
mkdir -p "$WORK"
cd "$WORK"
cp "$ROOT/examples/tour/handler.py" .
[ -f checkpoints/jit_model.pt ] || "$PY" "$ROOT/examples/tour/train.py" --out .

"$WICK" pack \
    --model-name machin-lern \
    --version 1.0 \
    --serialized-file "$WORK/checkpoints/jit_model.pt" \
    --export-path model_store \
    --handler handler -f
"$WICK" serve --start --ncs --model-store model_store --models machin-lern
trap '"$WICK" serve --stop' EXIT
curl -s http://localhost:8080/predictions/machin-lern -T images/0.png; echo
curl -s http://localhost:8080/explanations/machin-lern -T images/0.png | head -c 300; echo
