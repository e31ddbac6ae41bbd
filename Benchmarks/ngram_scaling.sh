#!/usr/bin/env bash
# Time and peak memory of `recurrent ngram train` on 10-million-token corpora.
#   bash Benchmarks/ngram_scaling.sh [WORK_FOLDER]
# Two corpora of 10,000,000 characters: tinyshakespeare repeated (few distinct n-grams) and
# uniformly random characters from 64 symbols (nearly every 5-gram distinct: the worst case
# for memory), each at order 5, plus the repeated corpus at word level (order 3).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}
bin=.build/release/recurrent
python3 - "$work" <<'PY'
import random, sys
work = sys.argv[1]
text = open("Data/tinyshakespeare.txt", encoding="utf-8").read()
repeated = (text * 9)[:10_000_000]
open(f"{work}/repeated.txt", "w").write(repeated)
alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n"
rng = random.Random(1)
open(f"{work}/random.txt", "w").write("".join(rng.choice(alphabet) for _ in range(10_000_000)))
words = text.split()
open(f"{work}/words.txt", "w").write(" ".join(words[i % len(words)] for i in range(10_000_000)) + "\n")
PY
for corpus in repeated random; do
  /usr/bin/time -f "$corpus.txt, char, order 5: %e s wall, %M KB peak RSS" \
    "$bin" ngram train --text "$work/$corpus.txt" --order 5 --out "$work/$corpus.arpa" --json
done
/usr/bin/time -f "words.txt, word, order 3: %e s wall, %M KB peak RSS" \
  "$bin" ngram train --text "$work/words.txt" --tokenizer word --order 3 --out "$work/words.arpa" --json
