#!/usr/bin/env bash
# End-to-end tests of the cnnvis command line: the happy path and every bad-input case, each of
# which must print one clear line naming the file or option, exit with 2 (usage) or 1
# (runtime), and leave no output file behind.
set -uo pipefail
CNNVIS="$1"; FIXTURES="$2"
SRC="$(cd "$FIXTURES/../.." && pwd)"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
passed=0; failed=0

fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
ok() { passed=$((passed + 1)); }

# expect CODE PATTERN CMD... : exit code CODE within $EXPECT_TIMEOUT seconds, stderr one line
# matching PATTERN, no files in $work/out. Every error case goes through it.
EXPECT_TIMEOUT="${EXPECT_TIMEOUT:-60}"
cases=0
expect() {
  local code="$1" pattern="$2"; shift 2
  cases=$((cases + 1))
  rm -rf "$work/out"; mkdir -p "$work/out"
  timeout -k 5 "$EXPECT_TIMEOUT" "$@" > "$work/stdout" 2> "$work/stderr"; local rc=$?
  local lines; lines=$(wc -l < "$work/stderr")
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then fail "timed out after ${EXPECT_TIMEOUT} s: $*"; return; fi
  if [ "$rc" != "$code" ]; then fail "exit $rc (want $code): $* :: $(cat "$work/stderr")"; return; fi
  if [ "$lines" != 1 ]; then fail "stderr has $lines lines: $* :: $(cat "$work/stderr")"; return; fi
  if ! grep -qE -- "$pattern" "$work/stderr"; then
    fail "stderr lacks /$pattern/: $(cat "$work/stderr")"; return
  fi
  if [ -n "$(ls -A "$work/out")" ]; then fail "left files: $(ls "$work/out")"; return; fi
  ok
}

cat_png="$SRC/data/images/chelsea.png"
base=(explain vanilla --model resnet18 --random-weights 0 --size 64 --out "$work/out")

# ---- happy path ----
rm -rf "$work/ok"
if "$CNNVIS" explain vanilla --model resnet18 --random-weights 0 --size 64 --image "$cat_png" \
    --target 281 --out "$work/ok" --raw > "$work/stdout" 2> "$work/stderr"; then
  for f in chelsea_vanilla_color.png chelsea_vanilla_gray.png chelsea_vanilla.npy; do
    [ -s "$work/ok/$f" ] && ok || fail "missing $f"
  done
  grep -q "explaining class 281 (tabby)" "$work/stdout" && ok || fail "no target line"
  [ "$(grep -cE '^    [1-5]\. ' "$work/stdout")" = 5 ] && ok || fail "no top-5: $(cat "$work/stdout")"
  if command -v /usr/bin/python3 > /dev/null && /usr/bin/python3 -c "import numpy" 2> /dev/null; then
    shape=$(/usr/bin/python3 -c "import numpy; a=numpy.load('$work/ok/chelsea_vanilla.npy'); print(a.dtype, a.shape)")
    [ "$shape" = "float32 (1, 3, 64, 64)" ] && ok || fail "npy reads as $shape"
  fi
else
  fail "explain failed: $(cat "$work/stderr")"
fi
# The target by name, and the top-1 default.
"$CNNVIS" "${base[@]/$work\/out/$work/ok}" --image "$cat_png" --target tabby > "$work/stdout" 2>&1 \
  && grep -q "explaining class 281" "$work/stdout" && ok || fail "--target tabby: $(cat "$work/stdout")"
"$CNNVIS" explain vanilla --model alexnet --random-weights 1 --resize 80 --crop 64 \
  --image "$cat_png" --out "$work/ok" > "$work/stdout" 2>&1 && ok || fail "resize/crop: $(cat "$work/stdout")"

"$CNNVIS" list | grep -q "^vanilla " && ok || fail "list lacks vanilla"
# The built-in demo model needs no weights and gets its scenes right.
"$CNNVIS" explain vanilla --model demo --size 96 --image "$SRC/data/scenes/scene_1010_star.png" \
  --out "$work/ok" > "$work/stdout" 2>&1 && grep -qE "^    1\. +3 star " "$work/stdout" \
  && [ -s "$work/ok/scene_1010_star_vanilla_gray.png" ] && ok || fail "demo: $(cat "$work/stdout")"
"$CNNVIS" scenes --seed 5 --count 2 --out "$work/scenes" > /dev/null && \
  [ "$(ls "$work/scenes" | wc -l)" = 4 ] && ok || fail "scenes"
expect 2 "size" "$CNNVIS" scenes --size 20 --out "$work/out"
# train-demo runs both phases (max pooling, then the model's average pooling) and writes weights
# that --weights loads.
"$CNNVIS" train-demo --steps 2 --average-steps 1 --batch 2 --eval-count 4 \
  --out "$work/demo_w.safetensors" > "$work/stdout" 2> "$work/stderr" \
  && grep -q "step 3/3" "$work/stderr" && grep -q "after 3 steps" "$work/stdout" \
  && "$CNNVIS" explain vanilla --model demo --weights "$work/demo_w.safetensors" --size 96 \
    --image "$SRC/data/scenes/scene_1010_star.png" --out "$work/ok" > /dev/null 2>&1 \
  && ok || fail "train-demo: $(cat "$work/stdout" "$work/stderr")"
expect 2 "--average-steps: expected an integer from 0 to 10000000, got -1" "$CNNVIS" train-demo --steps 1 --average-steps -1 \
  --out "$work/out/w.safetensors"
"$CNNVIS" layers --model vgg16 > "$work/stdout" && grep -qE "^features.29 +ReLU +\[1, 512, 14, 14\]" \
  "$work/stdout" && grep -q "138357544 parameters" "$work/stdout" && ok || fail "layers: $(head -5 "$work/stdout")"
"$CNNVIS" bench vanilla --model resnet18 --random-weights 0 --size 64 --repeat 2 > "$work/stdout" \
  && grep -q '"ratio_median"' "$work/stdout" && ok || fail "bench: $(cat "$work/stdout")"
"$CNNVIS" bench integrated-gradients --option steps=4 --vs vanilla:4 --model resnet18 \
  --random-weights 0 --size 64 --repeat 1 > "$work/stdout" \
  && /usr/bin/python3 -c "import json,sys; v=json.load(open(sys.argv[1]))['versus']; assert v['method']=='vanilla' and v['count']==4 and v['ratio_median']>0" "$work/stdout" \
  && ok || fail "bench --vs: $(cat "$work/stdout")"
expect 2 "--vs: expected METHOD:COUNT" "$CNNVIS" bench vanilla --model resnet18 --random-weights 0 \
  --size 64 --vs vanilla
expect 2 "--vs: expected METHOD:COUNT" "$CNNVIS" bench vanilla --model resnet18 --random-weights 0 \
  --size 64 --vs vanilla:x
"$CNNVIS" --help > "$work/help" && grep -q "explain" "$work/help" && grep -q -- "--max-megapixels" "$work/help" \
  && ok || fail "help"

