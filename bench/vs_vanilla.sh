#!/usr/bin/env bash
# Times integrated gradients (50 steps) and SmoothGrad (50 samples) against 50 vanilla
# gradients of the same image in the same process (`cnnvis bench METHOD --vs vanilla:50`, the
# two alternating) and prints the markdown table of docs/BENCHMARKS.md.
#   bench/vs_vanilla.sh [CNNVIS] [MODELS...]   e.g. bench/vs_vanilla.sh build/cnnvis resnet50 vgg16
# Env: THREADS (default 2), REPEAT (default 3; 2 for vgg*), SIZE (224).
set -euo pipefail
cnnvis="${1:-build/cnnvis}"; shift || true
models=("${@:-resnet50}")
threads="${THREADS:-2}"; size="${SIZE:-224}"
echo "| method | model | forward | method time | ratio to forward | vanilla (batch 1) | ratio to 50 vanilla | peak RSS |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for model in "${models[@]}"; do
  repeat="${REPEAT:-3}"
  [[ -z "${REPEAT:-}" && $model == vgg* ]] && repeat=2
  for m in integrated-gradients smoothgrad; do
    json=$("$cnnvis" --threads "$threads" bench "$m" --model "$model" --random-weights 0 \
      --size "$size" --repeat "$repeat" --vs vanilla:50)
    /usr/bin/python3 -c '
import json, sys
j = json.loads(sys.argv[1])
v = j["versus"]
print("| %s | %s | %.0f ms | %.0f ms | %.1f | %.0f ms | %.2f | %.0f MB |" % (
    j["method"], j["model"], j["forward"]["median_ms"], j["method_time"]["median_ms"],
    j["ratio_median"], v["median_ms"], v["ratio_median"], j["peak_rss_mb"]))' "$json"
  done
done
