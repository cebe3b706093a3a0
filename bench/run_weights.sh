#!/usr/bin/env bash
# wick weights transfer on torch_liberator's three ResNet-50 cases (issue 6), against the
# floor of the same file work in Python. bench/run.sh runs it (make bench); it also runs
# alone:
#
#   bash bench/run_weights.sh BUILD_DIR OUT_DIR
#
# For each case (a: resnet50 into a holder of it as `module`; b: a `backbone` holder into a
# `module` holder; c: resnet50 into Faster R-CNN, random weights from torchvision)
# and association (isomorphism, embedding): BENCH_WEIGHTS_RUNS runs (default 5) of the
# whole command (exec, read A and B with the safe reader, map, copy, write OUT.pt), its own
# "mapped in N ms" (the planner alone), and, as the floor, Python torch.load of A and B
# (weights_only) + torch.save of B, the same runs. Raw outputs in OUT_DIR/weights/,
# which bench/report.py turns into a section of bench/RESULTS.md.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 BUILD_DIR OUT_DIR" >&2
  exit 2
fi
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$1" && pwd)
mkdir -p "$2"
OUT=$(cd "$2" && pwd)/weights
PY=${PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
WICK=${BENCH_WICK:-$BUILD/wick}
RUNS=${BENCH_WEIGHTS_RUNS:-5}
W=$BUILD/bench/weights
export OPENBLAS_NUM_THREADS=1
rm -rf "$OUT" "$W"
mkdir -p "$OUT" "$W"
"$PY" - "$W" "$SRC/tests/e2e" <<'PYEOF'
import sys
sys.path.insert(0, sys.argv[2])
import torch, torchvision
from test_transfer import Holder, faster_rcnn
w = sys.argv[1]
torch.manual_seed(0)
r = torchvision.models.resnet50(weights=None)
torch.save(r.state_dict(), f"{w}/resnet50.pt")
torch.save(Holder(torchvision.models.resnet50(weights=None), "module", "extra").state_dict(), f"{w}/a_into.pt")
torch.save(Holder(r, "backbone", "custom_model2_layer").state_dict(), f"{w}/b_from.pt")
torch.save(Holder(torchvision.models.resnet50(weights=None), "module", "custom_model1_layer").state_dict(), f"{w}/b_into.pt")
torch.save(faster_rcnn().state_dict(), f"{w}/c_into.pt")
PYEOF
for case in "a resnet50 a_into" "b b_from b_into" "c resnet50 c_into"; do
  read -r name from into <<<"$case"
  for assoc in isomorphism embedding; do
    : >"$OUT/${name}_$assoc.txt"
    for r in $(seq "$RUNS"); do
      start=$(date +%s%N)
      "$WICK" weights transfer --from "$W/$from.pt" --into "$W/$into.pt" -o "$W/out.pt" \
        --association "$assoc" 2>"$W/err.txt" >/dev/null || { echo "bench: transfer $name $assoc failed: $(cat "$W/err.txt")" >&2; break; }
      end=$(date +%s%N)
      planner=$(grep -o 'mapped in [0-9.]* ms' "$W/err.txt" | grep -o '[0-9.]*' | head -1)
      echo "$(( (end - start) / 1000 )) ${planner:-nan}" >>"$OUT/${name}_$assoc.txt"
    done
  done
  "$PY" - "$W/$from.pt" "$W/$into.pt" "$W/py_out.pt" "$RUNS" >"$OUT/${name}_python.txt" <<'PYEOF'
import subprocess, sys, time
# each run a fresh interpreter, as each wick run is a fresh process
code = ("import torch; a = torch.load(%r, weights_only=True); b = torch.load(%r, weights_only=True); "
        "torch.save(b, %r)" % tuple(sys.argv[1:4]))
for _ in range(int(sys.argv[4])):
    t = time.time()
    subprocess.run([sys.executable, "-c", code], check=True)
    print(int((time.time() - t) * 1e6))
PYEOF
done
echo "== weights bench done: $OUT"
