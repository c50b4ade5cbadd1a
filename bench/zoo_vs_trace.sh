#!/bin/bash
# The zoo's forward pass against torchvision's (issue 17): AlexNet, VGG16, ResNet-18 and
# ResNet-50, each traced by Debian's python3-torch with the zoo's seeded weights
# (bench/save_traces.py, written once into BUILD_DIR/trace-models, 950 MB) and run by
# LibTorch's TorchScript interpreter, against the native zoo model, in one process (Google
# Benchmark, median of REPS repetitions in random order, default 3), batch 1, 8 and 32 at 224,
# under InferenceMode. Prints ms per batch and native / traced (below 1: the zoo is faster).
#   bench/zoo_vs_trace.sh [BUILD_DIR]          (CNNVIS_THREADS=N to pin threads, REPS=N)
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$src/build}" && pwd)"
models="$build/trace-models"
/usr/bin/python3 "$src/bench/save_traces.py" "$models"
CNNVIS_TRACE_MODELS="$models" "$build/bench/cnnvis_bench" --benchmark_filter='^trace/' \
  --benchmark_repetitions="${REPS:-3}" --benchmark_enable_random_interleaving=true \
  --benchmark_report_aggregates_only=true --benchmark_format=json \
  > "$build/bench-trace.json"
/usr/bin/python3 - "$build/bench-trace.json" <<'PY'
import json, sys
runs = {b["run_name"].split("/min_time")[0]: b["real_time"]
        for b in json.load(open(sys.argv[1]))["benchmarks"] if b.get("aggregate_name") == "median"}
print("| model | batch | zoo (native) | torchvision (traced) | zoo / torchvision |")
print("| --- | --- | --- | --- | --- |")
for arch in ["alexnet", "vgg16", "resnet18", "resnet50"]:
    for batch in [1, 8, 32]:
        n, t = runs[f"trace/{arch}/native/{batch}"], runs[f"trace/{arch}/traced/{batch}"]
        print(f"| {arch} | {batch} | {n:.1f} ms | {t:.1f} ms | {n / t:.2f} |")
PY
