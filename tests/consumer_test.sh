#!/usr/bin/env bash
# Installs cnnvis from the build tree into a temporary prefix, then configures, builds and runs
# tests/consumer against it with find_package(cnnvis).
set -euo pipefail
src="$1"; build="$2"
work="$build/consumer-test"
rm -rf "$work"; mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
test -f "$work/prefix/include/cnnvis/cnnvis.hpp"
test -x "$work/prefix/bin/cnnvis"
cmake -S "$src/tests/consumer" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_CXX_COMPILER_LAUNCHER=ccache > "$work/configure.log"
cmake --build "$work/build" > "$work/build.log"
"$work/build/consumer" | grep -q "consumer ok"
echo "consumer: built and ran against the installed package"
