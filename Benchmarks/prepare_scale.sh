#!/usr/bin/env bash
# Issue 15's corpus-larger-than-memory measurement: a ~1 GB text made by repeating the bundled
# corpus (in a temporary folder, deleted at the end), then time and peak RSS (GNU time) of
#   recurrent prepare --text big.txt --out big.tokens
#   recurrent train --tokens big.tokens --steps 1   (mapping, the first step, validation of 10%)
# and, for contrast, the first step of train --text on a tenth of the text.
# Usage: bash Benchmarks/prepare_scale.sh [MEGABYTES, default 1024]
set -euo pipefail
cd "$(dirname "$0")/.."
megabytes=${1:-1024}
swift build -c release --product recurrent >/dev/null
bin=$PWD/.build/release/recurrent
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
corpus=Data/tinyshakespeare.txt
copies=$(( megabytes * 1048576 / $(stat -c %s $corpus) + 1 ))
for _ in $(seq $copies); do cat $corpus; done > "$work/big.txt"
echo "text: $(stat -c %s "$work/big.txt") bytes ($copies copies of $corpus)"
measure() {
  local label=$1
  shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" > "$work/out" 2>&1 || { cat "$work/out"; exit 1; }
  read -r seconds kilobytes < "$work/time"
  printf '%-40s %8.1f s %8.0f MB peak RSS\n' "$label" "$seconds" "$(echo "$kilobytes / 1024" | bc -l)"
}
measure "prepare (char)" "$bin" prepare --text "$work/big.txt" --out "$work/big.tokens"
echo "token file: $(stat -c %s "$work/big.tokens") bytes"
# Validation of the last 10% at this size would take minutes: validate on a small file.
head -c 200000 $corpus > "$work/valid.txt"
"$bin" prepare --text "$work/valid.txt" --tokenizer-from "$work/big.tokens" --out "$work/valid.tokens" >/dev/null
measure "train --tokens, 1 step" "$bin" train --tokens "$work/big.tokens" --valid-tokens "$work/valid.tokens" \
  --steps 1 --sample-every 0 --checkpoint "$work/m.safetensors"
# For contrast, train --text on a tenth of it (the whole would need ~10 GB: the text as a String
# and its ids as 8-byte Ints).
head -c $(( megabytes * 1048576 / 10 )) "$work/big.txt" > "$work/tenth.txt"
measure "train --text (a tenth of it), 1 step" "$bin" train --text "$work/tenth.txt" --valid-text "$work/valid.txt" \
  --steps 1 --sample-every 0 --checkpoint "$work/n.safetensors"
