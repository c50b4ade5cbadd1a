#!/bin/bash
# cnnvis against the Python tools, side by side in one run (issues 16 and 17), alternating peer
# and cnnvis runs so that both see the same machine. PEERS_DIR holds checkouts the user fetched
# (never committed; revisions in ../shared/REFERENCES.md): captum/, pytorch-grad-cam/, ttach/,
# zennit/ (zennit's package under zennit/src) and pytorch-cnn-visualizations/ (the classic
# collection, its scripts under src/); CAPTUM, PGC, TTACH, ZENNIT and CLASSIC override them.
#   bench/peers.sh PEERS_DIR [BUILD_DIR]     (ROUNDS, default 3; REPEAT, default 10; THREADS, 2;
#                                             PEERS_TABLES="zoo script", the default, or one)
# zoo: torchvision's VGG16, ResNet-50 and ResNet-18 (bench/zoo_peers.py: the same seeded weights
#   and input as `cnnvis bench --random-weights 0`, target class 3, batch 1 at 224, the default
#   CAM layer): Captum's Saliency, GuidedBackprop, LayerGradCam, IntegratedGradients (50 steps,
#   internal batch 10), NoiseTunnel SmoothGrad (50, batch 10), Occlusion (16/8, 32 per
#   evaluation); pytorch-grad-cam's GradCAM, GradCAM++, ScoreCAM and AblationCAM (batch 32);
#   zennit's EpsilonPlusFlat; against cnnvis's defaults for the same (Score-CAM with
#   weighting=softmax-logit, pytorch-grad-cam's). ZOO_REPEAT (default 3) calls per figure for
#   the slow rows (IG, SmoothGrad, occlusion, Score-CAM, Ablation-CAM). Prints one table: each
#   row's median over the rounds of the medians, and cnnvis / peer.
# script: DenseNet-121 and EfficientNet-B0 from tests/python/script_models.py (seeded weights),
#   cnnvis on the scripted file, the peers on the eager model (bench/peers.py: Captum Saliency,
#   GuidedBackprop, LayerGradCam; pytorch-grad-cam GradCAM), layer `features`; then cnnvis
#   vanilla against the same scripted file run by PyTorch's own interpreter.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
if [ $# -lt 1 ] || [ ! -d "$1" ]; then
  echo "usage: bench/peers.sh PEERS_DIR [BUILD_DIR]  (PEERS_DIR: checkouts of captum, pytorch-grad-cam, ttach, zennit, pytorch-cnn-visualizations)" >&2
  exit 2
fi
peers="$(cd "$1" && pwd)"
export CAPTUM="${CAPTUM:-$peers/captum}" PGC="${PGC:-$peers/pytorch-grad-cam}"
export TTACH="${TTACH:-$peers/ttach}" ZENNIT="${ZENNIT:-$peers/zennit/src}"
export CLASSIC="${CLASSIC:-$peers/pytorch-cnn-visualizations/src}"
for d in "$CAPTUM/captum" "$PGC/pytorch_grad_cam" "$TTACH/ttach" "$ZENNIT/zennit" "$CLASSIC/gradcam.py"; do
  if [ ! -e "$d" ]; then
    echo "bench/peers.sh: $d is missing; fetch the checkouts of ../shared/REFERENCES.md into $peers" >&2
    exit 2
  fi
done
build="$(cd "${2:-$src/build}" && pwd)"
tables="${PEERS_TABLES:-zoo script}"
rounds="${ROUNDS:-3}"; repeat="${REPEAT:-10}"; threads="${THREADS:-2}"; zoo_repeat="${ZOO_REPEAT:-3}"
models="$build/torchscript-models"

if [[ " $tables " == *" zoo "* ]]; then
zoo_out="$build/bench-peers-zoo.jsonl"; : > "$zoo_out"
# arch, then "peer-row cnnvis-method [cnnvis options]" entries; fast rows take REPEAT calls,
# slow ones ZOO_REPEAT.
zoo_rows() {
  case "$1" in
    vgg16|resnet50) printf '%s\n' "forward -" "captum:vanilla vanilla" \
      "captum:guided-backprop guided-backprop" "captum:grad-cam grad-cam" "pgc:grad-cam grad-cam" \
      "pgc:grad-cam++ grad-cam++" "zennit:lrp lrp" \
      "captum:integrated-gradients integrated-gradients" "captum:smoothgrad smoothgrad"
      if [ "$1" = vgg16 ]; then printf '%s\n' "classic:vanilla vanilla" "classic:grad-cam grad-cam"; fi ;;
    resnet18) printf '%s\n' "forward -" "pgc:score-cam score-cam --option weighting=softmax-logit" \
      "pgc:ablation-cam ablation-cam" "captum:occlusion occlusion" ;;
  esac
}
slow() { case "$1" in *integrated*|*smoothgrad*|*occlusion*|*score-cam*|*ablation*) return 0 ;; esac; return 1; }
for round in $(seq "$rounds"); do
  for arch in vgg16 resnet50 resnet18; do
    fast_rows=(); slow_rows=()
    while read -r row method opts; do
      if slow "$row"; then slow_rows+=("$row"); else fast_rows+=("$row"); fi
    done < <(zoo_rows "$arch")
    for group in fast slow; do
      if [ "$group" = fast ]; then rows=("${fast_rows[@]}"); n="$repeat"; else rows=("${slow_rows[@]}"); n="$zoo_repeat"; fi
      [ "${#rows[@]}" -gt 0 ] || continue
      ms=$(/usr/bin/python3 "$src/bench/zoo_peers.py" "$arch" "$n" "$threads" "${rows[@]}")
      echo "{\"round\": $round, \"model\": \"$arch\", \"tool\": \"python\", \"ms\": $ms}" >> "$zoo_out"
    done
    while read -r row method opts; do
      [ "$method" != - ] || continue
      if slow "$row"; then n="$zoo_repeat"; else n="$repeat"; fi
      # shellcheck disable=SC2086  # opts are words
      json=$("$build/cnnvis" --threads "$threads" bench "$method" --model "$arch" --random-weights 0 \
        --target 3 --repeat "$n" $opts | tr -d "\n")
      echo "{\"round\": $round, \"model\": \"$arch\", \"tool\": \"cnnvis\", \"row\": \"$row\", \"bench\": $json}" >> "$zoo_out"
    done < <(zoo_rows "$arch")
  done
