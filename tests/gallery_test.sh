#!/usr/bin/env bash
# `cnnvis demo` with its defaults writes a complete gallery (every registered method, every
# demo scene, every link resolving), and `cnnvis evaluate` adds its page and table to it.
set -euo pipefail
CNNVIS="$1"; SRC="$2"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cd "$work"
methods=$("$CNNVIS" list | awk '{print $1}')
scenes=$(ls "$SRC/data/scenes" | grep -v _mask | grep -c '\.png$')

"$CNNVIS" demo > stdout 2> stderr
grep -q "wrote demo/index.html" stdout || { echo "FAIL: demo printed: $(cat stdout)"; exit 1; }
grep -q "demo: \[$scenes/$scenes\]" stderr || { echo "FAIL: no progress: $(cat stderr)"; exit 1; }
/usr/bin/python3 "$SRC/tests/python/check_gallery.py" demo $methods --images "$scenes" --synthesis
grep -q "demo: synthesis: Deep Dream" stderr || { echo "FAIL: no synthesis progress"; exit 1; }

# evaluate: a markdown row per method and baseline, JSON, and a linked page in the gallery.
"$CNNVIS" evaluate --count 6 --steps 8 --cascade 2 --json scores.json > table.md 2> stderr
for m in $methods; do
  title=$("$CNNVIS" list | awk -v m="$m" '$1 == m' | sed -E 's/^[^ ]+ +//; s/:.*//')
  grep -q "^| $title |" table.md || { echo "FAIL: no table row for $m ($title)"; cat table.md; exit 1; }
done
grep -q "^| random map (baseline) |" table.md || { echo "FAIL: no random baseline row"; exit 1; }
/usr/bin/python3 - "$methods" <<'PY'
import json, sys
report = json.load(open("scores.json"))
names = [r["method"] for r in report["results"]]
for m in sys.argv[1].split():
    assert m in names, f"scores.json lacks {m}"
for r in report["results"]:
    assert len(r["per_image"]) == 6, r["method"]
    assert 0 <= r["pointing"] <= 1 and 0 <= r["insertion_auc"] <= 1
    if not r["baseline"]:
        assert len(r["cascade"]) == 2, r["method"]
PY
/usr/bin/python3 "$SRC/tests/python/check_gallery.py" demo $methods --images "$scenes" --evaluated --synthesis
echo "gallery: ok"
