#!/bin/bash
# cnnvis on TorchScript models against the Python tools on the same eager models (issue 16):
# DenseNet-121 and EfficientNet-B0 from tests/python/script_models.py (seeded weights), batch 1
# at 224, target class 3, the default CAM layer (`features`). Per round: bench/peers.py (Captum
# Saliency, GuidedBackprop, LayerGradCam; pytorch-grad-cam GradCAM), then `cnnvis bench` for
# vanilla, guided-backprop and grad-cam; ROUNDS rounds (default 3), alternating; each figure is
# the median over the rounds of the median of REPEAT calls (default 10). Prints a markdown table
# of ms and cnnvis / peer, with cnnvis / Captum also per round (median, least, greatest), then
# cnnvis vanilla against the same scripted file run by PyTorch's own interpreter.
#   CAPTUM=... PGC=... TTACH=... bench/peers.sh [BUILD_DIR]      (THREADS, default 2)
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$src/build}" && pwd)"
models="$build/torchscript-models"
rounds="${ROUNDS:-3}"; repeat="${REPEAT:-10}"; threads="${THREADS:-2}"
/usr/bin/python3 "$src/tests/python/save_torchscript.py" "$models"
out="$build/bench-peers.jsonl"; : > "$out"
for round in $(seq "$rounds"); do
  for model in densenet121 efficientnet_b0; do
    ms=$(MODELS="$models" /usr/bin/python3 "$src/bench/peers.py" "$model" features 224 "$repeat" "$threads")
    echo "{\"round\": $round, \"model\": \"$model\", \"tool\": \"python\", \"ms\": $ms}" >> "$out"
    for method in vanilla guided-backprop grad-cam; do
      json=$("$build/cnnvis" --threads "$threads" bench "$method" --size 224 --target 3 \
        --model "$models/${model}_script.pt" --repeat "$repeat" | tr -d "\n")
      echo "{\"round\": $round, \"model\": \"$model\", \"tool\": \"cnnvis\", \"method\": \"$method\", \"bench\": $json}" >> "$out"
    done
  done
done
/usr/bin/python3 - "$out" <<'PY'
import collections, json, statistics, sys
py, cv = collections.defaultdict(list), collections.defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["tool"] == "python":
        for k, v in r["ms"].items():
            py[r["model"], k].append(v)
    else:
        cv[r["model"], r["method"]].append(r["bench"]["method_time"]["median_ms"])
        if r["method"] == "vanilla":  # one forward figure per round
            cv[r["model"], "forward"].append(r["bench"]["forward"]["median_ms"])
med = lambda xs: statistics.median(xs)
# cnnvis / Captum per round too (within a round the two run back to back), since a shared
# host's speed swings by 20-30% from one run to the next: their median, least and greatest.
paired = lambda a, b: sorted(x / y for x, y in zip(a, b))
print("| model, batch 1, 224 | what | cnnvis (TorchScript) | Captum | cnnvis / Captum | per round: median (min-max) | pytorch-grad-cam | cnnvis / pytorch-grad-cam |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for model in ["densenet121", "efficientnet_b0"]:
    for what in ["forward", "vanilla", "guided-backprop", "grad-cam"]:
        c, p = med(cv[model, what]), med(py[model, what])
        pgc = f"{med(py[model, 'pgc-grad-cam']):.1f} ms | {c / med(py[model, 'pgc-grad-cam']):.2f}" \
            if what == "grad-cam" else " | "
        label = "forward (inference mode; PyTorch eager)" if what == "forward" else what
        r = paired(cv[model, what], py[model, what])
        rounds = f"{med(r):.2f} ({r[0]:.2f}-{r[-1]:.2f})"
        print(f"| {model} | {label} | {c:.1f} ms | {p:.1f} ms | {c / p:.2f} | {rounds} | {pgc} |")
print()
print("The scripted file's input gradient run by PyTorch's interpreter (simple executor) against "
      "cnnvis vanilla on it:")
for model in ["densenet121", "efficientnet_b0"]:
    c, s = med(cv[model, "vanilla"]), med(py[model, "scripted-vanilla"])
    print(f"- {model}: PyTorch {s:.1f} ms, cnnvis {c:.1f} ms, cnnvis / PyTorch {c / s:.2f}")
PY