# ---- TorchScript models (tests/python/save_torchscript.py, cached next to the binary) ----
TS="$(cd "$(dirname "$CNNVIS")" && pwd)/torchscript-models"
if /usr/bin/python3 "$SRC/tests/python/save_torchscript.py" "$TS"; then
  rm -rf "$work/ts"
  "$CNNVIS" explain grad-cam --model "$TS/resnet18_script.pt" --image "$cat_png" --target tabby \
    --size 64 --out "$work/ts" > "$work/stdout" 2>&1 && grep -q "explaining class 281 (tabby)" "$work/stdout" \
    && [ -s "$work/ts/chelsea_grad-cam_overlay.png" ] && ok || fail "explain on TorchScript: $(cat "$work/stdout")"
  "$CNNVIS" layers --model "$TS/resnet18_trace.pt" --size 64 > "$work/stdout" 2>&1 \
    && grep -qE "^layer4 +Sequential +\[1, 512, 2, 2\] +[0-9]+ +default CAM layer" "$work/stdout" \
    && grep -qE "^layer3.1.conv2 +Conv2d .*not resumable" "$work/stdout" \
    && ok || fail "layers on TorchScript: $(cat "$work/stdout")"
  # Synthesis (file names from the model file's stem) and a gallery on a TorchScript model.
  rm -rf "$work/ts_syn" && mkdir -p "$work/ts_syn"
  "$CNNVIS" synthesize filter --model "$TS/resnet18_trace.pt" --size 64 --layer layer2.0.conv1 \
    --filter 3 --steps 3 --out "$work/ts_syn" > "$work/stdout" 2>&1 \
    && [ -s "$work/ts_syn/resnet18_trace_layer2.0.conv1_filter3.png" ] && ok \
    || fail "synthesize on TorchScript: $(cat "$work/stdout")"
  # Without a layer graph, a layer objective still stops after its layer: DenseNet-121 takes a
  # 16 px image for features.denseblock2, not for a class (its last transition pools a 1x1 map).
  "$CNNVIS" synthesize filter --model "$TS/densenet121_script.pt" --size 16 --layer features.denseblock2 \
    --filter 0 --steps 2 --out "$work/ts_syn" > "$work/stdout" 2>&1 \
    && [ -s "$work/ts_syn/densenet121_script_features.denseblock2_filter0.png" ] && ok \
    || fail "synthesize on DenseNet at 16 px: $(cat "$work/stdout")"
  expect 2 "--size 16: .*densenet121_script.pt takes inputs of at least" "$CNNVIS" synthesize class \
    --model "$TS/densenet121_script.pt" --size 16 --target 1 --steps 2 --out "$work/out"
  "$CNNVIS" demo --model "$TS/resnet18_script.pt" --images "$SRC/data/scenes" --methods vanilla,grad-cam \
    --size 64 --out "$work/ts_demo" > "$work/stdout" 2>&1 && [ -s "$work/ts_demo/index.html" ] \
    && [ -s "$work/ts_demo/gallery.json" ] && ok || fail "demo on TorchScript: $(cat "$work/stdout")"
  expect 2 "--model .*resnet18_script.pt: a TorchScript file carries its own weights" "$CNNVIS" explain \
    vanilla --model "$TS/resnet18_script.pt" --random-weights 0 --image "$cat_png" --out "$work/out"
  expect 2 "--output nope: the model returns a dict \\{'aux'" "$CNNVIS" explain vanilla \
    --model "$TS/tiny_dict_script.pt" --output nope --image "$cat_png" --out "$work/out"
  expect 2 "--output logits: only for TorchScript models" "$CNNVIS" explain vanilla --model resnet18 \
    --random-weights 0 --output logits --image "$cat_png" --out "$work/out"
  "$CNNVIS" explain vanilla --model "$TS/tiny_dict_script.pt" --output logits --size 32 --image "$cat_png" \
    --out "$work/ts_dict" > "$work/stdout" 2>&1 && grep -qE "^    4\. " "$work/stdout" \
    && ! grep -qE "^    5\. " "$work/stdout" && ok || fail "--output logits: $(cat "$work/stdout")"
  expect 2 "--model nothere.pt: no such file" "$CNNVIS" explain vanilla --model nothere.pt \
    --image "$cat_png" --out "$work/out"
  # A zoo name stays the zoo model where a folder of that name exists (the demo's gallery).
  mkdir -p "$work/cwd/resnet18" && (cd "$work/cwd" && "$CNNVIS" layers --model resnet18 --size 64) \
    > "$work/stdout" 2>&1 && grep -q "^resnet18: " "$work/stdout" && ok || fail "zoo name vs folder: $(cat "$work/stdout")"
  expect 1 "resnet18_frozen.pt: no submodule is called in forward \(a frozen module" "$CNNVIS" \
    layers --model "$TS/resnet18_frozen.pt"
  expect 1 "newer_op.pt: cannot load the TorchScript model \(Unknown builtin op: aten::sub_from_a_newer_pytorch.\); it was probably saved by a newer PyTorch" \
    "$CNNVIS" layers --model "$TS/newer_op.pt"
  printf 'not a model' > "$work/text.pt"
  expect 1 "text.pt: not a TorchScript archive" "$CNNVIS" layers --model "$work/text.pt"
  # evaluate on a TorchScript model (the scenes' masks; the randomization reaches its weights).
  "$CNNVIS" evaluate --model "$TS/resnet18_script.pt" --images "$SRC/data/scenes" --methods grad-cam \
    --size 64 --steps 4 --sanity-images 2 --gallery '' > "$work/stdout" 2>&1 \
    && grep -qE "^\| Grad-CAM \| [0-9.]+ \|.*\| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|$" "$work/stdout" \
    && ok || fail "evaluate on TorchScript: $(cat "$work/stdout")"
  # LRP on a TorchScript ResNet (its layer graph read from the code), refused on DenseNet.
  "$CNNVIS" layers --model "$TS/resnet18_trace.pt" --size 64 --lrp epsilon-gamma-box --layer conv1 \
    > "$work/stdout" 2>&1 && grep -q "lrp: z-box (with bn1 merged)" "$work/stdout" \
    && ok || fail "layers --lrp on TorchScript: $(cat "$work/stdout")"
  expect 2 "lrp: .*densenet121_script.pt: its layer graph is not a chain .*: aten::cat \(layer 'features.denseblock4'\) is not one of them" \
    "$CNNVIS" explain lrp --model "$TS/densenet121_script.pt" --image "$cat_png" --size 32 --out "$work/out"
  # What layers says of a NamedTuple output and of functional ReLUs (Inception-v3).
  "$CNNVIS" layers --model "$TS/inception_v3_script.pt" --size 96 > "$work/stdout" 2>&1 \
    && grep -q "^returns a tuple of 2 \[0 (logits): a tensor \[1, 1000\]; 1 (aux_logits): NoneType\]" "$work/stdout" \
    && grep -q "^guided-backprop and deconvnet change 94 ReLUs of the graph" "$work/stdout" \
    && ok || fail "layers on Inception-v3: $(cat "$work/stdout")"
  # A segmentation model ({"out": [N, 4, H, W]}): a class over the pixels predicted as it, or
  # over --target-mask; class names from --labels.
  seg=(explain vanilla --model "$TS/lraspp_mobilenet_v3_large_script.pt" --image "$cat_png" --size 64)
  printf 'background\nleft\nright\ncentre\n' > "$work/labels.txt"
  "$CNNVIS" "${seg[@]}" --labels "$work/labels.txt" --out "$work/seg" > "$work/stdout" 2>&1 \
    && grep -q "^    1\.    1 left .* of the pixels" "$work/stdout" \
    && grep -qE "explaining class 1 \(left\) over [0-9]+ pixels predicted as it" "$work/stdout" \
    && [ -s "$work/seg/chelsea_vanilla_gray.png" ] && ok || fail "segmentation: $(cat "$work/stdout")"
  # A 64x64 grey PNG, 255 in rows 10-29 and columns 20-39 (the standard library alone: zlib).
  /usr/bin/python3 - "$work/mask.png" <<'PY'
