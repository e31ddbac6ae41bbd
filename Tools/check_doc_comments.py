#!/usr/bin/env python3
"""Every public declaration under the given folders has a doc comment (/// or /** */) right
above it (attributes between are fine). Prints each one without and exits 1 if any."""
import pathlib
import re
import sys

declaration = re.compile(r'^(@[\w.]+(\([^)]*\))?\s+)*(public|open)\s+(?!import\b|extension\b)')
missing = []
for root in sys.argv[1:] or ["Sources"]:
    for path in sorted(pathlib.Path(root).rglob("*.swift")):
        lines = path.read_text(encoding="utf-8").split("\n")
        for i, line in enumerate(lines):
            if not declaration.match(line.strip()):
                continue
            j = i - 1
            while j >= 0 and lines[j].strip().startswith("@"):
                j -= 1
            above = lines[j].strip() if j >= 0 else ""
            if not (above.startswith("///") or above.endswith("*/")):
                missing.append(f"{path}:{i + 1}: {line.strip()[:100]}")
for m in missing:
    print(m)
if missing:
    print(f"{len(missing)} public declarations without a doc comment", file=sys.stderr)
    sys.exit(1)
