#!/usr/bin/env bash
# [11] part 12: `make fuzz-long`. Runs every libFuzzer target (tests/fuzz/fuzz_*.c, built
# by `make fuzz` into build-fuzz/) until it has executed FUZZ_RUNS inputs (10 million) or
# FUZZ_MAX_SECONDS have passed (an hour: the bound for targets slower than 3,000 exec/s),
# FUZZ_JOBS targets at a time. Background work: hours on two cores, never in CI.
#
# Each target starts from its committed corpus (tests/fuzz/corpus/<target>), writes what
# it finds under build-fuzz/fuzz-long/<target>/, and, when it found nothing, the new inputs
# that reach code the committed corpus does not are merged into it (libFuzzer's -merge=1
# with the committed folder first): the hand-made seeds keep their names, and `make test`
# replays more paths without growing for nothing.
# Writes tests/fuzz/RESULTS-long.md: executions, speed, peak memory and the outcome of
# each target, the command and the machine.
#
#   FUZZ_TARGETS="http zip" FUZZ_MAX_SECONDS=600 bash scripts/fuzz-long.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD_FUZZ:-build-fuzz}
RUNS=${FUZZ_RUNS:-10000000}
MAX_S=${FUZZ_MAX_SECONDS:-3600}
JOBS=${FUZZ_JOBS:-$(nproc)}
OUT=${FUZZ_RESULTS:-tests/fuzz/RESULTS-long.md}
if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a TARGETS <<<"$FUZZ_TARGETS"
else
  TARGETS=()
  for f in tests/fuzz/fuzz_*.c; do t=${f##*/fuzz_}; TARGETS+=("${t%.c}"); done
fi
for t in "${TARGETS[@]}"; do
  [ -x "$BUILD/fuzz_$t" ] || { echo "fuzz-long: $BUILD/fuzz_$t is missing (make fuzz)" >&2; exit 1; }
done

run_one() {
  local t=$1 work="$BUILD/fuzz-long/$1"
  rm -rf "$work"
  mkdir -p "$work/new" "$work/artifacts"
  local start=$SECONDS
  # -timeout: one input taking over 30 s is a finding (a hang; the largest tables the transfer
  # planner allows, WK_MAX_XFER_CELLS, take ~20 s in this ASan+UBSan+coverage build, ~1 s in
  # a release one); -rss_limit_mb: so is 4 GB
  "$BUILD/fuzz_$t" -runs="$RUNS" -max_total_time="$MAX_S" -print_final_stats=1 -timeout=30 \
    -rss_limit_mb=4096 -artifact_prefix="$work/artifacts/" "$work/new" "tests/fuzz/corpus/$t" \
    >"$work/log" 2>&1
  local rc=$? secs=$((SECONDS - start))
  local execs speed rss
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$work/log" | tail -1)
  local found
  found=$(ls "$work/artifacts" | head -3 | tr '\n' ' ')
  local outcome="no finding"
  if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
    outcome="**finding** (exit $rc): $found"
  else
    "$BUILD/fuzz_$t" -merge=1 "tests/fuzz/corpus/$t" "$work/new" >"$work/merge.log" 2>&1 ||
      outcome="no finding; the merge failed (see $work/merge.log)"
  fi
  local why="${MAX_S} s reached"
  [ "${execs:-0}" -ge "$RUNS" ] && why="${RUNS} runs reached"
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$t" "${execs:-?}" "$secs" "${speed:-?}" \
    "${rss:-?}" "$why" "$(ls "tests/fuzz/corpus/$t" | wc -l)" "$outcome" \
    "$(date -u '+%Y-%m-%d'), binary built $(date -u -r "$BUILD/fuzz_$t" '+%H:%M') (main was at $(git rev-parse --short HEAD) when the row was written), $JOBS at a time, nice $(nice)" >"$work/row"
  echo "fuzz-long: $t: ${execs:-?} executions in $secs s, $outcome"
}

running=0
for t in "${TARGETS[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait

# Rows of targets this run did not touch are kept from the previous table (each row says
# when and how it was run), so targets can be run one at a time and the table stays whole.
declare -A KEEP=()
if [ -f "$OUT" ]; then
  while IFS= read -r line; do
    name=$(awk -F'|' '{gsub(/ /, "", $2); print $2}' <<<"$line")
    cols=$(awk -F'|' '{print NF}' <<<"$line")
    # rows written before the "run" column existed: say so instead of inventing a date
    [ "$cols" -eq 10 ] && line="${line} 2026-12-03 (before this column), 1 at a time |"
    KEEP[$name]=$line
  done < <(grep -E '^\| [a-z_]+ \| [0-9?]' "$OUT")
fi
for t in "${TARGETS[@]}"; do KEEP[$t]=$(cat "$BUILD/fuzz-long/$t/row"); done

{
  echo "# Long fuzzing runs"
  echo
  echo "Written by \`scripts/fuzz-long.sh\` (\`make fuzz-long\`); the fast replay of the corpora"
  echo "runs in \`make test\`."
  echo
  echo "- last run: $(date -u '+%Y-%m-%d %H:%M UTC'), targets: ${TARGETS[*]}"
  echo "- machine: $(nproc) CPUs, $(uname -m), Linux $(uname -r)"
  echo "- command: \`FUZZ_RUNS=$RUNS FUZZ_MAX_SECONDS=$MAX_S FUZZ_JOBS=$JOBS bash scripts/fuzz-long.sh\`"
  echo "  (clang $(clang --version | sed -n 's/.*version \([0-9.]*\).*/\1/p' | head -1), ASan + UBSan, libFuzzer)"
  echo "- goal: 10,000,000 executions per target, or an hour for a target slower than 3,000 exec/s"
  echo
  echo "| target | executions | seconds | exec/s | peak RSS (MB) | stopped at | corpus files | outcome | run |"
  echo "|---|---:|---:|---:|---:|---|---:|---|---|"
  for t in $(printf '%s\n' "${!KEEP[@]}" | sort); do echo "${KEEP[$t]}"; done
} >"$OUT.new"
mv "$OUT.new" "$OUT"
cat "$OUT"
grep -q '\*\*finding\*\*' "$OUT" && exit 1
exit 0
