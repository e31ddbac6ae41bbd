#!/usr/bin/env bash
# BPE at scale: learns merges from a 100 MB text and encodes it (recurrent bench-bpe).
# The text is made from what a Debian machine has: the bundled corpus, the Python standard
# library's sources, then the manual pages (troff), cut at SIZE bytes (default 100 MB).
# Usage: bash Benchmarks/bpe_scale.sh [SIZE_BYTES] [VOCAB_SIZE]
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-100000000}
vocab=${2:-8192}
swift build -c release --product recurrent >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{
  cat Data/tinyshakespeare.txt
  find /usr/lib/python3* -name '*.py' 2>/dev/null | LC_ALL=C sort | xargs cat 2>/dev/null || true
  find /usr/share/man -name '*.gz' 2>/dev/null | LC_ALL=C sort | xargs zcat -f 2>/dev/null || true
} | head -c "$size" >"$work/corpus.txt"
echo "corpus: $(wc -c <"$work/corpus.txt") bytes"
/usr/bin/time -f "peak memory %M KB, %e s wall" .build/release/recurrent bench-bpe --text "$work/corpus.txt" --vocab-size "$vocab"
