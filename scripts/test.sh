#!/usr/bin/env bash
# Builds (incrementally) and runs the whole test suite through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build build --parallel "${CNNVIS_JOBS:-$(nproc)}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
ctest --test-dir build --output-on-failure "$@"
