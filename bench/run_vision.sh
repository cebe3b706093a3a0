#!/usr/bin/env bash
# wick's vision bench: the native image_classifier handler against a FastAPI + PIL +
# torchvision peer and the raw in-process pipeline. bench/run.sh runs it (make bench;
# BENCH_VISION=0 skips it); it also runs alone:
#
#   bash bench/run_vision.sh BUILD_DIR OUT_DIR
#
# BUILD_DIR holds wick and demo/fashion.pt (make build demo). Made here, nothing
# downloaded (BUILD_DIR/bench/vision/): a ResNet-18 (torchvision, random weights, seed 0,
# torch.jit.script), 6 synthetic ~640x480 JPEGs, 16 FashionMNIST test images as 28x28 PNG
# (/usr/share/datasets/fashion-mnist). Raw outputs go to OUT_DIR/vision/, which
# bench/report.py turns into sections of bench/RESULTS.md.
#
#   1. ResNet-18 JPEG, c=16 (wrk -t2, the JPEGs in rotation as raw bodies): wick variants
#      (batchSize 1/4/8, workers x threads 1x2 / 2x1, freeze on/off), the FastAPI peer
#      (bench/fastapi_vision_peer.py, 2 uvicorn workers x 1 torch thread; plain
#      TorchScript, and frozen as an extra row) and the raw in-process loop
#      (vision_tools.py raw-server: PIL + torchvision + TorchScript forward; batch 1/8,
#      1 loop x 2 torch threads or 2 loops x 1, frozen or not), all interleaved over
#      BENCH_VISION_ROUNDS rounds
#   2. Fashion 28x28 PNG, c=16: wick batchSize 1 / 16 x 1 or 2 workers vs the peer in its
#      fashion mode with 1 and 2 uvicorn workers, interleaved the same way
#
# Every server is up side by side, one at a time under load; the raw loop runs while all
# of them are idle. wick_batch_size_sum/count are read from /metrics around every wick run.
#
# Environment: BENCH_VISION_DURATION (seconds per item in all, default BENCH_DURATION or
# 12, split over the rounds), BENCH_VISION_ROUNDS (default 3: the load of other processes
# on these machines comes in bursts; bench/report.py takes the median round), BENCH_WICK (default BUILD_DIR/wick),
# PYTHON (default .venv/bin/python), BENCH_VISION_PARTS (default "resnet fashion").
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 BUILD_DIR OUT_DIR" >&2
  exit 2