import struct, sys, zlib
rows = b"".join(b"\0" + bytes(255 if 10 <= r < 30 and 20 <= c < 40 else 0 for c in range(64))
                for r in range(64))
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 0, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
PY
  "$CNNVIS" "${seg[@]}" --target 3 --target-mask "$work/mask.png" --out "$work/seg" > "$work/stdout" 2>&1 \
    && grep -q "explaining class 3 (class 3) over 400 pixels of --target-mask" "$work/stdout" \
    && ok || fail "segmentation with --target-mask: $(cat "$work/stdout")"
  # demo on a segmentation model: each image's class over the pixels predicted as it, the region
  # shown beside the input; evaluate: the class named by the stem (--labels) over its object;
  # synthesize class: the class's mean score over the output's pixels.
  mkdir -p "$work/seg_images" "$work/seg_eval" && cp "$cat_png" "$work/seg_images/chelsea.png" \
    && cp "$cat_png" "$work/seg_eval/chelsea_left.png" && cp "$work/mask.png" "$work/seg_eval/chelsea_left_mask.png"
  "$CNNVIS" demo --model "$TS/lraspp_mobilenet_v3_large_script.pt" --labels "$work/labels.txt" \
    --images "$work/seg_images" --methods vanilla,grad-cam --size 64 --out "$work/seg_demo" > "$work/stdout" 2>&1 \
    && grep -qE "chelsea: left \([0-9.]+\) over [0-9]+ pixels predicted as it" "$work/stdout" \
    && /usr/bin/python3 "$SRC/tests/python/check_gallery.py" "$work/seg_demo" vanilla grad-cam --images 1 \
    && [ -s "$work/seg_demo/images/chelsea_region.png" ] && grep -q 'src="images/chelsea_region.png"' "$work/seg_demo/index.html" \
    && /usr/bin/python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['images'][0]; assert r['target'] == 1 and r['region']['pixels'] > 0, r" "$work/seg_demo/gallery.json" \
    && ok || fail "demo on a segmentation model: $(cat "$work/stdout")"
  expect 2 "chelsea.png: no pixel is predicted as class 2 \(right\); leave out --target" "$CNNVIS" demo \
    --model "$TS/lraspp_mobilenet_v3_large_script.pt" --labels "$work/labels.txt" --target right \
    --images "$work/seg_images" --methods vanilla --size 64 --out "$work/out/g"
  "$CNNVIS" evaluate --model "$TS/lraspp_mobilenet_v3_large_script.pt" --labels "$work/labels.txt" \
    --images "$work/seg_eval" --methods vanilla --size 64 --steps 4 --sanity-images 1 --cascade 2 \
    --metrics pointing,energy,deletion,insertion,sanity \
    --gallery '' --json "$work/seg_eval.json" > "$work/stdout" 2>&1 \
    && grep -qE "^\| vanilla backprop \| [01]\.000 \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| -?[0-9.]+ \| -?[0-9.]+ \| [0-9.]+ \|$" "$work/stdout" \
    && /usr/bin/python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results'][0]['per_image'][0]; assert 0 <= r['deletion_auc'] <= 1 and 0 <= r['insertion_auc'] <= 1, r" "$work/seg_eval.json" \
    && ok || fail "evaluate on a segmentation model: $(cat "$work/stdout")"
  rm -rf "$work/seg_syn" && mkdir -p "$work/seg_syn"
  "$CNNVIS" synthesize class --model "$TS/lraspp_mobilenet_v3_large_script.pt" --labels "$work/labels.txt" \
    --target left --size 64 --steps 3 --batch 2 --out "$work/seg_syn" > "$work/stdout" 2>&1 \
    && [ -s "$work/seg_syn/lraspp_mobilenet_v3_large_script_class1_l2_1.png" ] \
    && "$CNNVIS" synthesize class --model "$TS/lraspp_mobilenet_v3_large_script.pt" --target 1 \
      --score logit --size 64 --steps 3 --out "$work/seg_syn" > "$work/stdout" 2>&1 \
    && [ -s "$work/seg_syn/lraspp_mobilenet_v3_large_script_class1_l2.png" ] \
    && ok || fail "synthesize class on a segmentation model: $(cat "$work/stdout")"
  expect 2 "no pixel is predicted as class 2 \(right\); give the region with --target-mask" \
    "$CNNVIS" "${seg[@]}" --labels "$work/labels.txt" --target right --out "$work/seg"
  # bench on a segmentation model: the region of the pixels predicted as the class.
  "$CNNVIS" bench vanilla --model "$TS/lraspp_mobilenet_v3_large_script.pt" --image "$cat_png" \
    --size 64 --target 1 --repeat 1 > "$work/stdout" 2>&1 \
    && grep -q '"method": "vanilla"' "$work/stdout" && ok || fail "bench on a segmentation model: $(cat "$work/stdout")"
  expect 2 "--target 2: no pixel of the input is predicted as it" "$CNNVIS" bench vanilla \
    --model "$TS/lraspp_mobilenet_v3_large_script.pt" --image "$cat_png" --size 64 --target 2 --repeat 1
  expect 2 "--target-mask: resnet18 returns logits \[1, 1000\], not a dense map" "$CNNVIS" explain \
    vanilla --model resnet18 --random-weights 0 --target-mask "$work/mask.png" --image "$cat_png" \
    --size 32 --out "$work/out"
  expect 2 "--labels .*labels.txt: 4 class names for resnet18, which has 1000 classes" "$CNNVIS" \
    explain vanilla --model resnet18 --random-weights 0 --labels "$work/labels.txt" \
    --image "$cat_png" --size 32 --out "$work/out"
  expect 1 "resnet18_state_dict.pth: a PyTorch zip without TorchScript code" "$CNNVIS" explain \
    vanilla --model "$TS/resnet18_state_dict.pth" --image "$cat_png" --out "$work/out"
  expect 1 "resnet18_script.pt: is a TorchScript archive .*pass it as --model" "$CNNVIS" explain \
    vanilla --model resnet18 --weights "$TS/resnet18_script.pt" --image "$cat_png" --out "$work/out"
else
  fail "cannot generate the TorchScript test models into $TS"
fi

# ---- bad input ----
printf 'hello, I am text' > "$work/text.png"
head -c 3000 "$cat_png" > "$work/truncated.png"
: > "$work/empty.png"
expect 2 "missing.png" "$CNNVIS" "${base[@]}" --image "$work/missing.png"
expect 1 "text.png" "$CNNVIS" "${base[@]}" --image "$work/text.png"
expect 1 "truncated.png" "$CNNVIS" "${base[@]}" --image "$work/truncated.png"
expect 1 "empty.png" "$CNNVIS" "${base[@]}" --image "$work/empty.png"
expect 2 "5000.*0\.\.999" "$CNNVIS" "${base[@]}" --image "$cat_png" --target 5000
expect 2 "tabbby.*tabby" "$CNNVIS" "${base[@]}" --image "$cat_png" --target tabbby
expect 2 "no weights given" "$CNNVIS" explain vanilla --model vgg16 --image "$cat_png" --out "$work/out"
expect 2 "unknown model 'vgg61'" "$CNNVIS" explain vanilla --model vgg61 --random-weights 0 \
  --image "$cat_png" --out "$work/out"
expect 2 "unknown method 'vanila'.*vanilla" "$CNNVIS" explain vanila --model vgg16 --random-weights 0 \
  --image "$cat_png" --out "$work/out"
expect 2 "--size" "$CNNVIS" "${base[@]}" --image "$cat_png" --size 0
expect 2 "--mean" "$CNNVIS" "${base[@]}" --image "$cat_png" --mean 1,2
expect 2 "unknown layer 'features.99'.*features.9" "$CNNVIS" layers --model vgg16 --layer features.99
"$CNNVIS" layers --model resnet50 --layer layer4 > "$work/stdout" && grep -qE "^layer4 +Sequential +\[1, 2048, 7, 7\]" \
  "$work/stdout" && ok || fail "layers --layer: $(cat "$work/stdout")"
expect 2 "--threads" "$CNNVIS" --threads 0 list
expect 2 "--bogus" "$CNNVIS" "${base[@]}" --image "$cat_png" --bogus

# Weight files: another architecture, truncated, corrupt, a forbidden global.
W="$FIXTURES/weights"
wbase=(explain vanilla --model resnet18 --size 64 --out "$work/out" --image "$cat_png")
if [ -d "$W" ]; then
  expect 1 "tiny_zip.pth.*(missing|unexpected)" "$CNNVIS" "${wbase[@]}" --weights "$W/tiny_zip.pth"
  head -c 700 "$W/tiny_zip.pth" > "$work/trunc.pth"
  expect 1 "trunc.pth" "$CNNVIS" "${wbase[@]}" --weights "$work/trunc.pth"
  head -c 300 /dev/urandom > "$work/corrupt.pth"
  expect 1 "corrupt.pth" "$CNNVIS" "${wbase[@]}" --weights "$work/corrupt.pth"
  expect 1 "forbidden_global.pth.*system" "$CNNVIS" "${wbase[@]}" --weights "$W/forbidden_global.pth"
  expect 2 "nothere.pth" "$CNNVIS" "${wbase[@]}" --weights "$work/nothere.pth"
else
  fail "no weight fixtures in $W"
fi
# demo and evaluate: bad folders, methods and options fail before writing anything.
expect 2 "--images .*nothere" "$CNNVIS" demo --images "$work/nothere" --out "$work/out/g"
mkdir -p "$work/noimages" && printf 'x' > "$work/noimages/readme.txt"
expect 2 "--images .*no PNG" "$CNNVIS" demo --images "$work/noimages" --out "$work/out/g"
expect 2 "--methods: unknown method 'nope'" "$CNNVIS" demo --methods nope --out "$work/out/g"
expect 2 "--images: --model resnet18 needs" "$CNNVIS" evaluate --model resnet18 --random-weights 0 \
  --gallery "$work/out/g"
expect 2 "--images .*no image with a mask" "$CNNVIS" evaluate --images "$SRC/data/images" \
  --gallery "$work/out/g"
