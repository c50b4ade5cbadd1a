#!/usr/bin/env bash
# TorchScript models too large for the unit suite's cached folder (issue 16): torchvision's
# VGG11-BN (530 MB) with the zoo tests' seeded weights, scripted by Debian's python3-torch into a
# temporary folder; tests/test_script.cpp's ScriptFiles.* must find it equal to the native zoo
# model (every method, LRP, synthesis).
set -euo pipefail
tests_exe="$1"; src="$2"
dir="$(mktemp -d)"; trap 'rm -rf "$dir"' EXIT
/usr/bin/python3 - "$src/tests/python" "$dir" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import torch, torchvision
from cnnvis_random_weights import randomize_weights
torch.set_num_threads(1)
model = torchvision.models.vgg11_bn()
randomize_weights(model, 1234)
torch.jit.script(model.eval()).save(sys.argv[2] + "/vgg11_bn_script.pt")
PY
CNNVIS_SCRIPT_FILES_DIR="$dir" "$tests_exe" --gtest_brief=1 --gtest_filter='ScriptFiles.*'
echo "script_files: vgg11_bn scripted equals the zoo model"
