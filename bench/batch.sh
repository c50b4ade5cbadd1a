#!/bin/bash
# cnnvis batch's throughput (issue 18): images per second of `cnnvis batch` at --batch 1 and 16
# against `cnnvis explain` given the same images (one process, the images one at a time), with
# the same method and the same pictures written. The demo model on COUNT demo scenes at 96 px,
# and VGG16 (seeded weights) on the same scenes at 224. Each figure is one timed run of the
# whole command (model load included, once per command), alternating the commands ROUNDS times;
# the median per command.
#   bench/batch.sh [BUILD_DIR]      (COUNT, default 32; METHOD, default grad-cam; THREADS, 2;
#                                    ROUNDS, 3)
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$src/build}" && pwd)"
count="${COUNT:-32}"; method="${METHOD:-grad-cam}"; threads="${THREADS:-2}"; rounds="${ROUNDS:-3}"
# shellcheck source=bench/scenes_timing.sh
source "$src/bench/scenes_timing.sh"
echo "| model | images | method | command | seconds | images / s | vs explain |"
echo "| --- | ---: | --- | --- | ---: | ---: | ---: |"
for model in demo vgg16; do
  margs=(--model "$model")
  [ "$model" = vgg16 ] && margs+=(--random-weights 0 --size 224)
  declare -A times=()
  for round in $(seq "$rounds"); do
    rm -rf "$work/out"*
    times[explain]+="$(seconds "$build/cnnvis" --threads "$threads" explain "$method" "${margs[@]}" \
      --image "$work/scenes"/*.png --out "$work/out-e") "
    for b in 1 16; do
      times[batch$b]+="$(seconds "$build/cnnvis" --threads "$threads" batch --methods "$method" \
        "${margs[@]}" --images "$work/scenes" --batch "$b" --out "$work/out-b$b") "
    done
  done
  /usr/bin/python3 - "$model" "$count" "$method" "${times[explain]}" "${times[batch1]}" "${times[batch16]}" <<'PY'
import statistics, sys
model, count, method = sys.argv[1], int(sys.argv[2]), sys.argv[3]
med = lambda s: statistics.median(float(x) for x in s.split())
explain = med(sys.argv[4])
for name, t in [("explain (one image at a time)", explain), ("batch --batch 1", med(sys.argv[5])),
                ("batch --batch 16", med(sys.argv[6]))]:
    print(f"| {model} | {count} | {method} | {name} | {t:.2f} | {count / t:.2f} | {explain / t:.2f}x |")
PY
  unset times
done