expect 2 "--count" "$CNNVIS" evaluate --count 0 --gallery "$work/out/g"
expect 2 "--json .*does not exist" "$CNNVIS" evaluate --json "$work/nodir/x.json" --gallery "$work/out/g"
"$CNNVIS" explain vanilla --model demo --image "$SRC/data/scenes/scene_1010_star.png" \
  --out "$work/ok" --raw > /dev/null 2>&1 && /usr/bin/python3 -c "import numpy, sys; \
assert numpy.load(sys.argv[1]).shape == (1, 3, 96, 96)" "$work/ok/scene_1010_star_vanilla.npy" \
  && ok || fail "demo model's default size is not 96"
# The gradient family from the command line: method options as --key value, unit targets.
star="$SRC/data/scenes/scene_1010_star.png"
"$CNNVIS" explain integrated-gradients --model demo --image "$star" --out "$work/ok" --steps 8 \
  --raw > "$work/stdout" 2>&1 && grep -q "delta: " "$work/stdout" \
  && [ -s "$work/ok/scene_1010_star_integrated-gradients_path-gray.png" ] \
  && [ -s "$work/ok/scene_1010_star_integrated-gradients_delta.npy" ] && ok \
  || fail "integrated-gradients: $(cat "$work/stdout")"
"$CNNVIS" explain smoothgrad --model demo --image "$star" --out "$work/ok" --base guided-backprop \
  --samples 3 --option noise-level=0.1 > "$work/stdout" 2>&1 \
  && [ -s "$work/ok/scene_1010_star_smoothgrad_neg.png" ] && ok || fail "smoothgrad: $(cat "$work/stdout")"
"$CNNVIS" explain guided-backprop --model demo --image "$star" --out "$work/ok" \
  --unit features.17:5 --reduce abs-sum > "$work/stdout" 2>&1 \
  && grep -q "abs-sum of filter 5 at features.17" "$work/stdout" && ok || fail "unit: $(cat "$work/stdout")"
# Every method on AlexNet and ResNet (small inputs, few steps): pictures for every view.
for arch in alexnet resnet18; do
  for m in $("$CNNVIS" list | awk '{print $1}'); do
    rm -rf "$work/zoo"
    "$CNNVIS" explain "$m" --model $arch --random-weights 3 --size 64 --image "$cat_png" \
      --out "$work/zoo" $(case $m in integrated-gradients) echo --steps 4;; smoothgrad) echo --samples 2;;
      occlusion) echo --window 32 --stride 32;; esac) > "$work/stdout" 2>&1 \
      && [ "$(ls "$work/zoo" | grep -c '\.png$')" -ge 2 ] && ok || fail "$m on $arch: $(cat "$work/stdout")"
  done
done
expect 2 "steps=0: expected an integer >= 1" "$CNNVIS" explain integrated-gradients --model demo \
  --image "$star" --out "$work/out" --steps 0
expect 2 "noise-level=-1" "$CNNVIS" explain smoothgrad --model demo --image "$star" \
  --out "$work/out" --noise-level -1
expect 2 "window=200: larger than the 96x96 image" "$CNNVIS" explain occlusion --model demo \
  --image "$star" --out "$work/out" --window 200
expect 2 "filter 99 of layer features.17: the layer has 64 channels" "$CNNVIS" explain \
  guided-backprop --model demo --image "$star" --out "$work/out" --unit features.17:99
expect 2 "--unit: unknown layer 'feat.17'" "$CNNVIS" explain guided-backprop --model demo \
  --image "$star" --out "$work/out" --unit feat.17:9
expect 2 "--unit: expected LAYER:FILTER" "$CNNVIS" explain guided-backprop --model demo \
  --image "$star" --out "$work/out" --unit features.17
expect 2 "vanilla: unknown option 'steps'" "$CNNVIS" explain vanilla --model demo --image "$star" \
  --out "$work/out" --steps 3
expect 2 "--unit and --target exclude" "$CNNVIS" explain vanilla --model demo --image "$star" \
  --out "$work/out" --unit features.17:1 --target star
# LRP: a composite, rule overrides and the relevance at a layer (raw [1, C, h, w] plus the input).
rm -rf "$work/lrp"
"$CNNVIS" explain lrp --model vgg11_bn --random-weights 2 --size 64 --image "$cat_png" \
  --out "$work/lrp" --composite epsilon-gamma-box --rule Linear=epsilon:0.01 --layer features.7 \
  --raw > "$work/stdout" 2>&1 && [ -s "$work/lrp/chelsea_lrp_heatmap.png" ] \
  && [ -s "$work/lrp/chelsea_lrp_input.png" ] && [ -s "$work/lrp/chelsea_lrp_input.npy" ] && ok \
  || fail "lrp at a layer: $(cat "$work/stdout")"
if /usr/bin/python3 -c "import numpy" 2> /dev/null; then
  shape=$(/usr/bin/python3 -c "import numpy; print(numpy.load('$work/lrp/chelsea_lrp.npy').shape)")
  [ "$shape" = "(1, 128, 16, 16)" ] && ok || fail "lrp raw at features.7 is $shape"
fi
"$CNNVIS" layers --model resnet18 --lrp epsilon-gamma-box 2>&1 \
  | grep -E "^conv1 .*lrp: z-box \(with bn1 merged\)" > /dev/null && ok || fail "layers --lrp"
expect 2 "composite=epsilon-plus-flatt" "$CNNVIS" explain lrp --model demo --image "$star" \
  --out "$work/out" --composite epsilon-plus-flatt
expect 2 "'Conv3d' is neither a layer of demo nor a layer type" "$CNNVIS" explain lrp --model demo \
  --image "$star" --out "$work/out" --rule Conv3d=z-plus
expect 2 "lrp rule 'gama': unknown rule 'gama'" "$CNNVIS" explain lrp --model demo \
  --image "$star" --out "$work/out" --rule Conv2d=gama
expect 2 "'features.99' is not a layer of demo" "$CNNVIS" explain lrp --model demo \
  --image "$star" --out "$work/out" --layer features.99
# Image synthesis: a batch of filters (one PNG each and a contact sheet, snapshots, raw), a class.
rm -rf "$work/syn"
"$CNNVIS" synthesize filter --model demo --layer features.10 --filter 0-1 --size 48 --steps 4 \
  --every 2 --raw --out "$work/syn" > "$work/stdout" 2> "$work/stderr" \
  && [ -s "$work/syn/demo_features.10_filter1.png" ] && [ -s "$work/syn/demo_features.10_filters.png" ] \
  && [ -s "$work/syn/demo_features.10_filter0_step2.png" ] && [ -s "$work/syn/demo_features.10_filter0.npy" ] \
  && grep -q "step 4/4" "$work/stderr" && ok || fail "synthesize filter: $(cat "$work/stdout" "$work/stderr")"
# Deterministic: the same seed gives byte-identical PNGs.
"$CNNVIS" synthesize filter --model demo --layer features.10 --filter 0-1 --size 48 --steps 4 \
  --jitter 2 --out "$work/syn2" > /dev/null 2>&1 \
  && "$CNNVIS" synthesize filter --model demo --layer features.10 --filter 0-1 --size 48 --steps 4 \
  --jitter 2 --out "$work/syn3" > /dev/null 2>&1 \
  && cmp -s "$work/syn2/demo_features.10_filters.png" "$work/syn3/demo_features.10_filters.png" \
  && ok || fail "synthesize is not byte-identical for one seed"
"$CNNVIS" synthesize class --model demo --target star --steps 3 --out "$work/syn" > "$work/stdout" 2>&1 \
  && [ -s "$work/syn/demo_class3_l2.png" ] && ok || fail "synthesize class: $(cat "$work/stdout")"
expect 2 "filter 99 of layer features.10: the layer has 64 channels" "$CNNVIS" synthesize filter \
  --model demo --layer features.10 --filter 99 --steps 2 --out "$work/out"
expect 2 "unknown layer 'features.99'" "$CNNVIS" synthesize filter --model demo --layer features.99 \
  --steps 2 --out "$work/out"
expect 2 "filters '3-1'" "$CNNVIS" synthesize filter --model demo --layer features.10 --filter 3-1 \
  --out "$work/out"
expect 2 "--size 16: vgg11 takes inputs of at least 32x32 pixels" "$CNNVIS" synthesize class \
  --model vgg11 --random-weights 0 --target 0 --size 16 --out "$work/out"
expect 2 "--steps: expected an integer from 1 to 1000000, got 0" "$CNNVIS" synthesize class --model demo --target 0 --steps 0 --out "$work/out"
# Inversion, Deep Dream (both presets), lucid's preset with a batch and diversity, a neuron,
# a direction.
"$CNNVIS" synthesize invert --model demo --image "$star" --layer features.6 --steps 20 \
  --out "$work/syn" > "$work/stdout" 2>&1 && [ -s "$work/syn/demo_features.6_inverted.png" ] \
  && grep -q "normalized distance .*classified" "$work/stdout" && ok \
  || fail "synthesize invert: $(cat "$work/stdout")"
