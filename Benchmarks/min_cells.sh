#!/usr/bin/env bash
# Training tokens/s of the min cells against the gated cells of the same width, alternating so
# drift hits both alike (issue 17): the default char model's shape (2 layers, hidden 256,
# embedding 64, batch 64, 64 steps) unless given otherwise.
#   bash Benchmarks/min_cells.sh [ROUNDS] [OUT.jsonl] [-- BENCH OPTIONS...]
# Prints each pair's median tokens/s and the ratio; appends every run to OUT.jsonl (one JSON
# object per run, with the pair, round, CPU model and load average).
set -euo pipefail
rounds=${1:-3}
out=${2:-Benchmarks/results/min_cells.jsonl}
shift $(( $# >= 2 ? 2 : $# ))
[[ ${1:-} == -- ]] && shift
shape=("$@")
[[ ${#shape[@]} -eq 0 ]] && shape=(--layers 2 --hidden 256 --embedding 64 --batch 64 --seq-len 64)
binary=${RECURRENT:-.build/release/recurrent}
[[ -x $binary ]] || { echo "min_cells.sh: $binary not found (swift build -c release first)" >&2; exit 1; }
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
for pair in "gru min-gru" "lstm min-lstm"; do
  read -r base fast <<<"$pair"
  a=() b=()
  for round in $(seq "$rounds"); do
    for cell in "$base" "$fast"; do
      load=$(cut -d' ' -f1 /proc/loadavg)
      line=$("$binary" bench --cell "$cell" "${shape[@]}" --threads 2 --seconds 4 --json | tail -1)
      tps=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["tokens_per_second"])' "$line")
      python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(cell=sys.argv[2], round=int(sys.argv[3]), shape=sys.argv[4], cpu=sys.argv[5], load=float(sys.argv[6])); print(json.dumps(d))' \
        "$line" "$cell" "$round" "${shape[*]}" "$cpu" "$load" >>"$out"
      if [[ $cell == "$base" ]]; then a+=("$tps"); else b+=("$tps"); fi
    done
  done
  python3 - "$base" "$fast" "${a[*]}" "${b[*]}" <<'PY'
import statistics, sys
base, fast = sys.argv[1], sys.argv[2]
a, b = [float(x) for x in sys.argv[3].split()], [float(x) for x in sys.argv[4].split()]
ma, mb = statistics.median(a), statistics.median(b)
print(f"{fast} {mb:,.0f} tokens/s vs {base} {ma:,.0f}: {mb / ma:.2f}x")
PY
done
