#!/usr/bin/python3
"""How far the metrics of a `cnnvis evaluate --json FILE` report agree (docs/EVALUATION.md).

    /usr/bin/python3 scripts/evaluation_agreement.py eval.json

Prints markdown: (1) the Spearman rank correlation between every two metrics' rankings of the
methods (baselines left out), each metric oriented so that a higher value is better, as
Tomsett et al. 2020 ("Sanity checks for saliency metrics") compare metrics by their
inter-method reliability; (2) per metric, the methods that score worse than the random map.
Only numpy is needed.
"""
import json
import sys

import numpy as np

# key in the report's results -> (title, +1 if higher is better, -1 if lower is better)
METRICS = {
    "pointing": ("pointing game", 1),
    "energy": ("energy pointing game", 1),
    "deletion_auc": ("deletion AUC", -1),
    "insertion_auc": ("insertion AUC", 1),
    "road_morf": ("ROAD MoRF", -1),
    "road_lerf": ("ROAD LeRF", 1),
    "road_gap": ("ROAD LeRF - MoRF", 1),
    "average_drop": ("avg drop", -1),
    "increase_in_confidence": ("increase", 1),
    "infidelity": ("infidelity", -1),
    "sparseness": ("sparseness", 1),
    "complexity": ("complexity", -1),
    "random_logit": ("random logit SSIM", -1),
}


def ranks(values):
    order = np.argsort(values, kind="stable")
    r = np.empty(len(values))
    r[order] = np.arange(len(values))
    # ties share their mean rank
    for v in set(values):
        idx = [i for i, x in enumerate(values) if x == v]
        r[idx] = np.mean(r[idx])
    return r


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def main():
    report = json.load(open(sys.argv[1]))
    results = report["results"]
    methods = [r for r in results if not r["baseline"]]
    random = next(r for r in results if r["method"] == "random")
    # the metrics computed (one left out gives every method 0)
    keys = [k for k in METRICS if all(k in r for r in methods) and len({r[k] for r in methods}) > 1]
    score = {k: [METRICS[k][1] * r[k] for r in methods] for k in keys}
    print("| | " + " | ".join(METRICS[k][0] for k in keys) + " |")
    print("| --- |" + " ---: |" * len(keys))
    for a in keys:
        cells = [f"{spearman(score[a], score[b]):.2f}" for b in keys]
        print(f"| {METRICS[a][0]} | " + " | ".join(cells) + " |")
    print()
    print("| metric | methods that score worse than the random map |")
    print("| --- | --- |")
    for k in keys:
        sign = METRICS[k][1]
        worse = [r["method"] for r in methods if sign * r[k] < sign * random[k]]
        print(f"| {METRICS[k][0]} | {', '.join(worse) if worse else 'none'} |")


main()