"$CNNVIS" synthesize invert --model demo --image "$star" --layer features.6 --steps 5 \
  --preset classic --out "$work/syn" > "$work/stdout" 2>&1 && ok \
  || fail "synthesize invert --preset classic: $(cat "$work/stdout")"
"$CNNVIS" synthesize deep-dream --model demo --image "$star" --layer features.10 --octaves 2 \
  --steps 3 --out "$work/syn" > "$work/stdout" 2> "$work/stderr" \
  && [ -s "$work/syn/demo_features.10_dream.png" ] && grep -q "step 6/6" "$work/stderr" && ok \
  || fail "synthesize deep-dream: $(cat "$work/stdout" "$work/stderr")"
"$CNNVIS" synthesize deep-dream --model demo --image "$star" --layer features.10 --filter 5 \
  --preset classic --steps 3 --out "$work/syn" > "$work/stdout" 2>&1 \
  && [ -s "$work/syn/demo_features.10_filter5_dream.png" ] && ok \
  || fail "synthesize deep-dream --preset classic: $(cat "$work/stdout")"
"$CNNVIS" synthesize filter --model demo --layer features.10 --filter 3 --preset lucid --steps 4 \
  --batch 2 --diversity 1 --size 64 --out "$work/syn" > "$work/stdout" 2>&1 \
  && [ -s "$work/syn/demo_features.10_filter3_1.png" ] && ok \
  || fail "synthesize filter --preset lucid --batch: $(cat "$work/stdout")"
"$CNNVIS" synthesize filter --model demo --layer features.9 --neuron --filter 2 --param fft \
  --transforms standard --steps 3 --out "$work/syn" > "$work/stdout" 2>&1 \
  && [ -s "$work/syn/demo_features.9_neuron2.png" ] && ok \
  || fail "synthesize filter --neuron: $(cat "$work/stdout")"
# A centre neuron that starts at 0 stays there (with a note), and moves with lucid's redirected
# ReLU.
"$CNNVIS" synthesize filter --model demo --layer features.10 --neuron --filter 2 --param fft \
  --lr 0.01 --steps 20 --size 64 --redirected-relu 0 --out "$work/syn" > "$work/stdout" 2> "$work/stderr" \
  && grep -q "score 0 -> 0)" "$work/stdout" && grep -q "stayed at 0.*--redirected-relu" "$work/stderr" \
  && "$CNNVIS" synthesize filter --model demo --layer features.10 --neuron --filter 2 --param fft \
  --lr 0.01 --steps 20 --size 64 --redirected-relu 16 --out "$work/syn" > "$work/stdout" 2>&1 \
  && grep -qE "score 0 -> [1-9]" "$work/stdout" && ok \
  || fail "synthesize --redirected-relu: $(cat "$work/stdout" "$work/stderr")"
/usr/bin/python3 -c "import numpy; numpy.save('$work/dir.npy', numpy.linspace(-1, 1, 64).astype('float32'))"
"$CNNVIS" synthesize direction --model demo --layer features.10 --direction "$work/dir.npy" \
  --steps 3 --out "$work/syn" > "$work/stdout" 2>&1 \
  && [ -s "$work/syn/demo_features.10_direction.png" ] && ok \
  || fail "synthesize direction: $(cat "$work/stdout")"
# The zoo models (random weights): AlexNet inversions of several layers, VGG Deep Dream, lucid
# filters.
"$CNNVIS" synthesize invert --model alexnet --random-weights 0 --image "$star" --size 64 \
  --layer features.0,features.4 --steps 2 --out "$work/syn" > "$work/stdout" 2>&1 \
  && [ -s "$work/syn/alexnet_features.4_inverted.png" ] \
  && [ -s "$work/syn/alexnet_inversions.png" ] && ok \
  || fail "synthesize invert on alexnet: $(cat "$work/stdout")"
"$CNNVIS" synthesize deep-dream --model vgg11 --random-weights 0 --image "$star" --size 64 \
  --layer features.10 --octaves 2 --steps 2 --out "$work/syn" > "$work/stdout" 2>&1 \
  && [ -s "$work/syn/vgg11_features.10_dream.png" ] && ok \
  || fail "synthesize deep-dream on vgg11: $(cat "$work/stdout")"
"$CNNVIS" synthesize filter --model vgg11 --random-weights 0 --size 64 --layer features.10 \
  --filter 0-1 --preset lucid --steps 2 --out "$work/syn" > "$work/stdout" 2>&1 \
  && [ -s "$work/syn/vgg11_features.10_filters.png" ] && ok \
  || fail "synthesize filter --preset lucid on vgg11: $(cat "$work/stdout")"
expect 2 "--layer features.6,features.10: filter takes one layer" "$CNNVIS" synthesize filter \
  --model demo --layer features.6,features.10 --out "$work/out"
expect 2 "direction: 3 values for layer features.10 with 64 channels" "$CNNVIS" synthesize \
  direction --model demo --layer features.10 --direction 1,0,0 --out "$work/out"
expect 2 "param=wavelet: expected pixel or fft" "$CNNVIS" synthesize filter --model demo \
  --layer features.10 --param wavelet --out "$work/out"
expect 2 "deep dream preset 'fast'" "$CNNVIS" synthesize deep-dream --model demo --image "$star" \
  --layer features.10 --preset fast --out "$work/out"
expect 2 "smallest octave, 3x3, is too small for the network; use fewer octaves" "$CNNVIS" \
  synthesize deep-dream --model demo --image "$star" --layer features.10 --octaves 11 \
  --out "$work/out"
expect 1 "no-such.png" "$CNNVIS" synthesize invert --model demo --image "$work/no-such.png" \
  --layer features.6 --out "$work/out"

# ---- issue 15: every numeric option is checked where it is parsed, one line, exit 2 ----
# (cnnvis's own words: "--OPTION: expected ..., got VALUE"; CLI11's texts never reach the user.)
demo_base=(explain vanilla --model demo --image "$star" --out "$work/out")
# Global options.
expect 2 "^cnnvis: error: --threads: expected an integer from 1 to 1024, got 0" "$CNNVIS" --threads 0 list
expect 2 "--threads: expected an integer from 1 to 1024, got two" "$CNNVIS" --threads two list
expect 2 "^cnnvis: error: --gradient-strategy: expected auto, batched, split or channels-last, got 'fast'" "$CNNVIS" --gradient-strategy fast list
# bench shows the measured gradient strategy (IG batches of 2 path points, split over 2 threads).
"$CNNVIS" --threads 2 bench integrated-gradients --model resnet18 --random-weights 0 --size 32 --repeat 5 --option steps=4 --option batch=2 > "$work/stdout" 2>&1 \
  && /usr/bin/python3 -c "import json,sys; g=json.load(open(sys.argv[1]))['gradient_strategy']; assert g['policy'] == 'auto' and g['measured'] and g['measured'][0]['choice'] in ('batched', 'split', 'channels-last') and sorted(g['measured'][0]['ms']) == ['batched', 'channels-last', 'split'], g" "$work/stdout" \
  && ok || fail "bench gradient_strategy: $(cat "$work/stdout")"
expect 2 "^cnnvis: error: --pass-size: expected auto or full, got '16'" "$CNNVIS" --pass-size 16 list
# bench shows the measured pass size of a perturbation method (occlusion: 49 windows, passes of
# at most 8) and its policy; --pass-size full measures nothing.
"$CNNVIS" --threads 2 bench occlusion --model resnet18 --random-weights 0 --size 32 --repeat 1 --option window=8 --option stride=4 --option batch=8 > "$work/stdout" 2>&1 \
  && /usr/bin/python3 -c "import json,sys; p=json.load(open(sys.argv[1]))['pass_size']; m=p['measured']; assert p['policy'] == 'auto' and len(m) == 1 and m[0]['choice'] in ('8', '4', '2') and sorted(m[0]['ms_per_row']) == ['2', '4', '8'] and m[0]['key'].startswith('resnet18 forward [1, 3, 32, 32] Float, 2 threads, batch 8'), p" "$work/stdout" \
  && ok || fail "bench pass_size: $(cat "$work/stdout")"
