#!/usr/bin/env bash
# Builds the DocC documentation of the library's modules with swift-docc-plugin and fails on any
# warning (a broken symbol link, an undocumented parameter), and on any public declaration
# without a doc comment (Tools/check_doc_comments.py).
# Usage: bash Tools/docs.sh [OUTPUT_DIR]   (default .build/docs; open OUTPUT_DIR/<Module>.doccarchive
#        with `xcrun docc preview`, or serve the static site written with --static)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.build/docs}
python3 Tools/check_doc_comments.py Sources
mkdir -p "$out"
status=0
for target in TensorCore Recurrent Formats TextCorpus SequenceModels Training Baselines; do
  log=$(mktemp)
  swift package --allow-writing-to-directory "$out" generate-documentation --target "$target" \
    --output-path "$out/$target.doccarchive" --transform-for-static-hosting --hosting-base-path "$target" \
    --warnings-as-errors >"$log" 2>&1 || status=1
  if grep -q "warning:\|error:" "$log" || [ "$status" != 0 ]; then
    cat "$log"
    echo "documentation of $target has warnings" >&2
    exit 1
  fi
  echo "documentation of $target: $out/$target.doccarchive"
  rm -f "$log"
done
