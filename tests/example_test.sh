#!/usr/bin/env bash
# Runs examples/vanilla.cpp's binary on a sample photo.
set -euo pipefail
exe="$1"; src="$2"
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT
"$exe" resnet18 --random 0 "$src/data/images/chelsea.png" "$out" | grep -q "explained class"
test -s "$out/vanilla_gray.png"
echo "example: ok"