"$CNNVIS" --pass-size full bench occlusion --model resnet18 --random-weights 0 --size 32 --repeat 1 --option window=8 --option stride=4 > "$work/stdout" 2>&1 \
  && /usr/bin/python3 -c "import json,sys; p=json.load(open(sys.argv[1]))['pass_size']; assert p == {'policy': 'full', 'measured': []}, p" "$work/stdout" \
  && ok || fail "bench --pass-size full: $(cat "$work/stdout")"
# --precision: refused values and devices; bf16 runs explain (float32 .npy), bench (both
# precisions timed, the maps' rank correlation), evaluate (the column against float32).
expect 2 "^cnnvis: error: --precision: expected float32, bf16 or fp16, got 'half'" "$CNNVIS" --precision half list
expect 2 "^cnnvis: error: --precision fp16: needs a CUDA device.*use --precision bf16" "$CNNVIS" --precision fp16 \
  "${demo_base[@]}"
rm -rf "$work/bf16"
"$CNNVIS" --precision bf16 explain grad-cam --model demo --image "$star" --out "$work/bf16" --raw \
    > "$work/stdout" 2> "$work/stderr"; bf16_rc=$?
if [ "$bf16_rc" = 2 ] && grep -q "^cnnvis: error: --precision bf16: this CPU cannot run bfloat16 convolutions" "$work/stderr"; then
  echo "note: bfloat16 cannot run on this CPU: its refusal is tested, not its results"
  expect 2 "^cnnvis: error: --precision bf16: this CPU cannot run bfloat16 convolutions" "$CNNVIS" \
    --precision bf16 "${demo_base[@]}"
else
[ "$bf16_rc" = 0 ] \
  && /usr/bin/python3 -c "import numpy, glob, sys; f = glob.glob(sys.argv[1] + '/*grad-cam*.npy'); a = numpy.load(f[0]); assert a.dtype == numpy.float32 and a.max() > 0, (f, a.dtype)" "$work/bf16" \
  && ok || fail "explain --precision bf16: $(cat "$work/stderr")"
"$CNNVIS" --precision bf16 bench vanilla --model demo --repeat 2 > "$work/stdout" 2> "$work/stderr" \
  && /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); r=d['reduced_precision']; assert d['precision'] == 'bf16' and r['precision'] == 'bf16' and 0.5 < r['rank_correlation'] <= 1 and r['speedup_method'] > 0 and r['float32']['method_time']['median_ms'] > 0 and 'under bf16 autocast' in str(d['gradient_strategy']), d" "$work/stdout" \
  && ok || fail "bench --precision bf16: $(cat "$work/stdout") $(cat "$work/stderr")"
"$CNNVIS" --precision bf16 evaluate --count 3 --methods vanilla --no-sanity --steps 4 > "$work/stdout" 2> "$work/stderr" \
  && grep -q "rank corr. to float32" "$work/stdout" && grep -qE "^\| vanilla backprop .*\| [01]\.[0-9]{3} \|$" "$work/stdout" \
  && ok || fail "evaluate --precision bf16: $(cat "$work/stdout") $(cat "$work/stderr")"
fi
expect 2 "--max-megapixels: expected a number > 0 and <= 1e\+06, got 0" "$CNNVIS" --max-megapixels 0 list
expect 2 "--max-megapixels: expected a number > 0.*, got nan" "$CNNVIS" --max-megapixels nan list
# explain: sizes, normalization, weights.
expect 2 "--size: expected an integer from 8 to 8192, got 0" "$CNNVIS" "${base[@]}" --image "$cat_png" --size 0
expect 2 "--size: expected an integer from 8 to 8192, got 100000" "$CNNVIS" "${base[@]}" --image "$cat_png" --size 100000
expect 2 "--size: expected an integer from 8 to 8192, got 1" "$CNNVIS" "${demo_base[@]}" --size 1
expect 2 "--size: expected an integer from 8 to 8192, got 64px" "$CNNVIS" "${demo_base[@]}" --size 64px
expect 2 "--size 32: alexnet takes inputs of at least 63x63 pixels" "$CNNVIS" explain vanilla --model alexnet \
  --random-weights 0 --size 32 --image "$cat_png" --out "$work/out"
expect 2 "--std: expected three comma-separated numbers > 0 \(R,G,B\), got nan,nan,nan" "$CNNVIS" \
  "${demo_base[@]}" --std nan,nan,nan
expect 2 "--std: expected three comma-separated numbers > 0.*got 0,1,1" "$CNNVIS" "${demo_base[@]}" --std 0,1,1
expect 2 "--mean: expected three comma-separated finite numbers.*got inf,0,0" "$CNNVIS" "${demo_base[@]}" --mean inf,0,0
expect 2 "--crop 300: expected at most the --resize value, 256" "$CNNVIS" explain vanilla --model resnet18 \
  --random-weights 0 --resize 256 --crop 300 --image "$cat_png" --out "$work/out"
expect 2 "--size and --resize exclude each other" "$CNNVIS" "${demo_base[@]}" --size 96 --resize 100 --crop 96
expect 2 "--resize: expected an integer from 8 to 8192, got -3" "$CNNVIS" "${demo_base[@]}" --resize -3 --crop 96
expect 2 "--random-weights: expected an integer >= 0, got -1" "$CNNVIS" "${demo_base[@]}" --random-weights -1
mkdir -p "$work/weights_dir"
expect 2 "--weights .*weights_dir: is a folder" "$CNNVIS" "${demo_base[@]}" --weights "$work/weights_dir"
: > "$work/empty.pth"
expect 1 "empty.pth" "$CNNVIS" "${demo_base[@]}" --weights "$work/empty.pth"
printf 'these are not weights\n' > "$work/text.pth"
expect 1 "text.pth" "$CNNVIS" "${demo_base[@]}" --weights "$work/text.pth"
printf 'PK\003\004garbage that is no zip archive' > "$work/garbage_zip.pth"
expect 1 "garbage_zip.pth" "$CNNVIS" "${demo_base[@]}" --weights "$work/garbage_zip.pth"
# A TorchScript archive is no state_dict: said so (Debian's python3-torch makes one).
if /usr/bin/python3 -c "import torch" 2> /dev/null; then
  /usr/bin/python3 -c "import torch, sys; torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), sys.argv[1])" \
    "$work/scripted.pt"
  expect 1 "scripted.pt: is a TorchScript archive" "$CNNVIS" "${demo_base[@]}" --weights "$work/scripted.pt"
fi
# A bad image among good ones: refused before anything is written.
expect 1 "text.png" "$CNNVIS" "${demo_base[@]}" --image "$work/text.png"  # after a good one
# A PNG whose IDAT chunk fails its CRC: libpng's own warnings stay off stderr.
/usr/bin/python3 - "$cat_png" "$work" <<'PY'
import struct, sys
data = bytearray(open(sys.argv[1], 'rb').read())
i = data.index(b'IDAT')
n = struct.unpack('>I', data[i - 4:i])[0]
crc = bytearray(data); crc[i + 4 + n] ^= 0xFF      # the chunk's CRC no longer matches
open(sys.argv[2] + '/badcrc.png', 'wb').write(crc)
inner = bytearray(data); inner[i + 4 + 20] ^= 0xFF  # nor its compressed data
open(sys.argv[2] + '/baddata.png', 'wb').write(inner)
PY
expect 1 "badcrc.png" "$CNNVIS" "${base[@]}" --image "$work/badcrc.png"
expect 1 "baddata.png" "$CNNVIS" "${base[@]}" --image "$work/baddata.png"
# Memory that runs out anyway (here a 3 GB address-space limit the estimate cannot see): one
# line of cnnvis's, exit 1, and no --out folder.
expect 1 "^cnnvis: error: out of memory \([0-9.]+ [GM]B more were asked for\); use a smaller --size" \
  bash -c 'ulimit -v 3000000; exec "$0" explain vanilla --model resnet18 --random-weights 0 --size 4096 \
  --image "$1" --out "$2/g"' "$CNNVIS" "$cat_png" "$work/out"
expect 1 "chelsea.png" "$CNNVIS" --max-megapixels 0.01 "${base[@]}" --image "$cat_png"
expect 2 "--option: expected KEY=VALUE" "$CNNVIS" "${demo_base[@]}" --option steps
# Memory: refused from the size before anything runs.
expect 2 "--size 8192: vgg11 needs about [0-9.]+ [GT]B for the layer outputs of 64 inputs.*available" \
  "$CNNVIS" bench vanilla --model vgg11 --random-weights 0 --size 8192 --batch 64