fi
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$1" && pwd)
mkdir -p "$2"
OUT=$(cd "$2" && pwd)/vision
PY=${PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
SECS=${BENCH_VISION_DURATION:-${BENCH_DURATION:-12}}
SECS=${SECS%s}
ROUNDS=${BENCH_VISION_ROUNDS:-3}
PARTS=${BENCH_VISION_PARTS:-"resnet fashion"}
[[ $SECS =~ ^[0-9]+$ && $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 ]] ||
  { echo "bench: BENCH_VISION_DURATION and BENCH_VISION_ROUNDS must be whole numbers" >&2; exit 2; }
RSECS=$((SECS / ROUNDS > 0 ? SECS / ROUNDS : 1))
WICK=${BENCH_WICK:-$BUILD/wick}
W=$BUILD/bench/vision
LOGS=$BUILD/bench/logs/vision
TOOLS=$SRC/bench/vision_tools.py
PORTS="$SRC/bench/serving_tools.py"
IDX=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
export OPENBLAS_NUM_THREADS=1

for f in "$WICK" "$BUILD/demo/fashion.pt" "$SRC/examples/fashion/index_to_name.json"; do
  [ -e "$f" ] || { echo "bench: $f is missing (make build demo)" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "bench: wrk is not installed (make deps)" >&2; exit 1; }

rm -rf "$OUT" "$W/cfg" "$W/store" "$LOGS"
mkdir -p "$OUT" "$W/cfg" "$W/store" "$LOGS"
T_START=$(date +%s)

# --- cleanup: every server in its own process group (setsid); TERM, 5 s, then KILL.
PGIDS=()
RAW_PID=
cleanup() {
  local pg i alive
  if [ -n "${RAW_PID:-}" ]; then
    kill -TERM "$RAW_PID" 2>/dev/null || true
    RAW_PID=
  fi
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

# Does this build have the `wick: {freeze: ...}` switch? Without it a freeze-off variant
# would silently run frozen: leave those variants out and say so in the report.
FREEZE_SWITCH=0
grep -q 'wick_freeze' "$SRC/src/serve/model.c" 2>/dev/null && FREEZE_SWITCH=1
echo "$FREEZE_SWITCH" >"$OUT/freeze_switch.txt"
echo "$ROUNDS ${RSECS}s" >"$OUT/rounds.txt"

# --- inputs (the model and the images are cached in BUILD/bench/vision)
echo "== vision inputs $(date +%T)"
[ -s "$W/r18.pt" ] || timeout 300 "$PY" "$TOOLS" resnet --out "$W/r18.pt"
[ -s "$W/jpg/img5.jpg" ] || timeout 120 "$PY" "$TOOLS" jpegs --out "$W/jpg" --count 6
[ -s "$W/png/img15.png" ] || timeout 120 "$PY" "$TOOLS" pngs --idx "$IDX" --out "$W/png" --count 16
du -b "$W"/jpg/*.jpg | awk '{s += $1; n++} END {printf "%d %d\n", n, s / n}' >"$OUT/jpg_sizes.txt"
du -b "$W"/png/*.png | awk '{s += $1; n++} END {printf "%d %d\n", n, s / n}' >"$OUT/png_sizes.txt"
"$PY" - "$W/jpg" >"$OUT/jpg_dims.txt" <<'PYEOF' || true
import os, sys
from PIL import Image
d = sys.argv[1]
print(" ".join("%dx%d" % Image.open(os.path.join(d, f)).size for f in sorted(os.listdir(d))))
PYEOF

cat >"$W/images.lua" <<'LUA'
-- wrk: POST $WRK_IMG_DIR/img{0..$WRK_IMG_COUNT-1}.$WRK_IMG_EXT as raw bodies in rotation
-- (Content-Type $WRK_IMG_TYPE; each thread starts at a random one). The requests are
-- formatted in init(): wrk sets wrk.headers.Host only then, and uvicorn refuses a request
-- without Host.
local reqs, n, i = {}, 0, 0
init = function(args)
  local dir, ext = os.getenv("WRK_IMG_DIR"), os.getenv("WRK_IMG_EXT")
  local ctype = os.getenv("WRK_IMG_TYPE") or "application/octet-stream"
  for k = 0, tonumber(os.getenv("WRK_IMG_COUNT") or "1") - 1 do
    local f = assert(io.open(dir .. "/img" .. k .. "." .. ext, "rb"))
    reqs[#reqs + 1] = wrk.format("POST", nil, {["Content-Type"] = ctype,
                                              ["Host"] = wrk.headers["Host"]}, f:read("*a"))
    f:close()
  end
  n = #reqs
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 1000)
  i = math.random(n) - 1
end
request = function()
  i = i % n + 1
  return reqs[i]
end
LUA
LUA=$W/images.lua

# --- servers: NAME -> ports, pid, url path
declare -A P_INF P_MET PID URLP

ports3() { "$PY" "$PORTS" ports 3; }

wait_up() { # wait_up NAME PORT SECONDS
  local name=$1 port=$2 lim=$(($3 * 10)) t=0
  while [ $t -lt $lim ]; do
    curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$port/ping" 2>/dev/null && return 0
    kill -0 "${PID[$name]}" 2>/dev/null || break
    sleep 0.1
    t=$((t + 1))
  done
  echo "bench: $name did not start; log: $LOGS/$name.log" >&2
  tail -5 "$LOGS/$name.log" >&2 || true
  return 1
}

# wick_variant NAME MODEL PT BATCH DELAY WORKERS THREADS FREEZE IMAGE_YAML EXTRA_FILES
wick_variant() {
  local name=$1 model=$2 pt=$3 batch=$4 delay=$5 workers=$6 threads=$7 freeze=$8 img=$9
  local extra=${10:-} pi pm pt_ args=()
  {
    echo "minWorkers: $workers"
    echo "maxWorkers: $workers"
    echo "batchSize: $batch"
    echo "maxBatchDelay: $delay"
    echo "responseTimeout: 120"
    echo "wick:"
    echo "  runtime: native"
    echo "  threads: $threads"
    [ "$FREEZE_SWITCH" = 1 ] && echo "  freeze: $([ "$freeze" = 1 ] && echo true || echo false)"
    [ -n "$img" ] && printf '%s\n' "$img"
  } >"$W/cfg/$name.yaml"
  [ -n "$extra" ] && args=(--extra-files "$extra")
  mkdir -p "$W/store/$name"
  if ! "$WICK" pack --model-name "$model" --version 1.0 --serialized-file "$pt" \
      --handler image_classifier "${args[@]}" --config-file "$W/cfg/$name.yaml" \
      --archive-format zip-store --export-path "$W/store/$name" -f >"$LOGS/pack_$name.log" 2>&1; then
    echo "bench: pack $name failed: $(tail -3 "$LOGS/pack_$name.log")" >&2
    return 1
  fi
  read -r pi pm pt_ < <(ports3)
  setsid "$WICK" serve --model-store "$W/store/$name" --models "$model=$model.mar" \
    --inference_address "http://127.0.0.1:$pi" --management_address "http://127.0.0.1:$pm" \
    --metrics_address "http://127.0.0.1:$pt_" --quiet >"$LOGS/$name.log" 2>&1 </dev/null &
  PID[$name]=$!
  PGIDS+=($!)
  disown $!
  P_INF[$name]=$pi
  P_MET[$name]=$pt_
  URLP[$name]=/predictions/$model
  printf '%s wick %s %s %s %s %s\n' "$name" "$batch" "$delay" "$workers" "$threads" "$freeze" \
    >>"$OUT/variants.txt"
  wait_up "$name" "$pi" 120 || return 1
  # wick's own word on what it loaded ("frozen" / "not frozen", workers, threads)
  grep -o 'loaded in .*' "$LOGS/$name.log" | head -1 >"$OUT/$name.loaded" || true
}

# peer_variant NAME MODE WORKERS FREEZE PT [LABELS]
peer_variant() {
  local name=$1 mode=$2 workers=$3 freeze=$4 pt=$5 labels=${6:-} pi pm pt_
  read -r pi pm pt_ < <(ports3)
  PEER_MODEL=$pt PEER_MODE=$mode PEER_FREEZE=$freeze PEER_LABELS=$labels \
    setsid "$PY" "$SRC/bench/fastapi_vision_peer.py" "$pi" "$workers" \
    >"$LOGS/$name.log" 2>&1 </dev/null &
  PID[$name]=$!
  PGIDS+=($!)
  disown $!
  P_INF[$name]=$pi
  P_MET[$name]=
  URLP[$name]=/predictions/$mode
  printf '%s fastapi 1 0 %s 1 %s\n' "$name" "$workers" "$freeze" >>"$OUT/variants.txt"
  wait_up "$name" "$pi" 120
}

check() { # check NAME FILE: one prediction must answer 200; the answer is kept
  local name=$1 file=$2
  if timeout 60 "$PY" "$TOOLS" first --port "${P_INF[$name]}" --path "${URLP[$name]}" \
      --file "$file" --content-type "$CTYPE" >"$OUT/answer_$name.json" 2>>"$LOGS/$name.check"; then
    return 0
  fi
  echo "bench: $name failed its first prediction: $(head -c 300 "$OUT/answer_$name.json")" >&2
  return 1
}

batch_metrics() { # batch_metrics NAME FILE: wick_batch_size_sum and _count, one line
  [ -n "${P_MET[$1]}" ] || return 0
  curl -fsS -m 5 "http://127.0.0.1:${P_MET[$1]}/metrics" 2>/dev/null |
    awk '/^wick_batch_size_sum\{/ {s=$2} /^wick_batch_size_count\{/ {c=$2}
         END {print (s == "" ? "nan" : s), (c == "" ? "nan" : c)}' >"$2" || echo "nan nan" >"$2"
}

IMG_ENV=()
wrk_run() { # wrk_run STEM NAME: one bounded wrk run at c=16, metrics around it
  local stem=$1 name=$2
  local url="http://127.0.0.1:${P_INF[$name]}${URLP[$name]}"
  echo "   $stem: wrk -t2 -c16 -d${RSECS}s $url"
  batch_metrics "$name" "$OUT/$stem.before"
  env "${IMG_ENV[@]}" timeout $((RSECS + 60)) wrk -t2 -c16 -d"${RSECS}s" --timeout 10s --latency \
    -s "$LUA" "$url" >"$OUT/$stem.txt" 2>&1 || echo "bench: wrk failed for $stem (see $OUT/$stem.txt)" >&2
  batch_metrics "$name" "$OUT/$stem.after"
}

warm() { # warm NAME SECONDS: traffic thrown away (oneDNN primitives, the first batches)
  env "${IMG_ENV[@]}" timeout $(($2 + 30)) wrk -t2 -c16 -d"$2s" --timeout 10s -s "$LUA" \
    "http://127.0.0.1:${P_INF[$1]}${URLP[$1]}" >/dev/null 2>&1 || true
}

# --- the raw in-process loop, a coprocess driven one line per run
raw_start() { # raw_start IMAGES_DIR EXT PT
  coproc RAW { exec "$PY" "$TOOLS" raw-server --model "$3" --images "$1" --ext "$2" 2>>"$LOGS/raw.log"; }
  local line # bash sets RAW_PID (cleanup TERMs it)
  if read -r -t 120 line <&"${RAW[0]}" && [[ $line == *ready* ]]; then return 0; fi
  echo "bench: the raw loop did not start (see $LOGS/raw.log)" >&2
  return 1
}

raw_run() { # raw_run STEM NAME BATCH THREADS FREEZE LOOPS: one timed run, JSON into STEM.json
  local stem=$1 line
  echo "   $stem: raw loop batch $3, $6 loop(s) x $4 torch threads, freeze $5, ${RSECS}s"
  [ -n "${RAW[1]:-}" ] || { echo "bench: the raw loop is gone (see $LOGS/raw.log)" >&2; return 1; }
  echo "$2 $3 $4 $5 $RSECS $6" >&"${RAW[1]}" || { echo "bench: raw loop gone" >&2; return 1; }
  if read -r -t $((RSECS + 120)) line <&"${RAW[0]:-0}"; then
    echo "$line" >"$OUT/$stem.json"
  else
    echo "bench: the raw loop gave no answer for $stem (see $LOGS/raw.log)" >&2
    return 1
  fi
}

# run_rounds ITEM...: ITEM is a server name, or raw:NAME:BATCH:THREADS:FREEZE:LOOPS; each
# round runs every item once, even rounds in reverse order
run_rounds() {
  local items=("$@") order r k it n b t f l
  for r in $(seq "$ROUNDS"); do
    order=("${items[@]}")
    if [ $((r % 2)) = 0 ]; then
      order=()
      for ((k = ${#items[@]} - 1; k >= 0; k--)); do order+=("${items[$k]}"); done
    fi
    for it in "${order[@]}"; do
      if [[ $it == raw:* ]]; then
        IFS=: read -r _ n b t f l <<<"$it"
        raw_run "${n}_r$r" "$n" "$b" "$t" "$f" "$l" || true
      else
        wrk_run "${it}_r$r" "$it"
      fi
    done
  done
}

# ============ 1. ResNet-18 JPEG
if [[ " $PARTS " == *" resnet "* ]]; then
  echo "== ResNet-18 JPEG at c=16 ($ROUNDS rounds of ${RSECS}s per item) $(date +%T)"
  CTYPE=image/jpeg
  IMG_ENV=(WRK_IMG_DIR="$W/jpg" WRK_IMG_EXT=jpg WRK_IMG_COUNT=6 WRK_IMG_TYPE=image/jpeg)
  ITEMS=()
  # name batch workers threads freeze
  V=("r18_b1_w1x2 1 1 2 1" "r18_b1_w2x1 1 2 1 1" "r18_b4_w1x2 4 1 2 1" "r18_b8_w1x2 8 1 2 1"
     "r18_b8_w2x1 8 2 1 1")
  [ "$FREEZE_SWITCH" = 1 ] && V+=("r18_b1_w2x1_nofreeze 1 2 1 0" "r18_b8_w1x2_nofreeze 8 1 2 0")
  for v in "${V[@]}"; do
    read -r name batch workers threads freeze <<<"$v"
    wick_variant "$name" r18 "$W/r18.pt" "$batch" 10 "$workers" "$threads" "$freeze" "" "" &&
      check "$name" "$W/jpg/img0.jpg" && ITEMS+=("$name")
  done
  for v in "r18_fastapi 0" "r18_fastapi_frozen 1"; do
    read -r name freeze <<<"$v"
    peer_variant "$name" imagenet 2 "$freeze" "$W/r18.pt" && check "$name" "$W/jpg/img0.jpg" &&
      ITEMS+=("$name")
  done
  echo "== warm-up $(date +%T)"
  for name in "${ITEMS[@]}"; do warm "$name" 2; done
  if raw_start "$W/jpg" jpg "$W/r18.pt"; then
    # name batch loops threads freeze (loops: Python threads running the loop at once)
    for v in "r18_raw_b8_1x2 8 1 2 1" "r18_raw_b1_2x1 1 2 1 1" "r18_raw_b8_1x2_nofreeze 8 1 2 0"; do
      read -r name batch loops threads freeze <<<"$v"
      ITEMS+=("raw:$name:$batch:$threads:$freeze:$loops")
      printf '%s raw %s 0 %s %s %s\n' "$name" "$batch" "$loops" "$threads" "$freeze" \
        >>"$OUT/variants.txt"
    done
  fi
  echo "start $(cat /proc/loadavg)" >"$OUT/load_resnet.txt"
  run_rounds "${ITEMS[@]}"
  echo "end $(cat /proc/loadavg)" >>"$OUT/load_resnet.txt"
  [ -n "${RAW[1]:-}" ] && { echo quit >&"${RAW[1]}" 2>/dev/null || true; }
  cleanup
fi

# ============ 2. Fashion 28x28 PNG
if [[ " $PARTS " == *" fashion "* ]]; then
  echo "== fashion PNG at c=16 ($ROUNDS rounds of ${RSECS}s per item) $(date +%T)"
  CTYPE=image/png
  IMG_ENV=(WRK_IMG_DIR="$W/png" WRK_IMG_EXT=png WRK_IMG_COUNT=16 WRK_IMG_TYPE=image/png)
  IMG_YAML='  image:
    channels: 1
    resize: 0
    crop: 0
    mean: [0.2860]
    std: [0.3530]'
  LABELS=$SRC/examples/fashion/index_to_name.json
  ITEMS=()
  for v in "fashion_b1_w1x2 1 1 2" "fashion_b1_w2x1 1 2 1" "fashion_b16_w1x2 16 1 2" \
           "fashion_b16_w2x1 16 2 1"; do
    read -r name batch workers threads <<<"$v"
    wick_variant "$name" fashion "$BUILD/demo/fashion.pt" "$batch" 5 "$workers" "$threads" 1 \
      "$IMG_YAML" "$LABELS" && check "$name" "$W/png/img0.png" && ITEMS+=("$name")
  done
  for v in "fashion_fastapi_w1 1" "fashion_fastapi_w2 2"; do
    read -r name workers <<<"$v"
    peer_variant "$name" fashion "$workers" 0 "$BUILD/demo/fashion.pt" "$LABELS" &&
      check "$name" "$W/png/img0.png" && ITEMS+=("$name")
  done
  for name in "${ITEMS[@]}"; do warm "$name" 1; done
  echo "start $(cat /proc/loadavg)" >"$OUT/load_fashion.txt"
  run_rounds "${ITEMS[@]}"
  echo "end $(cat /proc/loadavg)" >>"$OUT/load_fashion.txt"
  cleanup
fi
echo "$(($(date +%s) - T_START))" >"$OUT/elapsed_s.txt"
echo "== vision bench done $(date +%T) ($(cat "$OUT/elapsed_s.txt") s): $OUT"
