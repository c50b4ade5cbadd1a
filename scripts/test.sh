#!/usr/bin/env bash
# Builds (incrementally) and runs the whole test suite through CTest.
#   scripts/test.sh [CTEST ARGS]            the whole suite; CTest arguments pass through
#   scripts/test.sh --kernels [CTEST ARGS]  the unit suite (CTest test `unit`) once per CPU
#                                           kernel setting below; fails if any run fails
# CNNVIS_TEST_KERNELS=1 scripts/test.sh is the same as --kernels. CTest runs CNNVIS_TEST_JOBS
# tests at once (default: the number of cores; the unit suite, which uses them all, runs alone). No test may depend on which
# kernels the CPU picks (oneDNN's AVX-512 convolutions round otherwise than its AVX2 ones), so
# run --kernels whenever numerics change.
set -euo pipefail
cd "$(dirname "$0")/.."
kernels="${CNNVIS_TEST_KERNELS:-0}"
if [ "${1:-}" = "--kernels" ]; then
  kernels=1
  shift
fi
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build build --parallel "${CNNVIS_JOBS:-$(nproc)}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
if [ "$kernels" = "0" ]; then
  exec ctest --test-dir build --output-on-failure -j "${CNNVIS_TEST_JOBS:-$(nproc)}" "$@"
fi

# oneDNN's instruction-set cap (DNNL_MAX_CPU_ISA), the machine's default (whatever the CPU
# offers: AVX-512 where it has it), and ATen's own vectorized kernels switched off.
settings=("DNNL_MAX_CPU_ISA=SSE41" "DNNL_MAX_CPU_ISA=AVX2" "" "ATEN_CPU_CAPABILITY=default")
summary=()
failed=0
for setting in "${settings[@]}"; do
  label="${setting:-machine default}"
  # Unset the variables first, so that the caller's environment does not leak into a run.
  run=(env -u DNNL_MAX_CPU_ISA -u ONEDNN_MAX_CPU_ISA -u ATEN_CPU_CAPABILITY $setting)
  # The instruction set oneDNN really uses under this setting (its verbose mode names it).
  isa=$("${run[@]}" DNNL_VERBOSE=1 build/tests/cnnvis_tests \
          --gtest_filter=Model.TapsHaveTorchvisionShapesAndNames 2> /dev/null \
        | sed -n 's/^onednn_verbose,info,cpu,isa://p' | head -n 1) || true
  echo "== unit tests with $label (oneDNN: ${isa:-unknown})"
  start=$SECONDS
  if "${run[@]}" ctest --test-dir build --output-on-failure -R '^unit$' "$@"; then
    result=passed
  else
    result=FAILED
    failed=1
  fi
  summary+=("$(printf '%-28s %-7s in %4d s  (oneDNN: %s)' "$label" "$result" \
                 $((SECONDS - start)) "${isa:-unknown}")")
done
echo "== unit tests per kernel setting"
printf '%s\n' "${summary[@]}"
exit "$failed"