# demo: options, and a bad file among --images leaves no gallery (and no --out folder).
expect 2 "--size: expected an integer from 8 to 8192, got 0" "$CNNVIS" demo --size 0 --out "$work/out/g"
expect 2 "--std: expected three comma-separated numbers > 0" "$CNNVIS" demo --std nan,1,1 --out "$work/out/g"
expect 2 "--random-weights: expected an integer >= 0, got -1" "$CNNVIS" demo --random-weights -1 --out "$work/out/g"
expect 2 "--synthesis sometimes: expected on, off or auto" "$CNNVIS" demo --synthesis sometimes --out "$work/out/g"
mkdir -p "$work/mixed"
cp "$SRC"/data/scenes/scene_1010_star.png "$SRC"/data/scenes/scene_1010_star_mask.png "$work/mixed/"
cp "$work/text.png" "$work/mixed/zz_bad.png"
expect 1 "zz_bad.png" "$CNNVIS" demo --images "$work/mixed" --methods vanilla --synthesis off --out "$work/out/g"
# An existing gallery stays as it was when a later run fails.
rm -rf "$work/gal"
"$CNNVIS" demo --images "$SRC/data/scenes" --methods vanilla --synthesis off --out "$work/gal" > /dev/null 2>&1 \
  && before=$(cd "$work/gal" && find . -type f | sort | xargs md5sum) \
  && ! "$CNNVIS" demo --images "$work/mixed" --methods vanilla,grad-cam --synthesis off --out "$work/gal" > /dev/null 2>&1 \
  && [ "$before" = "$(cd "$work/gal" && find . -type f | sort | xargs md5sum)" ] \
  && [ -z "$(find "$work/gal" -name '.cnnvis-partial-*')" ] && ok || fail "a failed demo changed the gallery"
# evaluate.
expect 2 "--margin: expected a number >= 0 and <= 8192, got nan" "$CNNVIS" evaluate --margin nan --gallery "$work/out/g"
expect 2 "--margin: expected a number >= 0 and <= 8192, got -5" "$CNNVIS" evaluate --margin -5 --gallery "$work/out/g"
expect 2 "--cascade: expected an integer >= 0, got -1" "$CNNVIS" evaluate --cascade -1 --gallery "$work/out/g"
expect 2 "--cascade 8: the model has 7 layer groups to randomize \\(features.0 ... classifier.2\\)" \
  "$CNNVIS" evaluate --cascade 8 --count 1 --methods vanilla --gallery "$work/out/g"
expect 2 "--steps: expected an integer from 1 to 10000, got 0" "$CNNVIS" evaluate --steps 0 --gallery "$work/out/g"
expect 2 "--metrics: unknown metric 'roads'; expected default, all, or a list of" "$CNNVIS" evaluate --metrics road,roads --gallery "$work/out/g"
expect 2 "--deletion-substrate: expected mean or blur, got 'grey'" "$CNNVIS" evaluate --deletion-substrate grey --gallery "$work/out/g"
expect 2 "--road-fractions: each fraction must lie in \(0, 1\), got 1.5" "$CNNVIS" evaluate --road-fractions 0.5,1.5 --gallery "$work/out/g"
expect 2 "--road-fractions: expected numbers in \(0, 1\) separated by commas, got 'x'" "$CNNVIS" evaluate --road-fractions 0.5,x --gallery "$work/out/g"
# --metrics picks the columns; the JSON has the curves for the page's plots.
"$CNNVIS" evaluate --count 3 --methods grad-cam --metrics road,sparseness,sensitivity --road-fractions 0.2,0.5 \
  --perturbations 2 --gallery '' --json "$work/metrics.json" > "$work/stdout" 2> "$work/stderr" \
  && grep -q "^| method | ROAD MoRF ↓ | ROAD LeRF ↑ | ROAD LeRF - MoRF ↑ | max-sensitivity ↓ | sparseness ↑ | ms per image |$" "$work/stdout" \
  && /usr/bin/python3 -c "
import json, sys
r = json.load(open(sys.argv[1]))
g = r['results'][0]
assert r['road_fractions'] == [0.2, 0.5] and len(g['curves']['road_morf']) == 2 and g['curves']['deletion'] == [], g['curves']
assert set(g['per_image'][0]) == {'name', 'road_morf', 'road_lerf', 'max_sensitivity', 'sparseness'}, g['per_image'][0]
assert g['cascade'] == [] and 0 <= g['road_morf'] <= 1
" "$work/metrics.json" && ok || fail "evaluate --metrics: $(cat "$work/stdout" "$work/stderr")"
expect 2 "--batch: expected an integer from 1 to 4096, got 0" "$CNNVIS" evaluate --batch 0 --gallery "$work/out/g"
expect 2 "--sanity-images: expected an integer >= 0, got -2" "$CNNVIS" evaluate --sanity-images -2 --gallery "$work/out/g"
expect 2 "--count: expected an integer from 1 to 100000, got 1e3" "$CNNVIS" evaluate --count 1e3 --gallery "$work/out/g"
expect 2 "--size 64: the held-out demo scenes are drawn at 96 to 224 pixels" "$CNNVIS" evaluate --size 64 \
  --gallery "$work/out/g"
expect 2 "--seed: expected an integer >= 0, got -1" "$CNNVIS" evaluate --seed -1 --gallery "$work/out/g"
# bench.
bbase=(bench vanilla --model resnet18 --random-weights 0 --size 64)
expect 2 "--ref-batch: expected an integer from 1 to 4096, got -4" "$CNNVIS" "${bbase[@]}" --ref-batch -4
expect 2 "--repeat: expected an integer from 1 to 100000, got 0" "$CNNVIS" "${bbase[@]}" --repeat 0
expect 2 "--batch: expected an integer from 1 to 4096, got 0" "$CNNVIS" "${bbase[@]}" --batch 0
expect 2 "--target: expected an integer >= 0, got -1" "$CNNVIS" "${bbase[@]}" --target -1
expect 2 "--vs: expected METHOD:COUNT with COUNT from 1 to 100000" "$CNNVIS" "${bbase[@]}" --vs vanilla:0
expect 2 "--image .*missing.png: no such file" "$CNNVIS" "${bbase[@]}" --image "$work/missing.png"
# synthesize: every kind.
sbase=(synthesize filter --model demo --layer features.10 --out "$work/out")
expect 2 "--steps: expected an integer from 1 to 1000000, got -1" "$CNNVIS" "${sbase[@]}" --steps -1
expect 2 "--lr: expected a number > 0, got inf" "$CNNVIS" "${sbase[@]}" --lr inf
expect 2 "--scale: expected a number >= 0 and < 1, got nan" "$CNNVIS" "${sbase[@]}" --scale nan
expect 2 "--jitter: expected an integer from 0 to 8192, got -4" "$CNNVIS" "${sbase[@]}" --jitter -4
expect 2 "--pad: expected an integer from 0 to 4096, got 100000" "$CNNVIS" "${sbase[@]}" --pad 100000
expect 2 "--pad 4096: the padded image would be 8288 pixels a side" "$CNNVIS" "${sbase[@]}" --pad 4096
expect 2 "--rotate: expected an integer from 0 to 180, got 720" "$CNNVIS" "${sbase[@]}" --rotate 720
expect 2 "--blur-sigma: expected a number > 0 and <= 1000, got 0" "$CNNVIS" "${sbase[@]}" --blur-sigma 0
expect 2 "--batch: expected an integer from 1 to 1024, got 0" "$CNNVIS" "${sbase[@]}" --batch 0
expect 2 "--diversity: expected a number >= 0, got -1" "$CNNVIS" "${sbase[@]}" --diversity -1
expect 2 "--momentum: expected a number >= 0 and < 1, got 1" "$CNNVIS" synthesize class --model demo \
  --target 0 --momentum 1 --out "$work/out"
expect 2 "--lr-decay: expected a number > 0 and <= 1, got 2" "$CNNVIS" synthesize class --model demo \
  --target 0 --lr-decay 2 --out "$work/out"
expect 2 "--data-weight: expected a number > 0, got 0" "$CNNVIS" synthesize invert --model demo \
  --image "$star" --layer features.6 --data-weight 0 --out "$work/out"
expect 1 "text.png" "$CNNVIS" synthesize invert --model demo --image "$work/text.png" --layer features.6 \
  --out "$work/out"
expect 2 "--octaves: expected an integer from 1 to 20, got 0" "$CNNVIS" synthesize deep-dream --model demo \
  --image "$star" --layer features.10 --octaves 0 --out "$work/out"
