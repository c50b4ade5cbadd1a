#!/usr/bin/env bash
# Builds cnnvis against LibTorch 2.x (Debian 13 "trixie": libtorch-dev 2.6.0) and runs its unit
# suite there, on a Debian 12 host that has LibTorch 1.13.
#
#   scripts/check-libtorch2.sh            # build + `ctest -R unit`
#   scripts/check-libtorch2.sh --all      # build + the whole ctest suite
#
# A debootstrap chroot of trixie is created once and cached outside the source tree
# (${CNNVIS_CHROOT:-/var/cache/cnnvis/trixie}); the build dependencies of scripts/setup.sh are
# installed there, the source tree is bind-mounted read-only at /src, and cnnvis is built in the
# chroot's /build (incrementally, with ccache in the chroot's /var/cache/ccache). Every run is
# idempotent: a finished stage is skipped, an interrupted one is redone. Mounts live in a private
# mount namespace (unshare), so nothing stays mounted when the script ends or is killed.
#
# Environment: CNNVIS_ZOO_FILES_MODELS (for --all: the weight-file test's models; default the CI's
# one per code path: alexnet vgg11 vgg16_bn resnet18 resnet50), CNNVIS_CHROOT (chroot directory), CNNVIS_MIRROR (Debian mirror; default: the
# first .../debian URI of the host's /etc/apt/sources.list*), CNNVIS_JOBS (build jobs, 2),
# CNNVIS_BUILD_LOCK (file lock held while compiling, /tmp/cnnvis-build.lock).
# Needs root (debootstrap, chroot, mount); re-runs itself with sudo otherwise.
# The last line says PASS or FAIL; the exit status is 0 only for PASS.
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
if [ "$(id -u)" -ne 0 ]; then exec sudo -E bash "$SRC/scripts/check-libtorch2.sh" "$@"; fi

SUITE=trixie
ROOT="${CNNVIS_CHROOT:-/var/cache/cnnvis/$SUITE}"
JOBS="${CNNVIS_JOBS:-2}"
ZOO_MODELS="${CNNVIS_ZOO_FILES_MODELS:-alexnet vgg11 vgg16_bn resnet18 resnet50}"
LOCK="${CNNVIS_BUILD_LOCK:-/tmp/cnnvis-build.lock}"
TESTS=unit
case "${1:-}" in
  "") ;;
  --all) TESTS=all ;;
  -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
  *) echo "check-libtorch2: unknown argument '$1' (use --all or nothing)" >&2; exit 2 ;;
