#!/usr/bin/env bash
# LeakSanitizer run of the CLI: one `cnnvis explain` per method family (and one `synthesize`,
# and three error paths) on the demo model, with a clang AddressSanitizer build (ASan includes LeakSanitizer) in
# build-lsan/. Fails if any run reports a leak or a memory error, or exits non-zero.
#
#   scripts/leak-check.sh            # builds build-lsan/ (incrementally), runs every case
#   scripts/leak-check.sh grad-cam   # only the cases whose name contains this text
#
# LibTorch and its libraries are not instrumented; only allocations that are unreachable at exit
# are leaks (memory that LibTorch's statics still hold is not reported). The suppressions in
# scripts/lsan.supp are documented one by one there and name only frames outside cnnvis; a leak
# whose stack holds a cnnvis frame (cnnvis::, tools/, src/) is never suppressed: the script
# fails if a suppression ever matched one (checked below with the suppression's own stacks).
# Environment: CNNVIS_JOBS (build jobs, 2), CNNVIS_BUILD_LOCK (lock held while compiling).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC="$(pwd)"
BUILD="$SRC/build-lsan"
JOBS="${CNNVIS_JOBS:-2}"
LOCK="${CNNVIS_BUILD_LOCK:-/tmp/cnnvis-build.lock}"
FILTER="${1:-}"
start=$SECONDS