done
/usr/bin/python3 - "$zoo_out" <<'PY'
import collections, json, statistics, sys
py, cv = collections.defaultdict(list), collections.defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["tool"] == "python":
        for k, v in r["ms"].items():
            py[r["model"], k].append(v)
    else:
        cv[r["model"], r["row"]].append(r["bench"]["method_time"]["median_ms"])
        cv[r["model"], "forward"].append(r["bench"]["forward"]["median_ms"])
med = statistics.median
names = {"captum": "Captum", "pgc": "pytorch-grad-cam", "zennit": "zennit",
         "classic": "the classic collection"}
print("| model, batch 1, 224 | method | peer | peer | cnnvis | cnnvis / peer |")
print("| --- | --- | --- | --- | --- | --- |")
for model in ["vgg16", "resnet50", "resnet18"]:
    for key in sorted({k for m, k in py if m == model}, key=lambda k: (k != "forward", k)):
        if (model, key) not in cv:
            continue
        tool, method = key.split(":", 1) if ":" in key else ("PyTorch eager", "forward (inference mode)")
        p, c = med(py[model, key]), med(cv[model, key])
        print(f"| {model} | {method} | {names.get(tool, tool)} | {p:.1f} ms | {c:.1f} ms | {c / p:.2f} |")
PY
fi

[[ " $tables " == *" script "* ]] || exit 0
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
