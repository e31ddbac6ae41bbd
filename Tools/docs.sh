#!/usr/bin/env bash
# Builds the DocC documentation of the library's modules with swift-docc-plugin and fails on any
# warning (a broken symbol link, an undocumented parameter), and on any public declaration
# without a doc comment (Tools/check_doc_comments.py).
# Usage: bash Tools/docs.sh [OUTPUT_DIR]   (default .build/docs: one <Module>.doccarchive each,
#        in the static-hosting layout; serve the folder, or open an archive with `docc preview`)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.build/docs}
python3 Tools/check_doc_comments.py Sources
# The plugin extracts symbols with every trait's code compiled, the MPI trait's included.
if ! pkg-config --exists ompi-c 2>/dev/null; then
  echo "docs.sh: the DocC plugin compiles the MPI trait's code too: install Open MPI's headers first (Debian: apt-get install -y libopenmpi-dev)" >&2
  exit 1
fi
targets=(TensorCore Recurrent Formats TextCorpus SequenceModels Training Baselines ONNXExport Serving)
args=()
for target in "${targets[@]}"; do args+=(--target "$target"); done
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# One invocation: the plugin builds the symbol graphs of every target in one build.
if ! swift package --allow-writing-to-directory .build/plugins generate-documentation "${args[@]}" \
  --transform-for-static-hosting --warnings-as-errors >"$log" 2>&1 || grep -q "warning:" "$log"; then
  cat "$log"
  echo "the documentation has warnings or errors" >&2
  exit 1
fi
mkdir -p "$out"
for target in "${targets[@]}"; do
  rm -rf "${out:?}/$target.doccarchive"
  cp -R ".build/plugins/Swift-DocC/outputs/$target.doccarchive" "$out/"
  echo "documentation of $target: $out/$target.doccarchive"
done
