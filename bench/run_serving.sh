#!/usr/bin/env bash
# wick's serving bench: batching, workers' memory and cold start, on the fashion demo model
# and the bench MLP. bench/run.sh runs it (make bench); it also runs alone:
#
#   bash bench/run_serving.sh BUILD_DIR OUT_DIR
#
# BUILD_DIR holds wick, demo/fashion.pt, demo/test_samples.json, demo/model_store/fashion_tensor.mar
# (make demo) and bench/mlp.pt (bench/make_mlp.py, run.sh makes it first). Raw outputs go to
# OUT_DIR/serving/, which bench/report.py turns into sections of bench/RESULTS.md.
#
#   1. fashion CNN, c=64, wrk posting 8 real test images in rotation: batchSize 1, 16, 32
#      (maxBatchDelay 5 ms) x 1 worker (2 torch threads) / 2 workers (1 thread each); all
#      servers up side by side, the variants interleaved, BENCH_SERVING_ROUNDS rounds;
#      wick_batch_size_sum/count read from /metrics before and after every run
#   2. MLP JSON: batching off vs batchSize 8 (1 ms) and 16 (2 ms), c=64 (rounds) and c=1
#   3. resident memory: fashion with 1 vs 4 native workers, VmRSS after loading and after
#      2000 requests (serving_tools.py requests, 8 connections); then 1 vs 4 python processes that each torch.jit.load the model
#   4. cold start: exec of `wick serve` to the first 200 of /predictions/fashion, 5 runs
#   5. Python handler overhead: a no-op Python function handler (returns each request's
#      decoded JSON body) vs the native tensor handler on an identity TorchScript model,
#      the same 4-float JSON body, 2 workers each; c=1 and c=16, rounds interleaved
#   6. KServe v2 transport: a [64,1,28,28] float32 tensor to a model that returns
#      x.sum(dim=(1,2,3)), as v2 JSON and as v2 binary tensor data (binary reply too),
#      c=16, 2 workers, rounds interleaved
#
# Environment: BENCH_DURATION (wrk -d, default 10s), BENCH_SERVING_ROUNDS (default 2),
# BENCH_WICK (default BUILD_DIR/wick), PYTHON (default .venv/bin/python),
# BENCH_SERVING_PARTS (default "1 2 3 4 5 6": the parts above to run).
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 BUILD_DIR OUT_DIR" >&2
  exit 2
