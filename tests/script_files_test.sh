#!/usr/bin/env bash
# TorchScript models too large for the unit suite's cached folder (issue 16): torchvision's
# VGG11-BN (530 MB) with the zoo tests' seeded weights, scripted by Debian's python3-torch into a
# temporary folder; tests/test_script.cpp's ScriptFiles.* must find it equal to the native zoo
# model (every method, LRP, synthesis).
set -euo pipefail
tests_exe="$1"; src="$2"
dir="$(mktemp -d)"; trap 'rm -rf "$dir"' EXIT
/usr/bin/python3 "$src/tests/python/save_vgg11_bn.py" "$dir"
CNNVIS_SCRIPT_FILES_DIR="$dir" "$tests_exe" --gtest_brief=1 --gtest_filter='ScriptFiles.*'
echo "script_files: vgg11_bn scripted equals the zoo model"