if [ ! -f "$BUILD/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS="-fsanitize=address -fno-omit-frame-pointer -fno-optimize-sibling-calls" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address" \
    -DCNNVIS_BUILD_TESTS=OFF -DCNNVIS_BUILD_BENCH=OFF >/dev/null
fi
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
# A canary that leaks on purpose: LeakSanitizer must report it, or this environment cannot
# detect leaks at all (ptrace, a missing runtime) and a PASS would mean nothing.
cat > "$work/canary.cpp" <<'CANARY'
#include <cstdlib>
__attribute__((noinline)) void* leak_canary() { return std::malloc(4242); }
int main() { void* volatile p = leak_canary(); p = nullptr; (void)p; return 0; }
CANARY
echo "leak-check: building $BUILD (cnnvis_cli; waiting for $LOCK if another build holds it)"
wait_start=$(date +%s)
flock "$LOCK" bash -c 'date +%s > "$3/acquired"; cmake --build "$1" --parallel "$2" --target cnnvis_cli &&
  clang++ -fsanitize=address -g -O0 "$3/canary.cpp" -o "$3/canary"' build "$BUILD" "$JOBS" "$work"
acquired=$(cat "$work/acquired")
echo "leak-check: built in $(($(date +%s) - acquired)) s after $((acquired - wait_start)) s waiting for the lock"
CLI="$BUILD/cnnvis"

image="$SRC/data/scenes/scene_1000_square.png"
demo=(--model demo --image "$image" --raw)
# Weight files holding reference cycles (a list appended to itself in the legacy format, a dict
# holding itself in the zip format): refused with one line ("contains no tensors"), nothing
# leaked (the pickle values once were shared_ptr cycles).
/usr/bin/python3 - "$work" <<'PY'
import sys, torch
l = []; l.append(l)
torch.save(l, sys.argv[1] + "/list-cycle.pth", _use_new_zipfile_serialization=False)
d = {}; d[1] = d
torch.save(d, sys.argv[1] + "/dict-cycle.pth")
PY
# TorchScript models (src/models/script.cpp, script_graph.cpp), written by Debian's
# python3-torch as the unit tests write them.
ts="$work/torchscript"
/usr/bin/python3 "$SRC/tests/python/save_torchscript.py" "$ts"
small=(--image "$image" --raw --size 64)
# name|expected exit status|arguments: one explain per method family (cheap options where a
# method has them), one synthesize, and error paths (an exception thrown mid-method, refused
# weight files), which is where cleanup is most often missed.
cases=(
  "vanilla|0|explain vanilla ${demo[*]}"
  "guided|0|explain guided-backprop ${demo[*]}"
  "integrated-gradients|0|explain integrated-gradients ${demo[*]} --option steps=8"
  "smoothgrad|0|explain smoothgrad ${demo[*]} --option samples=4"
  "occlusion|0|explain occlusion ${demo[*]} --option stride=16"
  "grad-cam|0|explain grad-cam ${demo[*]}"
  "score-cam|0|explain score-cam ${demo[*]}"
  "ablation-cam|0|explain ablation-cam ${demo[*]}"
  "lrp|0|explain lrp ${demo[*]}"
  "synthesize|0|synthesize filter --model demo --layer features.17 --filter 0-1 --steps 4 --size 64"
  "error-bad-layer|2|explain grad-cam ${demo[*]} --layer features.99"
  "error-list-cycle|1|explain vanilla ${demo[*]} --weights $work/list-cycle.pth"
  "error-dict-cycle|1|explain vanilla ${demo[*]} --weights $work/dict-cycle.pth"
  "script-grad-cam|0|explain grad-cam --model $ts/resnet18_script.pt ${small[*]}"
  "script-guided-densenet|0|explain guided-backprop --model $ts/densenet121_script.pt ${small[*]}"
  "script-ablation-cam|0|explain ablation-cam --model $ts/resnet18_trace.pt ${small[*]}"
  "script-lrp|0|explain lrp --model $ts/resnet18_trace.pt ${small[*]}"
  "script-segmentation|0|explain vanilla --model $ts/lraspp_mobilenet_v3_large_script.pt ${small[*]}"
  "script-synthesize|0|synthesize filter --preset lucid --model $ts/densenet121_script.pt --layer features.denseblock1 --filter 0 --steps 3 --size 48"
  "script-error-lrp-densenet|2|explain lrp --model $ts/densenet121_script.pt ${small[*]}"
  "script-error-frozen|1|explain vanilla --model $ts/resnet18_frozen.pt ${small[*]}"
  "script-error-newer-op|1|explain vanilla --model $ts/newer_op.pt ${small[*]}"
)

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23:alloc_dealloc_mismatch=0:${ASAN_OPTIONS:-}"
export LSAN_OPTIONS="suppressions=$SRC/scripts/lsan.supp:print_suppressions=1:report_objects=0:${LSAN_OPTIONS:-}"
command -v llvm-symbolizer >/dev/null && export ASAN_SYMBOLIZER_PATH="$(command -v llvm-symbolizer)"
export OMP_WAIT_POLICY=PASSIVE

if "$work/canary" > "$work/canary.log" 2>&1 || ! grep -q 'leak_canary' "$work/canary.log"; then
  cat "$work/canary.log"
  echo "leak-check: FAIL: LeakSanitizer did not report the canary's leak; leaks cannot be detected here"
  exit 1
fi
echo "leak-check: canary leak reported by LeakSanitizer (detection works)"

failures=0; ran=0
for c in "${cases[@]}"; do
  IFS='|' read -r name want args <<< "$c"
  [ -n "$FILTER" ] && [[ "$name" != *"$FILTER"* ]] && continue
  ran=$((ran + 1))
  out="$work/$name"; mkdir -p "$out"
  t0=$SECONDS
  # shellcheck disable=SC2086
  set +e; "$CLI" --threads 2 $args --out "$out" > "$work/$name.log" 2>&1; rc=$?; set -e
  verdict=ok
  if grep -q 'ERROR: LeakSanitizer' "$work/$name.log"; then
    verdict="LEAK ($(grep -oE 'SUMMARY: AddressSanitizer: [0-9]+ byte\(s\) leaked in [0-9]+ allocation\(s\)' "$work/$name.log" | head -n1))"
  elif grep -q 'ERROR: AddressSanitizer' "$work/$name.log"; then
    verdict="ASAN: $(grep -m1 'ERROR: AddressSanitizer' "$work/$name.log")"
  elif [ "$rc" -ne "$want" ]; then
    verdict="exit $rc, expected $want: $(tail -n1 "$work/$name.log")"
  elif [ "$want" -eq 0 ] && ! ls "$out"/*.png >/dev/null 2>&1; then
    verdict="no PNG written"
  fi
  # Suppressions used: printed by LSan as "<count> <bytes> <pattern>" lines.
  supp="$(awk '/^Suppressions used:/{f=1;next} f&&/^ *[0-9]+ +[0-9]+ /{printf "%s%s", s, $3; s=","} /^-+$/{if(f)f=0}' "$work/$name.log")"
  [ "$want" -eq 0 ] || detail=" (exit $rc: $(grep -m1 'error' "$work/$name.log" | cut -c1-90))"
  [ "$want" -eq 0 ] && detail=""
  printf 'leak-check: %-22s %3ss %s%s%s\n' "$name" "$((SECONDS - t0))" "$verdict" "$detail" \
    "${supp:+ (suppressed: $supp)}"
  if [ "$verdict" != ok ]; then
    failures=$((failures + 1))
    cp "$work/$name.log" "$BUILD/leak-$name.log"
    grep -A40 -m1 -E 'ERROR: (LeakSanitizer|AddressSanitizer)' "$work/$name.log" | head -n 60 || tail -n 20 "$work/$name.log"
  fi
done
[ $ran -gt 0 ] || { echo "leak-check: no case matches '$FILTER'" >&2; exit 2; }
if [ $failures -eq 0 ]; then
  echo "leak-check: PASS: $ran runs, no leak and no memory error reported ($((SECONDS - start)) s)"
else
  echo "leak-check: FAIL: $failures of $ran runs (logs: $BUILD/leak-*.log; $((SECONDS - start)) s)"
  exit 1
fi