fi
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$1" && pwd)
mkdir -p "$2"
OUT=$(cd "$2" && pwd)/serving
PY=${PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
DURATION=${BENCH_DURATION:-10s}
ROUNDS=${BENCH_SERVING_ROUNDS:-2}
# Each variant gets BENCH_DURATION in all, split over the rounds (10s, 2 rounds: 2 x 5s).
SECS=${DURATION%s}
[[ $SECS =~ ^[0-9]+$ ]] || { echo "bench: BENCH_DURATION must be seconds (10s), not $DURATION" >&2; exit 2; }
RDUR=$((SECS / ROUNDS > 0 ? SECS / ROUNDS : 1))s
WICK=${BENCH_WICK:-$BUILD/wick}
DEMO=$BUILD/demo
W=$BUILD/bench/serving
LOGS=$BUILD/bench/logs/serving
TOOLS=$SRC/bench/serving_tools.py
PARTS=" ${BENCH_SERVING_PARTS:-1 2 3 4 5 6} "
part() { [[ $PARTS == *" $1 "* ]]; }
export OPENBLAS_NUM_THREADS=1

for f in "$WICK" "$DEMO/fashion.pt" "$DEMO/test_samples.json" "$DEMO/model_store/fashion_tensor.mar" \
    "$BUILD/bench/mlp.pt" "$BUILD/bench/mlp_request.json"; do
  [ -e "$f" ] || { echo "bench: $f is missing (make build demo; bench/make_mlp.py)" >&2; exit 1; }
done

rm -rf "$OUT" "$W" "$LOGS"
mkdir -p "$OUT" "$W/cfg" "$W/store" "$W/bodies" "$LOGS"

# --- cleanup: every server in its own process group (setsid); TERM, 5 s, then KILL.
PGIDS=()
cleanup() {
  local pg i alive
  for pg in "${PGIDS[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
  for i in $(seq 50); do
    alive=0
    for pg in "${PGIDS[@]}"; do kill -0 -- "-$pg" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pg in "${PGIDS[@]}"; do kill -KILL -- "-$pg" 2>/dev/null || true; done
  PGIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- variants: NAME -> ports and pid
declare -A P_INF P_MET PID

pack() { # pack NAME MODEL_NAME PT BATCH DELAY_MS WORKERS THREADS [HANDLER]
  local name=$1 model=$2 pt=$3 batch=$4 delay=$5 workers=$6 threads=$7 handler=${8:-tensor}
  local runtime=native
  [ "$handler" = tensor ] || runtime=python
  cat >"$W/cfg/$name.yaml" <<YAML
minWorkers: $workers
maxWorkers: $workers
batchSize: $batch
maxBatchDelay: $delay
responseTimeout: 120
wick:
  runtime: $runtime
YAML
  # threads 0: the server's default (ncpu / minWorkers, at least 1)
  if [ "$threads" != 0 ]; then echo "  threads: $threads" >>"$W/cfg/$name.yaml"; fi
  mkdir -p "$W/store/$name"
  "$WICK" pack --model-name "$model" --version 1.0 --serialized-file "$pt" --handler "$handler" \
    --config-file "$W/cfg/$name.yaml" --archive-format zip-store --export-path "$W/store/$name" -f >"$LOGS/pack_$name.log" 2>&1 || return 1
  printf '%s %s %s %s %s %s\n' "$name" "$model" "$batch" "$delay" "$workers" "$threads" \
    >>"$OUT/variants.txt"
}

serve() { # serve NAME MODEL: starts wick on the variant's store; 0 when it answers /ping
  local name=$1 model=$2 pi pm pt t=0
  read -r pi pm pt < <("$PY" "$TOOLS" ports 3)
  setsid "$WICK" serve --model-store "$W/store/$name" --models "$model=$model.mar" \
    --inference_address "http://127.0.0.1:$pi" --management_address "http://127.0.0.1:$pm" \
    --metrics_address "http://127.0.0.1:$pt" --quiet >"$LOGS/$name.log" 2>&1 </dev/null &
  PID[$name]=$!
  PGIDS+=($!)
  disown $!
  P_INF[$name]=$pi
  P_MET[$name]=$pt
  while [ $t -lt 600 ]; do # 60 s
    curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$pi/ping" 2>/dev/null && return 0
    kill -0 "${PID[$name]}" 2>/dev/null || break
    sleep 0.1
    t=$((t + 1))
  done
  echo "bench: wick ($name) did not start; log: $LOGS/$name.log" >&2
  tail -5 "$LOGS/$name.log" >&2 || true
  return 1
}

check() { # check NAME MODEL BODY: one prediction must answer 200
  local name=$1 model=$2 body=$3 code
  code=$(curl -sS -m 10 -o "$OUT/answer_$name.json" -w '%{http_code}' \
    -H 'Content-Type: application/json' --data-binary "@$body" \
    "http://127.0.0.1:${P_INF[$name]}/predictions/$model" 2>>"$LOGS/$name.curl") || code=000
  if [ "$code" = 200 ]; then return 0; fi
  echo "bench: $name answered $code: $(head -c 300 "$OUT/answer_$name.json" 2>/dev/null)" >&2
  return 1
}

batch_metrics() { # batch_metrics NAME FILE: wick_batch_size_sum and _count, one line
  curl -fsS -m 5 "http://127.0.0.1:${P_MET[$1]}/metrics" 2>/dev/null |
    awk '/^wick_batch_size_sum\{/ {s=$2} /^wick_batch_size_count\{/ {c=$2}
         END {print (s == "" ? "nan" : s), (c == "" ? "nan" : c)}' >"$2" || echo "nan nan" >"$2"
}

wrk_run() { # wrk_run STEM NAME MODEL C LUA [ENV...]: one bounded wrk run, metrics around it
  local stem=$1 name=$2 model=$3 c=$4 lua=$5 threads=2
  shift 5
  [ "$c" -lt 2 ] && threads=1
  local url="http://127.0.0.1:${P_INF[$name]}/predictions/$model"
  echo "   $stem: wrk -t$threads -c$c -d$RDUR ($name)"
  batch_metrics "$name" "$OUT/$stem.before"
  env "$@" timeout 120 wrk -t"$threads" -c"$c" -d"$RDUR" --timeout 5s --latency -s "$lua" \
    "$url" >"$OUT/$stem.txt" 2>&1 || echo "bench: wrk failed for $stem (see $OUT/$stem.txt)" >&2
  batch_metrics "$name" "$OUT/$stem.after"
}

warm() { # warm NAME MODEL LUA [ENV...]: 2 s of traffic, thrown away
  local name=$1 model=$2 lua=$3
  shift 3
  env "$@" timeout 30 wrk -t2 -c16 -d1s -s "$lua" \
    "http://127.0.0.1:${P_INF[$name]}/predictions/$model" >/dev/null 2>&1 || true
}

# --- request bodies: 8 real test images, rotated by the lua script; the MLP's one row
"$PY" "$TOOLS" bodies --samples "$DEMO/test_samples.json" --out "$W/bodies" --count 8
cat >"$W/bodies.lua" <<'LUA'
-- wrk: POST $WRK_BODY_DIR/body{0..$WRK_BODY_COUNT-1}.json in rotation (each thread starts
-- at a random one).
local reqs, n, i = {}, 0, 0
local dir = os.getenv("WRK_BODY_DIR")
local count = tonumber(os.getenv("WRK_BODY_COUNT") or "1")
for k = 0, count - 1 do
  local f = assert(io.open(dir .. "/body" .. k .. ".json", "rb"))
  reqs[#reqs + 1] = wrk.format("POST", nil, {["Content-Type"] = "application/json"}, f:read("*a"))
  f:close()
end
n = #reqs
init = function(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 1000)
  i = math.random(n) - 1
end
request = function()
  i = i % n + 1
  return reqs[i]
end
LUA
LUA=$W/bodies.lua
mkdir -p "$W/mlp_body"
cp "$BUILD/bench/mlp_request.json" "$W/mlp_body/body0.json"
FASHION_ENV=(WRK_BODY_DIR="$W/bodies" WRK_BODY_COUNT=8)
MLP_ENV=(WRK_BODY_DIR="$W/mlp_body" WRK_BODY_COUNT=1)

echo "$ROUNDS $RDUR" >"$OUT/rounds.txt"
: >"$OUT/variants.txt"
# ============ 1. fashion CNN batching at c=64
if part 1; then
echo "== fashion CNN: batching at c=64 ($ROUNDS rounds of $RDUR per variant) $(date +%T)"
FASHION=()
for v in "b1_w1 1 1 2" "b1_w2 1 2 1" "b16_w1 16 1 2" "b16_w2 16 2 1" "b32_w1 32 1 2" "b32_w2 32 2 1"; do
  read -r name batch workers threads <<<"$v"
  name=fashion_$name
  pack "$name" fashion "$DEMO/fashion.pt" "$batch" 5 "$workers" "$threads" || {
    echo "bench: pack $name failed: $(tail -3 "$LOGS/pack_$name.log")" >&2; continue; }
  serve "$name" fashion && check "$name" fashion "$W/bodies/body0.json" && FASHION+=("$name")
done
for name in "${FASHION[@]}"; do warm "$name" fashion "$LUA" "${FASHION_ENV[@]}"; done
for r in $(seq "$ROUNDS"); do
  order=("${FASHION[@]}")
  if [ $((r % 2)) = 0 ]; then # even rounds run the variants in reverse order
    order=()
    for ((k = ${#FASHION[@]} - 1; k >= 0; k--)); do order+=("${FASHION[$k]}"); done
  fi
  for name in "${order[@]}"; do
    wrk_run "${name}_c64_r$r" "$name" fashion 64 "$LUA" "${FASHION_ENV[@]}"
  done
done
cleanup
fi

# ============ 2. MLP: batching off vs on, c=64 and c=1
if part 2; then
echo "== MLP: batching off vs on $(date +%T)"
MLP=()
for v in "off 1 0" "b8 8 1" "b16 16 2"; do
  read -r name batch delay <<<"$v"
  name=mlp_$name
  pack "$name" mlp "$BUILD/bench/mlp.pt" "$batch" "$delay" 2 1 || {
    echo "bench: pack $name failed: $(tail -3 "$LOGS/pack_$name.log")" >&2; continue; }
  serve "$name" mlp && check "$name" mlp "$W/mlp_body/body0.json" && MLP+=("$name")
done
for name in "${MLP[@]}"; do warm "$name" mlp "$LUA" "${MLP_ENV[@]}"; done
for r in $(seq "$ROUNDS"); do
  for name in "${MLP[@]}"; do wrk_run "${name}_c64_r$r" "$name" mlp 64 "$LUA" "${MLP_ENV[@]}"; done
done
for name in "${MLP[@]}"; do wrk_run "${name}_c1_r1" "$name" mlp 1 "$LUA" "${MLP_ENV[@]}"; done
cleanup
fi

# ============ 3. resident memory: 1 vs 4 native workers, then 1 vs 4 python processes
if part 3; then
echo "== resident memory $(date +%T)"
mem() { # mem NAME KEY: VmRSS and Pss (kB) of the variant's wick, as "KEY_rss_kb N" lines
  local pid=${PID[$1]}
  awk -v k="$2" '/^VmRSS:/ {print k "_rss_kb", $2} /^VmHWM:/ {print k "_hwm_kb", $2}' \
    "/proc/$pid/status" 2>/dev/null || true
  awk -v k="$2" '/^Pss:/ {print k "_pss_kb", $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || true
}
for v in "w1 1" "w4 4"; do # one at a time, so their shared pages do not split each other's Pss
  read -r name workers <<<"$v"
  name=mem_$name
  pack "$name" fashion "$DEMO/fashion.pt" 1 5 "$workers" 0 || {
    echo "bench: pack $name failed: $(tail -3 "$LOGS/pack_$name.log")" >&2; cleanup; continue; }
  if serve "$name" fashion; then
    sleep 0.5
    {
      echo "pid ${PID[$name]}"
      echo "comm $(cat "/proc/${PID[$name]}/comm" 2>/dev/null)"
      mem "$name" load
    } >"$OUT/$name.mem"
    # 2000 requests over 8 keep-alive connections, the 8 images in rotation
    timeout 90 "$PY" "$TOOLS" requests --port "${P_INF[$name]}" --path /predictions/fashion \
      --bodies "$W/bodies" --count 8 --n 2000 --conns 8 >"$OUT/$name.requests.json" 2>&1 || true
    sleep 0.5
    mem "$name" after >>"$OUT/$name.mem"
    grep -o 'loaded in .*' "$LOGS/$name.log" | head -1 | sed 's/^/log /' >>"$OUT/$name.mem" || true
  fi
  cleanup
done
for n in 1 4; do
  timeout 200 "$PY" "$TOOLS" torch-procs --model "$DEMO/fashion.pt" --n "$n" \
    --forwards $((2000 / n)) --out "$OUT/torch_procs_$n.json" --python "$PY" \
    >"$LOGS/torch_procs_$n.log" 2>&1 || echo "bench: torch-procs $n failed" >&2
done
fi

# ============ 4. cold start
if part 4; then
# On the demo's tensor-handler archive (the same model): the JSON test bodies are tensors;
# fashion.mar takes images since the demo switched to the image_classifier handler.
echo "== cold start $(date +%T)"
# The floor: an empty main() linked against libtorch (what loading libtorch costs alone).
FLOOR=()
if echo 'int main(void) { return 0; }' | cc -x c - -o "$W/torch_floor" -Wl,--no-as-needed \
    -ltorch_cpu -ltorch -lc10 >"$LOGS/torch_floor.log" 2>&1; then
  FLOOR=(--torch-floor "$W/torch_floor")
else
  echo "bench: could not link an empty program against libtorch (see $LOGS/torch_floor.log)" >&2
fi
timeout 200 "$PY" "$TOOLS" cold-start --wick "$WICK" --model-store "$DEMO/model_store" \
  --model fashion_tensor=fashion_tensor.mar --body "$W/bodies/body0.json" --runs 5 "${FLOOR[@]}" \
  --out "$OUT/cold_start.json" --log-dir "$LOGS" || echo "bench: cold start failed" >&2
fi

# ============ 5. Python handler overhead: no-op Python handler vs native, c=1 and c=16
if part 5; then
echo "== Python handler overhead $(date +%T)"
mkdir -p "$W/pyov_body"
echo '[[1.0, 2.0, 3.0, 4.0]]' >"$W/pyov_body/body0.json"
cat >"$W/noop.py" <<'PYEOF'
def handle(data, context):
    if data is None:
        return None
    return [row.get("body") for row in data]
PYEOF
if "$PY" -c 'import sys, torch; torch.jit.script(torch.nn.Identity()).save(sys.argv[1])' \
    "$W/identity.pt" >"$LOGS/identity.log" 2>&1; then
  PYOV=()
  for v in "native tensor" "python $W/noop.py:handle"; do
    read -r name handler <<<"$v"
    name=pyov_$name
    pack "$name" noop "$W/identity.pt" 1 0 2 1 "$handler" || {
      echo "bench: pack $name failed: $(tail -3 "$LOGS/pack_$name.log")" >&2; continue; }
    serve "$name" noop && check "$name" noop "$W/pyov_body/body0.json" && PYOV+=("$name")
  done
  PYOV_ENV=(WRK_BODY_DIR="$W/pyov_body" WRK_BODY_COUNT=1)
  for name in "${PYOV[@]}"; do warm "$name" noop "$LUA" "${PYOV_ENV[@]}"; done
  for r in $(seq "$ROUNDS"); do
    for c in 1 16; do
      for name in "${PYOV[@]}"; do wrk_run "${name}_c${c}_r$r" "$name" noop "$c" "$LUA" "${PYOV_ENV[@]}"; done
    done
  done
  cleanup
else
  echo "bench: could not make the identity model (see $LOGS/identity.log)" >&2
fi
fi
# ============ 6. KServe v2: binary tensor data vs JSON for the same [64,1,28,28] tensor
if part 6; then
echo "== KServe v2 binary vs JSON $(date +%T)"
if "$PY" - "$W" "$SRC/tests/e2e" >"$LOGS/v2_bodies.log" 2>&1 <<'PYEOF'
import sys
sys.path.insert(0, sys.argv[2])
import torch
from models import SumImages, save_script
from v2client import request
w = sys.argv[1]
save_script(SumImages, w + "/sumimages.pt")
x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
for name, binary in (("json", False), ("binary", True)):
    body, hdrs = request([("INPUT__0", x)], binary_inputs=binary, binary_output=binary)
    open(f"{w}/v2_{name}.body", "wb").write(body)
    open(f"{w}/v2_{name}.hdr", "w").write(hdrs.get("Inference-Header-Content-Length", ""))
PYEOF
then
  cat >"$W/v2.lua" <<'LUA'
-- wrk: POST $WRK_BODY with Inference-Header-Content-Length $WRK_HDR (when not empty)
local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
local body = f:read("*a")
f:close()
local hdr = os.getenv("WRK_HDR") or ""
local headers = {["Content-Type"] = "application/json"}
if hdr ~= "" then
  headers = {["Content-Type"] = "application/octet-stream", ["Inference-Header-Content-Length"] = hdr}
end
local req = wrk.format("POST", nil, headers, body)
request = function() return req end
LUA
  pack v2 sumimages "$W/sumimages.pt" 1 0 2 1 || echo "bench: pack v2 failed" >&2
  if serve v2 sumimages; then
    url="http://127.0.0.1:${P_INF[v2]}/v2/models/sumimages/infer"
    for kind in json binary; do
      hdr=$(cat "$W/v2_$kind.hdr")
      code=$(curl -sS -m 10 -o "$OUT/answer_v2_$kind" -w '%{http_code}' --data-binary "@$W/v2_$kind.body" \
        -H "Content-Type: application/octet-stream" ${hdr:+-H "Inference-Header-Content-Length: $hdr"} "$url" || echo 000)
      [ "$code" = 200 ] || echo "bench: v2 $kind answered $code" >&2
      ls -l "$W/v2_$kind.body" | awk '{print $5}' >"$OUT/v2_${kind}_bytes.txt"
    done
    for kind in json binary; do
      env WRK_BODY="$W/v2_$kind.body" WRK_HDR="$(cat "$W/v2_$kind.hdr")" timeout 30 wrk -t2 -c16 -d1s -s "$W/v2.lua" "$url" >/dev/null 2>&1 || true
    done
    for r in $(seq "$ROUNDS"); do
      for kind in json binary; do
        echo "   v2_${kind}_c16_r$r: wrk -t2 -c16 -d$RDUR"
        env WRK_BODY="$W/v2_$kind.body" WRK_HDR="$(cat "$W/v2_$kind.hdr")" timeout 120 wrk -t2 -c16 -d"$RDUR" \
          --timeout 5s --latency -s "$W/v2.lua" "$url" >"$OUT/v2_${kind}_c16_r$r.txt" 2>&1 ||
          echo "bench: wrk failed for v2 $kind" >&2
      done
    done
  fi
  cleanup
else
  echo "bench: could not make the v2 bodies (see $LOGS/v2_bodies.log)" >&2
fi
fi
echo "== serving bench done $(date +%T): $OUT"
