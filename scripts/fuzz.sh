#!/usr/bin/env bash
# Builds the libFuzzer harnesses of the file readers (tests/fuzz/) with clang, ASan and UBSan
# into build-fuzz/, generates their seed corpora and crafted inputs (tests/fuzz/make_corpus.py),
# runs every crafted and committed regression input once, then fuzzes each harness for SECONDS
# (default 60). Exits non-zero on any finding: a crash, sanitizer report, leak, timeout, an
# allocation above 2 GB, an exception other than cnnvis::Error, a broken invariant.
#
#   scripts/fuzz.sh [SECONDS]
#
# Environment: CNNVIS_FUZZ_HARNESSES="weights pickle npy image" (a subset to run),
# CNNVIS_FUZZ_CXX (default clang++-14), CNNVIS_JOBS (build parallelism), CNNVIS_BUILD_LOCK (a
# lock file that every build step takes with flock, for checkouts shared by several builders).
# Findings land in build-fuzz/findings/<harness>/, logs in build-fuzz/logs/; to keep one as a
# regression input, minimize it (fuzz_<harness> -minimize_crash=1 -runs=10000 FILE) and copy it
# to tests/fuzz/regressions/<harness>/ (small files only).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2; }
build=build-fuzz
harnesses=(${CNNVIS_FUZZ_HARNESSES:-weights pickle npy image})
cxx="${CNNVIS_FUZZ_CXX:-clang++-14}"
python=/usr/bin/python3
[ -x "$python" ] || python=python3

# ---- build (under the shared lock if there is one; the fuzzing runs outside it) ----
if [ -n "${CNNVIS_BUILD_LOCK:-}" ]; then
  exec 9>"$CNNVIS_BUILD_LOCK"
  flock 9
fi
build_start=$(date +%s)
if [ ! -f "$build/build.ninja" ]; then
  cmake -S tests/fuzz -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
fi
cmake --build "$build" --parallel "${CNNVIS_JOBS:-$(nproc)}" --target "${harnesses[@]/#/fuzz_}"
echo "fuzz.sh: harnesses built in $(( $(date +%s) - build_start )) s"
if [ -n "${CNNVIS_BUILD_LOCK:-}" ]; then exec 9>&-; fi

# ---- corpora (regenerated when the generator changes) ----
stamp="$build/corpus/.stamp"
if [ ! -f "$stamp" ] || [ tests/fuzz/make_corpus.py -nt "$stamp" ]; then
  rm -rf "$build/corpus" "$build/crafted"
  "$python" tests/fuzz/make_corpus.py "$build"
  touch "$stamp"
fi

# Limits of every run: a single allocation or the resident set above 2 GB is a finding, and so
# is an input taking more than 10 s (25 s for the crafted inputs, some of which are 400 KB).
limits=(-rss_limit_mb=2048 -malloc_limit_mb=2048)
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
mkdir -p "$build/logs"
failed=()

# ---- regression inputs: the crafted cases of issue 15 and every committed finding ----
for h in "${harnesses[@]}"; do
  inputs=()
  for dir in "$build/crafted/$h" "tests/fuzz/regressions/$h"; do
    [ -d "$dir" ] && while IFS= read -r -d '' f; do inputs+=("$f"); done \
      < <(find "$dir" -type f ! -name '*.md' -print0 | sort -z)
  done
  [ ${#inputs[@]} -eq 0 ] && continue
  log="$build/logs/${h}_regressions.log"
  start=$(date +%s)
  if "$build/fuzz_$h" "${limits[@]}" -timeout=25 "${inputs[@]}" >"$log" 2>&1; then
    echo "fuzz_$h: ${#inputs[@]} regression inputs pass ($(( $(date +%s) - start )) s)"
  else
    # One process stops at the first failure: rerun each input alone to name them all.
    bad=()
    rm -f "$log.failures"
    for f in "${inputs[@]}"; do
      rc=0
      "$build/fuzz_$h" "${limits[@]}" -timeout=25 "$f" >"$log.one" 2>&1 || rc=$?
      if [ "$rc" -ne 0 ]; then
        bad+=("$f")
        echo "--- $f (exit $rc)" >>"$log.failures"
        grep -E "ERROR|SUMMARY|invariant|terminate|what\(\)|^ *#[0-9] " "$log.one" \
          >>"$log.failures" || true
      fi
    done
    rm -f "$log.one"
    echo "fuzz_$h: ${#bad[@]} of ${#inputs[@]} regression inputs FAIL (details: $log.failures):"
    printf '  %s\n' "${bad[@]}"
    failed+=("fuzz_$h regressions")
  fi
done

# ---- fuzzing ----
for h in "${harnesses[@]}"; do
  [ "$seconds" -gt 0 ] || break
  work="$build/work/$h"  # new inputs found in earlier runs are kept here and reused
  findings="$build/findings/$h"
  mkdir -p "$work" "$findings"
  dict=()
  case "$h" in pickle|weights) dict=(-dict=tests/fuzz/pickle.dict) ;; esac
  log="$build/logs/$h.log"
  status=0
  "$build/fuzz_$h" "$work" "$build/corpus/$h" "${limits[@]}" -timeout=10 "${dict[@]}" \
    -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$findings/" \
    >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [ "$status" -eq 0 ]; then
    echo "fuzz_$h: ${runs:-?} runs in ${seconds} s (${rate:-?} exec/s), no finding"
  else
    echo "fuzz_$h: FINDING after ${runs:-?} runs (exit $status); inputs in $findings/, log $log:"
    grep -E "ERROR|SUMMARY|invariant|terminate|what\(\)|^ *#[0-3] |Test unit written" "$log" \
      | head -20 | sed 's/^/  /'
    failed+=("fuzz_$h")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: findings in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: no finding"
