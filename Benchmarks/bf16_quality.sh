#!/usr/bin/env bash
# bf16's quality check (issue 16): the default `recurrent train` run of issue 16 (bundled corpus,
# 2-layer GRU 256, 2000 steps, no regularizers, fixed seed; the defaults before issue 17's recipe,
# given explicitly so the check stays the same) in f32 and in bf16 on this machine, then the final
# validation loss of each and their difference (the bar: within 0.01 nats). Needs a CPU with AVX512_BF16.
#   bash Benchmarks/bf16_quality.sh [extra train options]
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product recurrent >/dev/null
out=$(mktemp -d)
for precision in f32 bf16; do
  start=$(date +%s)
  .build/release/recurrent train --precision "$precision" --eval-every 500 --sample-every 0 --json --batch 64 --fixed-windows \
    --hidden 256 --steps 2000 --weight-drop 0 --locked-dropout 0 --embedding-dropout 0 --zoneout 0 --ar 0 --tar 0 \
    --checkpoint "$out/$precision.safetensors" "$@" > "$out/$precision.jsonl"
  echo "$precision: $(( $(date +%s) - start )) s"
done
python3 - "$out" <<'PY'
import json, sys
final = {}
for precision in ("f32", "bf16"):
    events = [json.loads(l) for l in open(f"{sys.argv[1]}/{precision}.jsonl") if l.startswith("{")]
    done = [e for e in events if e.get("event") == "finished"][-1]
    final[precision] = done
    print(f"{precision}: step {done['step']} ({done['reason']}), validation {done['val_loss']:.4f} nats/char, "
          f"{done['elapsed_seconds']:.0f} s")
delta = final["bf16"]["val_loss"] - final["f32"]["val_loss"]
print(f"bf16 - f32: {delta:+.4f} nats ({'within' if abs(delta) <= 0.01 else 'NOT within'} 0.01)")
PY
