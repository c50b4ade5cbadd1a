#!/bin/bash
# cnnvis batch under MPI (issue 18): 1 rank against 2 ranks on this machine, the same images,
# method and pictures. Rows: one process without mpirun (THREADS threads), `mpirun -np 1
# --bind-to none` (THREADS threads; mpirun's default binds a rank to one core) and `mpirun -np 2`
# (THREADS / 2 threads each, a core each, so that the ranks share the same cores). The demo model on COUNT demo scenes at 96 px, and VGG16 (seeded weights) on the
# same scenes at 224. Each figure is one timed run of the whole command (start-up and model load
# included), alternating the commands ROUNDS times; the median per command.
#   bench/mpi.sh [BUILD_DIR]    (COUNT, default 32; METHOD, grad-cam; BATCH, 16; THREADS, 2;
#                                ROUNDS, 3; MPIRUN, mpirun)
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$src/build}" && pwd)"
count="${COUNT:-32}"; method="${METHOD:-grad-cam}"; batch="${BATCH:-16}"
threads="${THREADS:-2}"; rounds="${ROUNDS:-3}"; mpirun="${MPIRUN:-mpirun}"
half=$(( threads / 2 > 0 ? threads / 2 : 1 ))
mpi=("$mpirun" --oversubscribe)
[ "$(id -u)" = 0 ] && mpi+=(--allow-run-as-root)
export OMPI_MCA_btl_vader_single_copy_mechanism=none
# shellcheck source=bench/scenes_timing.sh
source "$src/bench/scenes_timing.sh"
echo "| model | images | method | batch | command | seconds | images / s | vs 1 rank |"
echo "| --- | ---: | --- | ---: | --- | ---: | ---: | ---: |"
for model in demo vgg16; do
  margs=(--model "$model")
  [ "$model" = vgg16 ] && margs+=(--random-weights 0 --size 224)
  args=(batch --methods "$method" "${margs[@]}" --images "$work/scenes" --batch "$batch")
  declare -A times=()
  for round in $(seq "$rounds"); do
    rm -rf "$work/out"*
    times[plain]+="$(seconds "$build/cnnvis" --threads "$threads" "${args[@]}" --out "$work/out-p") "
    times[one]+="$(seconds "${mpi[@]}" -np 1 --bind-to none "$build/cnnvis" --threads "$threads" "${args[@]}" --out "$work/out-1") "
    times[two]+="$(seconds "${mpi[@]}" -np 2 "$build/cnnvis" --threads "$half" "${args[@]}" --out "$work/out-2") "
  done
  /usr/bin/python3 - "$model" "$count" "$method" "$batch" "$threads" "$half" "${times[plain]}" "${times[one]}" "${times[two]}" <<'PY'
import statistics, sys
model, count, method, batch, threads, half = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
med = lambda s: statistics.median(float(x) for x in s.split())
plain, one, two = med(sys.argv[7]), med(sys.argv[8]), med(sys.argv[9])
for name, t in [(f"one process, {threads} threads", plain), (f"mpirun -np 1 --bind-to none, {threads} threads", one),
                (f"mpirun -np 2, {half} thread(s) each", two)]:
    print(f"| {model} | {count} | {method} | {batch} | {name} | {t:.2f} | {count / t:.2f} | {one / t:.2f}x |")
PY
  unset times
done
