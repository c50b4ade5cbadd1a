# Sourced by bench/batch.sh and bench/mpi.sh: $work (a temporary folder, removed on exit) with
# COUNT demo scenes (seed 900, masks removed) in $work/scenes, and `seconds CMD...`: the
# seconds of one run of CMD, its output discarded (its stderr shown if it fails). Needs $build
# and $count.
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
"$build/cnnvis" scenes --seed 900 --count "$count" --out "$work/scenes" > /dev/null
rm -f "$work/scenes"/*_mask.png
seconds() {
  local t0="$EPOCHREALTIME"
  "$@" > /dev/null 2> "$work/stderr" || { cat "$work/stderr" >&2; exit 1; }
  local t1="$EPOCHREALTIME"
  /usr/bin/python3 -c "print($t1 - $t0)"
}
