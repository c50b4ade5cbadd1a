#!/usr/bin/env bash
# `mpirun -np 2 cnnvis batch|evaluate` on this machine (loopback) against one process, image
# for image: the same rows and the same raw results, both ranks at work, a rank killed with
# SIGKILL and the run resumed, bad images, refusals; evaluate's table and per-image numbers.
set -uo pipefail
CNNVIS="$1"; MPIRUN="$2"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
passed=0; failed=0
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
ok() { passed=$((passed + 1)); }
# Two ranks of one thread each (the machine's two cores); one process with one thread to
# compare with, and the execution strategies fixed (auto picks by timing, per process), so that
# every kernel runs the same arithmetic.
mpi=("$MPIRUN" --allow-run-as-root --oversubscribe -np 2)
fixed=(--threads 1 --gradient-strategy batched --pass-size full)
export OMPI_MCA_btl_vader_single_copy_mechanism=none  # containers without CMA
export OMP_WAIT_POLICY=PASSIVE

# ---- batch: one process against two ranks ----
set1="$work/set"
"$CNNVIS" scenes --seed 700 --count 10 --out "$set1" > /dev/null 2>&1 && rm -f "$set1"/*_mask.png \
  && head -c 100 "$(ls "$set1"/*.png | head -1)" > "$set1/truncated.png" && ok || fail "scenes"
args=(batch --methods grad-cam,vanilla --model demo --images "$set1" --batch 1 --raw)
"$CNNVIS" "${fixed[@]}" "${args[@]}" --out "$work/one" > "$work/stdout1" 2> "$work/stderr1"
rc1=$?
"${mpi[@]}" "$CNNVIS" "${fixed[@]}" "${args[@]}" --out "$work/two" > "$work/stdout" 2> "$work/stderr"
rc=$?
[ "$rc1" = 1 ] && [ "$rc" = 1 ] && ok || fail "exit codes $rc1 (one process) and $rc (2 ranks), want 1 and 1: $(cat "$work/stderr")"
# rank 0 alone reports: the header, the summary and the failure once
[ "$(grep -c "^batch: 11 images (2 MPI ranks, 1 thread(s) each) x 2 method(s)" "$work/stdout")" = 1 ] \
  && [ "$(grep -c "^batch: 11 images x 2 method(s) (2 MPI ranks, 1 thread(s) each): 20 done now, 0 already done, 2 failed" "$work/stdout")" = 1 ] \
  && [ "$(grep -c "failed: truncated.png grad-cam: " "$work/stdout")" = 1 ] \
  && [ "$(grep -c "^cnnvis: error: batch: 2 of 22 (image, method) pairs failed" "$work/stderr")" = 1 ] \
  && ok || fail "rank 0's report: $(cat "$work/stdout" "$work/stderr")"
/usr/bin/python3 - "$work/one" "$work/two" <<'PY' && ok || fail "2 ranks and one process disagree"
import json, os, sys
import numpy as np
one, two = sys.argv[1], sys.argv[2]
def rows(d):
    return {(r["image"], r["method"]): r for r in map(json.loads, open(os.path.join(d, "results.jsonl")))}
a, b = rows(one), rows(two)
assert a.keys() == b.keys() and len(a) == 22, sorted(a.keys() ^ b.keys())
for key in a:
    for field in ("status", "target", "target_source", "predicted", "files", "options"):
        assert a[key][field] == b[key][field], (key, field, a[key][field], b[key][field])
    if a[key]["probability"] is not None:
        assert abs(a[key]["probability"] - b[key]["probability"]) < 1e-12, key
# image for image, the same raw results (one thread each: the same kernels, the same sums)
for key, r in a.items():
    for f in r["files"]:
        if f.endswith(".npy"):
            x, y = np.load(os.path.join(one, f)), np.load(os.path.join(two, f))
            assert x.shape == y.shape and np.array_equal(x, y), (f, float(np.abs(x - y).max()))
ranks = {r["rank"] for r in b.values() if r["status"] == "ok"}
assert ranks == {0, 1}, ranks  # both ranks computed
assert {r["rank"] for r in a.values()} == {0}
left = sorted(f for f in os.listdir(two) if f.startswith("results.") and f != "results.jsonl")
assert not left, left  # rank files merged
listed = {f for r in b.values() for f in r["files"]}
on_disk = {os.path.relpath(os.path.join(p, f), two) for p, _, fs in os.walk(two) for f in fs}
assert listed == on_disk - {"results.jsonl", "run.json"}, sorted(listed ^ on_disk)
PY

# ---- a rank killed with SIGKILL at a random moment, then the run resumed by 2 ranks ----
set2="$work/set2"
"$CNNVIS" scenes --seed 800 --count 16 --out "$set2" > /dev/null 2>&1 && rm -f "$set2"/*_mask.png
kargs=(batch --methods grad-cam,occlusion,vanilla --model demo --images "$set2" --batch 2 --raw)
delays=""
for k in 1 2 3; do
  delay=$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 1.0 + (r % 200) / 100 }'); delays="$delays $delay"
  "${mpi[@]}" "$CNNVIS" --threads 1 "${kargs[@]}" --out "$work/killed" > /dev/null 2>&1 &
  runner=$!
  sleep "$delay"
  victim=$(pgrep -P "$runner" | shuf -n 1)
  [ -n "$victim" ] && kill -9 "$victim"
  wait "$runner"
done
"${mpi[@]}" "$CNNVIS" --threads 1 "${kargs[@]}" --out "$work/killed" > "$work/stdout" 2> "$work/stderr" \
  && /usr/bin/python3 - "$work/killed" <<'PY' && ok || fail "resumed after a rank's SIGKILL at$delays s: $(cat "$work/stdout" "$work/stderr")"
import json, os, sys
d = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(d, "results.jsonl"))]
pairs = [(r["image"], r["method"]) for r in rows]
assert len(pairs) == 48 == len(set(pairs)), len(pairs)
assert all(r["status"] == "ok" for r in rows)
listed = {f for r in rows for f in r["files"]}
on_disk = {os.path.relpath(os.path.join(p, f), d) for p, _, fs in os.walk(d) for f in fs}
assert listed == on_disk - {"results.jsonl", "run.json"}, sorted(listed ^ on_disk)
PY
"${mpi[@]}" "$CNNVIS" --threads 1 "${kargs[@]}" --out "$work/killed" > "$work/stdout" 2>&1 \
  && grep -q "0 done now, 48 already done, 0 failed" "$work/stdout" && ok || fail "rerun of a complete run: $(cat "$work/stdout")"
# One process resumes a run of two ranks (and the other way round): the same folder format.
rm -f "$work/killed/results.jsonl"
"$CNNVIS" --threads 2 "${kargs[@]}" --out "$work/killed" > "$work/stdout" 2>&1 \
  && grep -q "48 done now, 0 already done" "$work/stdout" && ok || fail "one process after 2 ranks: $(cat "$work/stdout")"

# ---- refusals under mpirun: exit 2, the message, and no rank left waiting ----
timeout -k 5 60 "${mpi[@]}" "$CNNVIS" --threads 1 "${kargs[@]}" --shard 0/2 --out "$work/refused" > "$work/stdout" 2> "$work/stderr"
rc=$?
[ "$rc" = 2 ] && grep -q "^cnnvis: error (rank [01] of 2): --shard: under mpirun the ranks share the work" "$work/stderr" \
  && ok || fail "--shard under mpirun (exit $rc): $(cat "$work/stderr")"
timeout -k 5 60 "${mpi[@]}" "$CNNVIS" --threads 1 batch --methods vanilla --model demo --images "$set2" --out "$work/killed" > "$work/stdout" 2> "$work/stderr"
rc=$?
[ "$rc" = 2 ] && grep -q "^cnnvis: error (rank 0 of 2): --out .*killed: holds a run with other options" "$work/stderr" \
  && ok || fail "other options under mpirun (exit $rc): $(cat "$work/stderr")"
[ -z "$(find "$work" -name '*.tmp-*')" ] && ok || fail "temporary files left behind: $(find "$work" -name '*.tmp-*')"

# ---- evaluate: the same table and per-image numbers from 2 ranks as from one process ----
eargs=(evaluate --model demo --count 10 --batch 3 --methods vanilla,grad-cam --steps 8 --sanity-images 5 --gallery "")
"$CNNVIS" "${fixed[@]}" "${eargs[@]}" --json "$work/e1.json" > "$work/e1.md" 2> "$work/stderr" || fail "evaluate: $(cat "$work/stderr")"
"${mpi[@]}" "$CNNVIS" "${fixed[@]}" "${eargs[@]}" --json "$work/e2.json" > "$work/e2.md" 2> "$work/stderr" || fail "mpirun evaluate: $(cat "$work/stderr")"
/usr/bin/python3 - "$work" <<'PY' && ok || fail "evaluate: 2 ranks and one process disagree: $(cat "$work/e2.md")"
import json, os, re, sys
w = sys.argv[1]
strip = lambda t: [re.sub(r"\| [0-9.]+ \|$", "| ms |", l) for l in t.splitlines()]  # times differ
t1, t2 = strip(open(os.path.join(w, "e1.md")).read()), strip(open(os.path.join(w, "e2.md")).read())
assert t1 == t2 and len(t1) > 6, "\n".join(t1 + ["---"] + t2)
e1, e2 = json.load(open(os.path.join(w, "e1.json"))), json.load(open(os.path.join(w, "e2.json")))
assert e1["processes"] == 1 and e2["processes"] == 2
for r1, r2 in zip(e1["results"], e2["results"], strict=True):
    for k in ("method", "images", "pointing", "energy", "deletion_auc", "insertion_auc", "cascade", "per_image"):
        assert r1[k] == r2[k], (r1["method"], k, r1[k], r2[k])
PY

echo "mpi: $passed passed, $failed failed"
[ "$failed" = 0 ]
