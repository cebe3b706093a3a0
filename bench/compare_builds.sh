#!/usr/bin/env bash
# Two wick binaries side by side on the bench MLP (POST /predictions/mlp, JSON tensors,
# native, default workers as bench/run.sh, no batching), for a change that must not cost
# speed: c=1 latency (p50, p99) and c=64 throughput, the two servers' runs interleaved,
# ROUNDS rounds, so the machine's noise hits both alike. Writes bench/RESULTS-builds.md
# (the command, the machine, a table of per-run figures, the new/old ratios of the medians)
# and prints it.
#
#   bash bench/compare_builds.sh OLD_WICK NEW_WICK [ROUNDS]
#
# Needs build/bench/mlp.pt and mlp_request.json (bench/make_mlp.py, or a `make bench` run)
# and wrk. Environment: BENCH_DURATION (wrk -d, default 10s), BENCH_OLD_LABEL and
# BENCH_NEW_LABEL (how the report names the builds, say their commits).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 OLD_WICK NEW_WICK [ROUNDS]" >&2
  exit 2
fi
SRC=$(cd "$(dirname "$0")/.." && pwd)
OLD=$1 NEW=$2 ROUNDS=${3:-3}
DURATION=${BENCH_DURATION:-10s}
B=$SRC/build/bench
for f in "$B/mlp.pt" "$B/mlp_request.json" "$B/post.lua"; do
  [ -e "$f" ] || { echo "compare_builds: $f is missing (run make bench once, or bench/make_mlp.py)" >&2; exit 1; }
done
W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
"$NEW" pack --model-name mlp --version 1.0 --serialized-file "$B/mlp.pt" --handler tensor \
  --export-path "$W" -f >/dev/null
port() { "${PYTHON:-$SRC/.venv/bin/python}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() { # start NAME WICK
  local p m x
  p=$(port); m=$(port); x=$(port)
  "$2" serve --model-store "$W" --models mlp=mlp.mar \
    --inference_address "http://127.0.0.1:$p" --management_address "http://127.0.0.1:$m" \
    --metrics_address "http://127.0.0.1:$x" >"$W/$1.log" 2>&1 &
  for _ in $(seq 1 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$p/ping" && break
    sleep 0.1
  done
  eval "URL_$1=http://127.0.0.1:$p/predictions/mlp"
}
start old "$OLD"
start new "$NEW"
for name in old new; do
  eval "url=\$URL_$name"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$B/mlp_request.json" "$url" || true)
  [ "$code" = 200 ] || { echo "compare_builds: $name answered $code (see $W/$name.log)" >&2; exit 1; }
done
REPORT=$SRC/bench/RESULTS-builds.md
exec > >(tee "$REPORT")
echo "# Two wick builds side by side: the bench MLP"
echo
echo "\`bash bench/compare_builds.sh $OLD $NEW $ROUNDS\` (wrk -d $DURATION; c=1: -t1, c=64: -t2;"
echo "the two servers up together, their runs interleaved), $(date -u +%Y-%m-%d)."
echo
echo "- old: ${BENCH_OLD_LABEL:-$OLD} ($("$OLD" --version 2>&1 | head -1)); new: ${BENCH_NEW_LABEL:-$NEW} ($("$NEW" --version 2>&1 | head -1))"
echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
echo
run() { # run NAME CONNS -> "req/s p50_ms p99_ms"
  local url
  eval "url=\$URL_$1"
  local t=2
  [ "$2" -lt 2 ] && t=1
  WRK_BODY=$B/mlp_request.json wrk -t"$t" -c"$2" -d"$DURATION" --latency -s "$B/post.lua" "$url" |
    awk '/Requests\/sec/ {r=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
         function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
         END {printf "%.0f %.3f %.3f\n", r, ms(p50), ms(p99)}'
}
for name in old new; do
  eval "url=\$URL_$name"
  WRK_BODY=$B/mlp_request.json wrk -t1 -c4 -d2s -s "$B/post.lua" "$url" >/dev/null 2>&1 || true
done
echo "| round | build | c=1 p50 ms | c=1 p99 ms | c=64 req/s |"
echo "| --- | --- | --- | --- | --- |"
for r in $(seq 1 "$ROUNDS"); do
  for name in old new; do
    read -r _ p50 p99 < <(run "$name" 1)
    read -r rps _ _ < <(run "$name" 64)
    echo "| $r | $name | $p50 | $p99 | $rps |"
    echo "$name $p50 $rps" >>"$W/all.txt"
  done
done
awk '{p[$1]=p[$1] " " $2; t[$1]=t[$1] " " $3}
     function med(s,  a, n, i, j, x) { n = split(s, a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }; return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
     END { printf "\nmedians: c=1 p50 old %.3f ms, new %.3f ms (new/old %.2f); c=64 old %.0f req/s, new %.0f req/s (new/old %.2f)\n",
           med(p["old"]), med(p["new"]), med(p["new"]) / med(p["old"]), med(t["old"]), med(t["new"]), med(t["new"]) / med(t["old"]) }' "$W/all.txt"
