#!/usr/bin/env bash
# Every zoo model from torchvision weight files in all three formats: Debian's PyTorch saves
# torchvision's model with seeded weights as zip, legacy and safetensors files; cnnvis loads
# each and must give torchvision's logits (tests/fixtures/zoo.json). One model at a time, so
# the disk holds at most one model's three files.
set -euo pipefail
tests_exe="$1"; src="$2"
models="${CNNVIS_ZOO_FILES_MODELS:-alexnet vgg11 vgg11_bn vgg13 vgg13_bn vgg16 vgg16_bn vgg19 vgg19_bn resnet18 resnet34 resnet50 resnet101 resnet152}"
dir="$(mktemp -d)"; trap 'rm -rf "$dir"' EXIT
for m in $models; do
  /usr/bin/python3 "$src/tests/python/save_zoo_weights.py" "$m" 1234 "$dir"
  CNNVIS_ZOO_FILES_DIR="$dir" CNNVIS_ZOO_MODEL="$m" "$tests_exe" --gtest_brief=1 \
    --gtest_filter='ZooFiles.*'
  rm -f "$dir"/*
  echo "zoo_files: $m: zip, legacy and safetensors give torchvision's logits"
done
