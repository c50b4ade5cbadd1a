#!/usr/bin/env bash
# Installs every Debian package cnnvis needs (idempotent), makes OpenBLAS the active BLAS, then
# configures and builds a Release build in build/. Run as root (or with sudo available).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PACKAGES=(
  build-essential cmake ninja-build ccache
  libtorch-dev libopenblas0-openmp
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  libcli11-dev nlohmann-json3-dev libgtest-dev libbenchmark-dev libeigen3-dev
  # MPI for `mpirun ... cnnvis batch|evaluate` (cnnvis builds without it and says so).
  libopenmpi-dev openmpi-bin
  # test-only: Debian's PyTorch generates weight files in the three formats at test time,
  # and numpy checks that .npy output reads back.
  python3-torch python3-torchvision python3-numpy
)
# Optional: a browser for scripts/screenshot.sh (docs only; no test needs it).
if [ "${CNNVIS_WITH_BROWSER:-0}" = 1 ]; then PACKAGES+=(chromium); fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Without OpenBLAS, libblas.so.3 is the reference BLAS and linear layers run ~10x slower.
arch_triplet="$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
openblas="/usr/lib/${arch_triplet}/openblas-openmp/libblas.so.3"
if [ -e "$openblas" ]; then
  current="$(readlink -f "/usr/lib/${arch_triplet}/libblas.so.3" || true)"
  if [ "$current" != "$(readlink -f "$openblas")" ]; then
    $SUDO update-alternatives --set "libblas.so.3-${arch_triplet}" "$openblas"
  fi
  echo "setup: BLAS = $(readlink -f "/usr/lib/${arch_triplet}/libblas.so.3")"
else
  echo "setup: error: $openblas not found; install libopenblas0-openmp" >&2
  exit 1
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build --parallel "${CNNVIS_JOBS:-$(nproc)}"
echo "setup: done. Try: build/cnnvis --help"
