#!/usr/bin/env bash
# The search behind train's regularized default recipe (issue 17, item 4): runs `recurrent train`
# once per configuration (one per line of CONFIGS: the extra flags, on top of `--eval-every 500
# --sample-every 0`), one after another so no two share the cores, and appends one JSON line per run
# to OUT: the flags, the best and final validation loss (nats/token), steps, seconds.
# Usage: bash Benchmarks/recipe_search.sh CONFIGS OUT [TEXT]
#   CONFIGS: a file of lines such as "--steps 3500 --weight-drop 0.2"; '#' lines are skipped.
#   TEXT: the training text (default: the bundled corpus; word runs add --tokenizer word themselves).
# Tune only on the bundled corpus and texts you make (the validation split is train's own: the
# last 10% of the text).
set -euo pipefail
cd "$(dirname "$0")/.."
configs=$1
out=$2
text=${3:-}
swift build -c release --product recurrent >/dev/null
bin=.build/release/recurrent
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
while IFS= read -r line; do
  [[ -z "$line" || "$line" == \#* ]] && continue
  read -r -a flags <<<"$line"
  args=(train --eval-every 500 --sample-every 0 --json --checkpoint "$work/m.safetensors")
  [ -n "$text" ] && args+=(--text "$text")
  "$bin" "${args[@]}" "${flags[@]}" >"$work/run.jsonl"
  python3 - "$line" "$work/run.jsonl" >>"$out" <<'PY'
import json, sys
flags, path = sys.argv[1], sys.argv[2]
events = [json.loads(l) for l in open(path)]
evals = [e for e in events if e["event"] == "eval"]
done = [e for e in events if e["event"] == "finished"][-1]
best = min(evals, key=lambda e: e["val_loss"])
print(json.dumps({"flags": flags, "best_val_loss": round(best["val_loss"], 4), "best_step": best["step"],
                  "final_val_loss": round(done["val_loss"], 4), "steps": done["step"],
                  "seconds": round(done["elapsed_seconds"], 1), "reason": done["reason"],
                  "curve": [[e["step"], round(e["val_loss"], 4)] for e in evals]}))
PY
  tail -n 1 "$out"
done <"$configs"
