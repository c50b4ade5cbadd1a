#!/usr/bin/env bash
# Times every registered method against one plain forward pass of the same model and input
# (`cnnvis bench`, one process per method) and prints a markdown table for docs/BENCHMARKS.md.
#   bench/methods.sh [CNNVIS] [MODELS...]      e.g. bench/methods.sh build/cnnvis resnet50 vgg16
# Env: THREADS (default 2), REPEAT (default 3; 1 for the multi-pass methods), SIZE (224),
# METHODS (space-separated; default: every registered method).
set -euo pipefail
cnnvis="${1:-build/cnnvis}"; shift || true
models=("${@:-resnet50}")
threads="${THREADS:-2}"; repeat="${REPEAT:-3}"; size="${SIZE:-224}"
methods="${METHODS:-$("$cnnvis" list | awk '{print $1}')}"
echo "| method | model | forward | method | ratio | batched forward per image | peak RSS |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for model in "${models[@]}"; do
  for m in $methods; do
    r=$repeat; extra=()
    case $m in
      integrated-gradients|smoothgrad) r=1 ;;
      occlusion|score-cam|ablation-cam) r=1; extra=(--ref-batch 32) ;;
    esac
    json=$("$cnnvis" --threads "$threads" bench "$m" --model "$model" --random-weights 0 \
      --size "$size" --repeat "$r" "${extra[@]}")
    /usr/bin/python3 -c '
import json, sys
j = json.loads(sys.argv[1])
ref = j.get("batched_forward")
refs = "%.0f ms (batch %d)" % (ref["median_ms_per_image"], ref["batch"]) if ref else ""
print("| %s | %s | %.0f ms | %.0f ms | %.2f | %s | %.0f MB |" % (
    j["method"], j["model"], j["forward"]["median_ms"], j["method_time"]["median_ms"],
    j["ratio_median"], refs, j["peak_rss_mb"]))' "$json"
  done
done
