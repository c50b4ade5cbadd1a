#!/bin/bash
# TorchScript against native (issue 16): ResNet-18 scripted and traced, and VGG11-BN scripted
# (530 MB, written beside the test models and kept there), by Debian's python3-torch with the
# zoo's seeded weights, against the native zoo model, in one process (Google Benchmark, median
# of 6 repetitions in random order). Prints ms per call and the TorchScript / native ratio for a
# forward pass, vanilla, Grad-CAM and Ablation-CAM.
#   bench/script.sh [BUILD_DIR]          (CNNVIS_THREADS=N to pin threads)
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$src/build}" && pwd)"
models="$build/torchscript-models"
/usr/bin/python3 "$src/tests/python/save_torchscript.py" "$models"
if [ ! -s "$models/vgg11_bn_script.pt" ]; then
  /usr/bin/python3 "$src/tests/python/save_vgg11_bn.py" "$models"
fi
CNNVIS_SCRIPT_MODELS="$models" "$build/bench/cnnvis_bench" --benchmark_filter='^script/' \
  --benchmark_repetitions=6 --benchmark_enable_random_interleaving=true \
  --benchmark_report_aggregates_only=true --benchmark_format=json \
  > "$build/bench-script.json"
/usr/bin/python3 - "$build/bench-script.json" <<'PY'
import json, sys
runs = {b["run_name"].split("/min_time")[0]: b["real_time"]
        for b in json.load(open(sys.argv[1]))["benchmarks"] if b.get("aggregate_name") == "median"}
print("| batch 1, 224 | what | native | scripted | traced | scripted / native | traced / native |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for arch in ["resnet18", "vgg11_bn"]:
    for what in ["forward", "vanilla", "grad-cam", "ablation-cam"]:
        n, s = runs[f"script/{arch}/{what}/native"], runs[f"script/{arch}/{what}/scripted"]
        t = runs.get(f"script/{arch}/{what}/traced")
        traced = f"{t:.1f} ms | " if t else " | "
        ratio = f"{t / n:.3f}" if t else ""
        print(f"| {arch} | {what} | {n:.1f} ms | {s:.1f} ms | {traced}{s / n:.3f} | {ratio} |")
PY
