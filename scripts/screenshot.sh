#!/usr/bin/env bash
# Renders an HTML page (a cnnvis gallery) with headless Chromium and saves a PNG screenshot.
#   scripts/screenshot.sh demo/index.html docs/gallery.png [WIDTH HEIGHT]
# Needs Debian's chromium: `CNNVIS_WITH_BROWSER=1 scripts/setup.sh` or `apt-get install chromium`.
set -euo pipefail
page="${1:?usage: screenshot.sh PAGE.html OUT.png [WIDTH HEIGHT]}"
out="${2:?usage: screenshot.sh PAGE.html OUT.png [WIDTH HEIGHT]}"
width="${3:-1400}"; height="${4:-800}"
browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
  echo "screenshot: error: chromium not found; install it with: sudo apt-get install chromium" >&2
  exit 1
fi
[ -f "$page" ] || { echo "screenshot: error: $page: no such file" >&2; exit 2; }
profile="$(mktemp -d)"; trap 'rm -rf "$profile"' EXIT
tmp="$out.tmp-$$.png"
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
  --no-first-run --hide-scrollbars --user-data-dir="$profile" \
  --window-size="$width,$height" --screenshot="$tmp" "file://$(realpath "$page")" \
  > /dev/null 2>&1
[ -s "$tmp" ] || { echo "screenshot: error: chromium wrote no screenshot of $page" >&2; exit 1; }
mv "$tmp" "$out"
echo "screenshot: wrote $out"
