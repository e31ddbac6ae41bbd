#!/usr/bin/env bash
# Fuzz the readers of untrusted files (safetensors checkpoints of both kinds, .npy) with libFuzzer
# for a bounded time. Usage: bash Tools/fuzz.sh [SECONDS]  (default 60). Exit status non-zero on a
# crash; the crashing input is left in .build/fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
swift build -c release --sanitize=fuzzer --build-path .build/fuzz --product checkpoint-fuzzer >/dev/null
corpus=.build/fuzz/corpus
mkdir -p "$corpus" .build/fuzz/artifacts
# Seeds: the committed checkpoints and arrays.
cp Tests/TrainingTests/Fixtures/*.safetensors Tests/FormatsTests/Fixtures/npy/*.npy "$corpus"/
bin=$(swift build -c release --sanitize=fuzzer --build-path .build/fuzz --show-bin-path)/checkpoint-fuzzer
log=.build/fuzz/last-run.log
status=0
"$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
  -artifact_prefix=.build/fuzz/artifacts/ "$corpus" >"$log" 2>&1 || status=$?
grep -E "^(Done|stat::number_of_executed_units)|ERROR|SUMMARY|deadly signal" "$log" || true
if [ "$status" -ne 0 ]; then
  tail -n 40 "$log" >&2
  echo "fuzz: the reader crashed (input saved in .build/fuzz/artifacts/)" >&2
fi
exit "$status"
