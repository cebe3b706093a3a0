#!/usr/bin/env bash
# wick's bench: wick against the usual peers, on this machine, in one run.
#
#   bash bench/run.sh BUILD_DIR          (make bench runs it after the demo is built)
#
# Scenarios (wrk, keep-alive, 127.0.0.1 only):
#   1. GET /ping: wick vs nginx (a static 200), c = 1, 16, 64
#   2. POST /predictions/mlp, MLP 16-64-4 TorchScript: wick (native) vs FastAPI+uvicorn
#      (2 workers), c = 1, 16, 64
#   3. the limit: bench/forward_loop calls wick's libtorch binding directly
#   4. bench/run_serving.sh: the fashion CNN with batching on vs off at c=64, the MLP with
#      batching on vs off, resident memory of 1 vs 4 workers (and of 1 vs 4 torch python
#      processes), cold start to the first prediction
#   5. bench/run_vision.sh: the image_classifier handler at c=16: ResNet-18 JPEGs (wick
#      configurations vs a FastAPI + PIL + torchvision peer vs the raw in-process pipeline)
#      and the fashion demo's 28x28 PNGs (wick vs the same peer)
#   6. bench/run_weights.sh: wick weights transfer on torch_liberator's ResNet-50 cases vs
#      the floor of the same file work in Python
# and writes bench/RESULTS.md (bench/report.py). Servers run side by side, the
# concurrencies interleaved, so drift on this noisy machine hits both alike.
#
# Environment: BENCH_DURATION (wrk -d, default 10s), BENCH_CONNS (default "1 16 64"),
# BENCH_FORWARD_ITERS (default 20000), PYTHON (default .venv/bin/python),
# BENCH_RESULTS (default bench/RESULTS.md), BENCH_WICK (default BUILD_DIR/wick),
# BENCH_SERVING_ROUNDS (default 2; see run_serving.sh), BENCH_SERVING=0 skips part 4,
# BENCH_VISION_DURATION, BENCH_VISION_ROUNDS (see run_vision.sh), BENCH_VISION=0 skips part 5,
# BENCH_WEIGHTS=0 skips part 6.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$1" && pwd)
B=$BUILD/bench
PY=${PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
DURATION=${BENCH_DURATION:-10s}
CONNS=${BENCH_CONNS:-"1 16 64"}
FWD_ITERS=${BENCH_FORWARD_ITERS:-20000}
RESULTS=${BENCH_RESULTS:-$SRC/bench/RESULTS.md}
WICK=${BENCH_WICK:-$BUILD/wick}
FWD=$BUILD/forward_loop
export OPENBLAS_NUM_THREADS=1

for tool in wrk nginx curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is not installed (make deps)" >&2; exit 1; }
done

rm -rf "$B/out" "$B/logs" "$B/nginx"
mkdir -p "$B/out" "$B/logs" "$B/nginx/tmp" "$B/model_store"
OUT=$B/out
LOGS=$B/logs

# --- cleanup: every server runs in its own process group (setsid); kill each group.
PGIDS=()
cleanup() { # TERM each group, give it up to 5 s, then KILL what is left
  local pg i alive
  for pg in "${PGIDS[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
  for i in $(seq 50); do
    alive=0
    for pg in "${PGIDS[@]}"; do kill -0 -- "-$pg" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pg in "${PGIDS[@]}"; do kill -KILL -- "-$pg" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() { # start NAME CMD...: runs CMD in a new session, logs to $LOGS/NAME.log
  local name=$1
  shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  PGIDS+=($!)
  disown $!
}

wait_ping() { # wait_ping NAME URL SECONDS: 0 when URL answers 200
  local name=$1 url=$2 limit=$3 t=0
  while [ "$t" -lt $((limit * 10)) ]; do
    if curl -fsS -m 1 -o /dev/null "$url" 2>/dev/null; then return 0; fi
    sleep 0.1
    t=$((t + 1))
  done
  echo "bench: $name did not answer $url within ${limit}s; log: $LOGS/$name.log" >&2
  tail -5 "$LOGS/$name.log" >&2 || true
  return 1
}

# --- ports: let the kernel pick free ones (all sockets held open until all are known).
read -r P_WICK P_MGMT P_METRICS P_NGINX P_FASTAPI < <("$PY" -c '
import socket
ss = [socket.socket() for _ in range(5)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')

# --- the model
echo "== MLP model"
"$PY" "$SRC/bench/make_mlp.py" --out "$B"
BODY=$B/mlp_request.json
cat >"$B/post.lua" <<'LUA'
-- wrk: POST the file named by $WRK_BODY as a JSON body on every request.
local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
LUA

# --- servers
echo "== servers"
HAVE_WICK=0
if [ -x "$WICK" ]; then
  if "$WICK" pack --model-name mlp --version 1.0 --serialized-file "$B/mlp.pt" \
      --handler tensor --export-path "$B/model_store" -f >"$LOGS/pack.log" 2>&1; then
    start wick "$WICK" serve --model-store "$B/model_store" --models mlp=mlp.mar \
      --inference_address "http://127.0.0.1:$P_WICK" \
      --management_address "http://127.0.0.1:$P_MGMT" \
      --metrics_address "http://127.0.0.1:$P_METRICS"
    wait_ping wick "http://127.0.0.1:$P_WICK/ping" 120 && HAVE_WICK=1
  else
    echo "bench: wick pack failed:" >&2
    tail -5 "$LOGS/pack.log" >&2
  fi
else
  echo "bench: $WICK not built: wick columns will be n/a" >&2
fi

cat >"$B/nginx/nginx.conf" <<NGINX
daemon off;
worker_processes 2;
pid $B/nginx/nginx.pid;
error_log $B/logs/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $B/nginx/tmp/body;
  proxy_temp_path $B/nginx/tmp/proxy;
  fastcgi_temp_path $B/nginx/tmp/fastcgi;
  uwsgi_temp_path $B/nginx/tmp/uwsgi;
  scgi_temp_path $B/nginx/tmp/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$P_NGINX;
    location = /ping {
      default_type application/json;
      return 200 '{"status": "Healthy"}';
    }
  }
}
NGINX
HAVE_NGINX=0
start nginx nginx -p "$B/nginx" -e "$B/logs/nginx-error.log" -c "$B/nginx/nginx.conf"
wait_ping nginx "http://127.0.0.1:$P_NGINX/ping" 30 && HAVE_NGINX=1

HAVE_FASTAPI=0
MLP_MODEL=$B/mlp.pt start fastapi "$PY" "$SRC/bench/fastapi_peer.py" "$P_FASTAPI" 2
wait_ping fastapi "http://127.0.0.1:$P_FASTAPI/ping" 60 && HAVE_FASTAPI=1

# --- check that both predict servers give the same answer before timing them
check_predict() { # check_predict NAME URL
  local name=$1 url=$2
  if curl -fsS -m 10 -H 'Content-Type: application/json' --data-binary "@$BODY" "$url" \
      >"$OUT/answer_$name.json" 2>"$LOGS/answer_$name.err"; then
    echo "$name answers: $(head -c 200 "$OUT/answer_$name.json")"
    return 0
  fi
  echo "bench: $name failed the MLP request: $(cat "$LOGS/answer_$name.err")" >&2
  return 1
}
[ $HAVE_FASTAPI = 1 ] && { check_predict fastapi "http://127.0.0.1:$P_FASTAPI/predictions/mlp" || HAVE_FASTAPI=0; }
HAVE_WICK_MLP=$HAVE_WICK
[ $HAVE_WICK = 1 ] && { check_predict wick "http://127.0.0.1:$P_WICK/predictions/mlp" || HAVE_WICK_MLP=0; }

# --- load
load() { # load FILE_STEM CONNS URL [lua]: one bounded wrk run into $OUT/STEM.txt
  local stem=$1 c=$2 url=$3 lua=${4:-} threads=2
  [ "$c" -lt 2 ] && threads=1
  local args=(-t"$threads" -c"$c" -d"$DURATION" --timeout 5s --latency)
  [ -n "$lua" ] && args+=(-s "$lua")
  echo "   wrk ${args[*]} $url"
  WRK_BODY=$BODY timeout 120 wrk "${args[@]}" "$url" >"$OUT/$stem.txt" 2>&1 ||
    echo "bench: wrk failed for $stem (see $OUT/$stem.txt)" >&2
}
warm() { # warm URL [lua]: 2 s of traffic, thrown away
  WRK_BODY=$BODY timeout 30 wrk -t1 -c4 -d2s ${2:+-s "$2"} "$1" >/dev/null 2>&1 || true
}

echo "== /ping"
[ $HAVE_WICK = 1 ] && warm "http://127.0.0.1:$P_WICK/ping"
[ $HAVE_NGINX = 1 ] && warm "http://127.0.0.1:$P_NGINX/ping"
for c in $CONNS; do
  [ $HAVE_WICK = 1 ] && load "ping_wick_c$c" "$c" "http://127.0.0.1:$P_WICK/ping"
  [ $HAVE_NGINX = 1 ] && load "ping_nginx_c$c" "$c" "http://127.0.0.1:$P_NGINX/ping"
done

echo "== MLP predictions"
[ $HAVE_WICK_MLP = 1 ] && warm "http://127.0.0.1:$P_WICK/predictions/mlp" "$B/post.lua"
[ $HAVE_FASTAPI = 1 ] && warm "http://127.0.0.1:$P_FASTAPI/predictions/mlp" "$B/post.lua"
for c in $CONNS; do
  [ $HAVE_WICK_MLP = 1 ] && load "mlp_wick_c$c" "$c" "http://127.0.0.1:$P_WICK/predictions/mlp" "$B/post.lua"
  [ $HAVE_FASTAPI = 1 ] && load "mlp_fastapi_c$c" "$c" "http://127.0.0.1:$P_FASTAPI/predictions/mlp" "$B/post.lua"
done

# The raw loop runs with the servers stopped, so it has the cores to itself.
cleanup
PGIDS=()

echo "== raw forward loop"
if [ -x "$FWD" ]; then
  timeout 300 "$FWD" "$B/mlp.pt" "$FWD_ITERS" 1 >"$OUT/forward.json" 2>"$LOGS/forward.err" ||
    echo "bench: forward_loop failed: $(tail -3 "$LOGS/forward.err")" >&2
  cat "$OUT/forward.json"
else
  echo "bench: $FWD not built: raw forward column will be n/a" >&2
fi

if [ "${BENCH_SERVING:-1}" != 0 ]; then
  echo "== serving: batching, memory, cold start"
  if [ -x "$WICK" ]; then
    BENCH_WICK=$WICK bash "$SRC/bench/run_serving.sh" "$BUILD" "$OUT" ||
      echo "bench: bench/run_serving.sh failed; its sections will be n/a" >&2
  else
    echo "bench: $WICK not built: serving sections will be n/a" >&2
  fi
fi

if [ "${BENCH_VISION:-1}" != 0 ]; then
  echo "== vision: ResNet-18 JPEG, fashion PNG"
  if [ -x "$WICK" ]; then
    BENCH_WICK=$WICK bash "$SRC/bench/run_vision.sh" "$BUILD" "$OUT" ||
      echo "bench: bench/run_vision.sh failed; its sections will be n/a" >&2
  else
    echo "bench: $WICK not built: vision sections will be n/a" >&2
  fi
fi

if [ "${BENCH_WEIGHTS:-1}" != 0 ]; then
  echo "== weights transfer: torch_liberator's ResNet-50 cases"
  BENCH_WICK=$WICK bash "$SRC/bench/run_weights.sh" "$BUILD" "$OUT" ||
    echo "bench: bench/run_weights.sh failed; its section will be n/a" >&2
fi

BENCH_WICK=$WICK "$PY" "$SRC/bench/report.py" --out-dir "$OUT" --results "$RESULTS" \
  --command "make bench (bash bench/run.sh $1; BENCH_DURATION=$DURATION${BENCH_WICK:+; BENCH_WICK=$BENCH_WICK}${BENCH_SERVING_ROUNDS:+; BENCH_SERVING_ROUNDS=$BENCH_SERVING_ROUNDS}${BENCH_VISION:+; BENCH_VISION=$BENCH_VISION}${BENCH_VISION_DURATION:+; BENCH_VISION_DURATION=$BENCH_VISION_DURATION}${BENCH_VISION_ROUNDS:+; BENCH_VISION_ROUNDS=$BENCH_VISION_ROUNDS})" \
  --conns "$CONNS" --duration "$DURATION"
echo "== wrote $RESULTS"
