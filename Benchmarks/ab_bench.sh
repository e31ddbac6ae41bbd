#!/usr/bin/env bash
# A/B of two builds of `recurrent` on the same machine, alternating so drift hits both alike:
#   bash Benchmarks/ab_bench.sh BINARY_A BINARY_B [ROUNDS] WORKLOAD...
# (e.g. build a commit and its parent, copy each .build/release/recurrent aside). Prints each
# workload's median tokens/s (or ms/token) for A and B and the ratio B / A.
set -euo pipefail
a=$1 b=$2
shift 2
rounds=5
if [[ ${1:-} =~ ^[0-9]+$ ]]; then rounds=$1; shift; fi
for w in "$@"; do
  ra=() rb=()
  for _ in $(seq "$rounds"); do
    ra+=("$("$a" bench --workload "$w" --threads 2 --seconds 3 --json | python3 -c 'import json,sys; d=json.loads(sys.stdin.read().splitlines()[-1]); print(d["tokens_per_second"] or d["ms_per_token"])')")
    rb+=("$("$b" bench --workload "$w" --threads 2 --seconds 3 --json | python3 -c 'import json,sys; d=json.loads(sys.stdin.read().splitlines()[-1]); print(d["tokens_per_second"] or d["ms_per_token"])')")
  done
  python3 - "$w" "${ra[*]}" "${rb[*]}" <<'PY'
import statistics, sys
w, a, b = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
ma, mb = statistics.median(a), statistics.median(b)
print(f"{w}: A {ma:.1f}  B {mb:.1f}  B/A {mb / ma:.3f}  (A {min(a):.0f}-{max(a):.0f}, B {min(b):.0f}-{max(b):.0f})")
PY
done