expect 2 "--octave-scale: expected a number > 1 and <= 10, got 1" "$CNNVIS" synthesize deep-dream \
  --model demo --image "$star" --layer features.10 --octave-scale 1 --out "$work/out"
expect 2 "--direction 'nan,1': expected comma-separated numbers" "$CNNVIS" synthesize direction \
  --model demo --layer features.10 --direction nan,1 --out "$work/out"
printf '\223NUMPY garbage, not an array' > "$work/garbage.npy"
expect 1 "garbage.npy" "$CNNVIS" synthesize direction --model demo --layer features.10 \
  --direction "$work/garbage.npy" --out "$work/out"
# layers, scenes, train-demo, list.
expect 2 "--size: expected an integer from 8 to 8192, got 0" "$CNNVIS" layers --model vgg16 --size 0
expect 2 "--size 16: alexnet takes inputs of at least 63x63 pixels" "$CNNVIS" layers --model alexnet --size 16
expect 2 "--count: expected an integer from 1 to 100000, got 0" "$CNNVIS" scenes --count 0 --out "$work/out"
expect 2 "--seed: expected an integer >= 0, got -1" "$CNNVIS" scenes --seed -1 --out "$work/out"
expect 2 "--size: expected an integer from 96 to 224, got 20" "$CNNVIS" scenes --size 20 --out "$work/out"
expect 2 "--lr: expected a number > 0, got nan" "$CNNVIS" train-demo --lr nan --out "$work/out/w.safetensors"
expect 2 "--steps: expected an integer from 1 to 10000000, got 0" "$CNNVIS" train-demo --steps 0 \
  --out "$work/out/w.safetensors"
expect 2 "--eval-count: expected an integer from 1 to 100000, got 0" "$CNNVIS" train-demo --eval-count 0 \
  --out "$work/out/w.safetensors"
expect 2 "--out .*nodir/w.safetensors: folder .*nodir does not exist" "$CNNVIS" train-demo --steps 1 \
  --out "$work/out/nodir/w.safetensors"
expect 2 "--bogus" "$CNNVIS" list --bogus
# ---- batch: a data set, killed at random moments and rerun; bad images; shards; manifests ----
bset="$work/bset"; rm -rf "$bset" "$work/brun" "$work/bshard" "$work/bbad"
"$CNNVIS" scenes --seed 500 --count 12 --out "$bset" > /dev/null 2>&1 && rm -f "$bset"/*_mask.png && ok || fail "scenes for batch"
bargs=(batch --methods grad-cam,vanilla,occlusion --model demo --images "$bset" --batch 4 --raw)
delays=""
for k in 1 2 3 4 5; do
  delay=$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.2 + (r % 120) / 100 }'); delays="$delays $delay"
  timeout -s KILL "$delay" "$CNNVIS" "${bargs[@]}" --out "$work/brun" > /dev/null 2>&1
done
if "$CNNVIS" "${bargs[@]}" --out "$work/brun" > "$work/stdout" 2> "$work/stderr"; then
  /usr/bin/python3 - "$work/brun" <<'PY' && ok || fail "batch after SIGKILL at$delays s: the table and the files disagree"
import json, os, sys
d = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(d, "results.jsonl"))]
pairs = [(r["image"], r["method"]) for r in rows]
assert len(pairs) == 36 == len(set(pairs)), sorted(pairs)
assert all(r["status"] == "ok" and r["target_source"] == "top-1" for r in rows), rows
listed = {f for r in rows for f in r["files"]}
on_disk = {os.path.relpath(os.path.join(p, f), d) for p, _, fs in os.walk(d) for f in fs}
assert listed == on_disk - {"results.jsonl", "run.json"}, sorted(listed ^ on_disk)
PY
else
  fail "batch after SIGKILL at$delays s: $(cat "$work/stderr")"
fi
"$CNNVIS" "${bargs[@]}" --out "$work/brun" > "$work/stdout" 2>&1 \
  && grep -q "0 done now, 36 already done, 0 failed" "$work/stdout" && ok || fail "batch rerun: $(cat "$work/stdout")"
expect 2 "^cnnvis: error: --out .*brun: holds a run with other options \(methods: " \
  "$CNNVIS" batch --methods grad-cam --model demo --images "$bset" --out "$work/brun"
# Two shards, then --merge: the same targets and predictions as the single run.
for k in 0 1; do
  "$CNNVIS" "${bargs[@]}" --shard "$k/2" --out "$work/bshard" > /dev/null 2>&1 || fail "batch --shard $k/2"
done
"$CNNVIS" batch --merge "$work/bshard" > "$work/stdout" 2>&1 && grep -q "merged 36 rows" "$work/stdout" \
  && /usr/bin/python3 - "$work/brun" "$work/bshard" <<'PY' && ok || fail "batch shards + merge: $(cat "$work/stdout")"
import json, os, sys
load = lambda d: {(r["image"], r["method"]): (r["target"], r["predicted"]) for r in map(json.loads, open(os.path.join(d, "results.jsonl")))}
one, two = load(sys.argv[1]), load(sys.argv[2])
assert one == two, set(one.items()) ^ set(two.items())
assert not [f for f in os.listdir(sys.argv[2]) if f.startswith("results.shard-")]
PY
# A bad image is an error row: the others are done, the exit code is 1, the summary names it.
b1="$(cd "$bset" && ls | sed -n 1p)"; b2="$(cd "$bset" && ls | sed -n 2p)"
mkdir -p "$work/bbadset" && cp "$bset/$b1" "$bset/$b2" "$work/bbadset/" \
  && head -c 100 "$cat_png" > "$work/bbadset/truncated.png"
"$CNNVIS" batch --methods grad-cam --model demo --images "$work/bbadset" --out "$work/bbad" > "$work/stdout" 2> "$work/stderr"
rc=$?
[ "$rc" = 1 ] && grep -q "failed: truncated.png grad-cam: .*truncated.png" "$work/stdout" \
  && grep -q "^cnnvis: error: batch: 1 of 3 (image, method) pairs failed" "$work/stderr" \
  && [ "$(grep -c '"status":"ok"' "$work/bbad/results.jsonl")" = 2 ] && ok || fail "batch bad image (exit $rc): $(cat "$work/stdout" "$work/stderr")"
# A manifest: paths relative to it, targets by index or name.
printf 'path,target\n%s,1\n"%s"\n' "$b1" "$b2" > "$bset/list.csv"
"$CNNVIS" batch --methods vanilla --model demo --manifest "$bset/list.csv" --target 2 --no-png --out "$work/bman" > "$work/stdout" 2>&1 \
  && /usr/bin/python3 -c "
import json, sys
rows = sorted((json.loads(l) for l in open(sys.argv[1])), key=lambda r: r['image'])
assert [(r['target'], r['target_source'], r['files']) for r in rows] == [(1, 'manifest', []), (2, '--target', [])], rows
" "$work/bman/results.jsonl" && ok || fail "batch --manifest: $(cat "$work/stdout")"
expect 2 "^cnnvis: error: --shard 2/2: expected K/N with 0 <= K < N" "$CNNVIS" batch --methods vanilla --model demo --images "$bset" --shard 2/2 --out "$work/out"
expect 2 "^cnnvis: error: give the inputs as --images FOLDER or --manifest CSV" "$CNNVIS" batch --methods vanilla --model demo --images "$bset" --manifest "$bset/list.csv" --out "$work/out"
expect 2 "^cnnvis: error: --merge DIR merges a run's results files and takes no other option" "$CNNVIS" batch --merge "$work/brun" --methods vanilla
expect 2 "^cnnvis: error: --out .*bset/out: is inside --images" "$CNNVIS" batch --methods vanilla --model demo --images "$bset" --out "$bset/out"
expect 2 "^cnnvis: error: --merge .*nowhere: no such folder" "$CNNVIS" batch --merge "$work/nowhere"
expect 2 "^cnnvis: error: --methods: unknown method" "$CNNVIS" batch --methods nosuch --model demo --images "$bset" --out "$work/out"
expect 2 "^cnnvis: error: --option grad-cam.layer=x: method grad-cam is not among --methods" "$CNNVIS" batch --methods vanilla --option grad-cam.layer=x --model demo --images "$bset" --out "$work/out"
[ -z "$(find "$work" -name '*.tmp-*')" ] && ok || fail "temporary files left behind"

echo "cli: $passed passed, $failed failed ($cases error cases)"
[ "$failed" = 0 ]