esac
case "$ROOT" in
  "$SRC"|"$SRC"/*) echo "check-libtorch2: CNNVIS_CHROOT must be outside the source tree" >&2; exit 2 ;;
esac

# The package list of scripts/setup.sh, under trixie's names (the same names as in bookworm).
PACKAGES=(
  build-essential cmake ninja-build ccache
  libtorch-dev libopenblas0-openmp
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  libcli11-dev nlohmann-json3-dev libgtest-dev libbenchmark-dev libeigen3-dev
  python3-torch python3-torchvision python3-numpy
)

start=$SECONDS
log() { echo "check-libtorch2: [$((SECONDS - start))s] $*"; }
reported=0
result() {  # result PASS|FAIL message
  reported=1
  echo "check-libtorch2: $1: $2 ($((SECONDS - start)) s)"
  [ "$1" = PASS ]
}
trap 'rc=$?; [ $rc -eq 0 ] || [ $reported = 1 ] || echo "check-libtorch2: FAIL: stopped at line $LINENO (exit $rc, $((SECONDS - start)) s)"' EXIT

mirror() {
  if [ -n "${CNNVIS_MIRROR:-}" ]; then echo "$CNNVIS_MIRROR"; return; fi
  local uri
  # deb822 "URIs: http://.../debian" or one-line "deb [opts] http://.../debian suite ...".
  uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
           2>/dev/null | grep -E '^[[:space:]]*(deb|URIs:)[[:space:]]' | grep -oE 'https?://[^ ]+' |
         grep -E '/debian/?$' | head -n1 || true)"
  echo "${uri:-http://deb.debian.org/debian}"
}

# Runs a command in the chroot, with /proc, /dev and the source tree mounted in a private mount
# namespace (gone when the command ends).
in_chroot() {
  unshare --mount --propagation private -- /bin/bash -euc '
    root="$1"; src="$2"; zoo_models="$3"; shift 3
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mkdir -p "$root/src"
    mount --bind "$src" "$root/src"
    mount -o remount,bind,ro "$root/src"
    exec chroot "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
      HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
      CCACHE_DIR=/var/cache/ccache OMP_WAIT_POLICY=PASSIVE \
      CNNVIS_ZOO_FILES_MODELS="$zoo_models" "$@"
  ' in_chroot "$ROOT" "$SRC" "$ZOO_MODELS" "$@"
}

# ---- 1. the chroot (once) ----
if [ ! -f "$ROOT/.cnnvis-bootstrap-done" ]; then
  if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap on the host"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null; }
  fi
  m="$(mirror)"
  log "debootstrap $SUITE from $m into $ROOT (once; a few minutes)"
  rm -rf "$ROOT.partial"
  mkdir -p "$(dirname "$ROOT")"
  debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$ROOT.partial" "$m" \
    > "$(dirname "$ROOT")/debootstrap-$SUITE.log" 2>&1 ||
    { tail -n 20 "$(dirname "$ROOT")/debootstrap-$SUITE.log"; result FAIL "debootstrap failed"; exit 1; }
  touch "$ROOT.partial/.cnnvis-bootstrap-done"
  rm -rf "$ROOT"
  mv "$ROOT.partial" "$ROOT"
fi

# ---- 2. the build dependencies (again only when the list changes) ----
want="$(printf '%s\n' "${PACKAGES[@]}")"
if [ "$(cat "$ROOT/.cnnvis-packages" 2>/dev/null)" != "$want" ]; then
  log "installing the build dependencies in the chroot"
  cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
  in_chroot apt-get update -q >/dev/null
  in_chroot apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" > "$ROOT/.cnnvis-apt.log" 2>&1 ||
    { tail -n 20 "$ROOT/.cnnvis-apt.log"; result FAIL "apt-get install in the chroot failed"; exit 1; }
  # OpenBLAS as the BLAS, as scripts/setup.sh does on the host.
  in_chroot update-alternatives --set libblas.so.3-x86_64-linux-gnu \
    /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3 >/dev/null
  in_chroot apt-get clean
  echo "$want" > "$ROOT/.cnnvis-packages"
fi
torch_version="$(in_chroot dpkg-query -W -f='${Version}' libtorch-dev)"
gcc_version="$(in_chroot gcc -dumpfullversion)"
log "LibTorch $torch_version, gcc $gcc_version, $(in_chroot cmake --version | head -n1)"

# ---- 3. configure and build (in the chroot's /build, under the shared build lock) ----
if [ ! -f "$ROOT/build/build.ninja" ]; then
  log "configuring /build"
  in_chroot cmake -S /src -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release > "$ROOT/.cnnvis-configure.log" 2>&1 ||
    { tail -n 30 "$ROOT/.cnnvis-configure.log"; rm -f "$ROOT/build/build.ninja"
      result FAIL "cmake configure failed against LibTorch $torch_version"; exit 1; }
fi
log "building (-j$JOBS; waiting for $LOCK if another build holds it)"
build_start=$SECONDS
# (the fd form of `flock "$LOCK" <build command>`: the same lock, held only while compiling)
if ! ( flock 9 && echo "$SECONDS" > "$ROOT/.cnnvis-lock-acquired" &&
       in_chroot cmake --build /build --parallel "$JOBS" ) 9>"$LOCK" > "$ROOT/.cnnvis-build.log" 2>&1; then
  grep -E 'error|Error' "$ROOT/.cnnvis-build.log" | head -n 40 || tail -n 40 "$ROOT/.cnnvis-build.log"
  result FAIL "build failed against LibTorch $torch_version (log: $ROOT/.cnnvis-build.log)"; exit 1
fi
acquired="$(cat "$ROOT/.cnnvis-lock-acquired")"
log "built: $((SECONDS - acquired)) s compiling after $((acquired - build_start)) s waiting for the lock" \
    "($(grep -c '^\[' "$ROOT/.cnnvis-build.log" || true) steps, $(grep -c 'warning:' "$ROOT/.cnnvis-build.log" || true) warnings)"

# ---- 4. the tests ----
ctest_args=(--test-dir /build --output-on-failure)
[ "$TESTS" = unit ] && ctest_args+=(-R '^unit$')
log "ctest ${ctest_args[*]:2}"
test_start=$SECONDS
if in_chroot ctest "${ctest_args[@]}" > "$ROOT/.cnnvis-ctest.log" 2>&1; then
  summary="$(grep -E 'tests passed' "$ROOT/.cnnvis-ctest.log" | tail -n1)"
  gtests="$(in_chroot /build/tests/cnnvis_tests --gtest_list_tests --gtest_filter='-ZooFiles.*' | grep -c '^  ' || true)"
  summary="$summary; the unit suite holds $gtests GoogleTest tests"
  log "tests took $((SECONDS - test_start)) s"
  result PASS "cnnvis built against LibTorch $torch_version (Debian $SUITE, gcc $gcc_version); ctest ${TESTS}: $summary"
else
  grep -E 'FAILED|Failed|\*\*\*' "$ROOT/.cnnvis-ctest.log" | head -n 40 || true
  tail -n 15 "$ROOT/.cnnvis-ctest.log"
  result FAIL "tests failed against LibTorch $torch_version (log: $ROOT/.cnnvis-ctest.log)"; exit 1
fi
