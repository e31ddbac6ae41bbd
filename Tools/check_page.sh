#!/usr/bin/env bash
# The page at / in headless Chromium (Debian: apt-get install -y chromium): it streams a
# completion from the server's own API; the DOM after it must hold the generated text and
# "done", and a screenshot of the page is written.
# Usage: bash Tools/check_page.sh CHECKPOINT [SCREENSHOT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
checkpoint=${1:?usage: Tools/check_page.sh CHECKPOINT [SCREENSHOT.png]}
screenshot=${2:-page.png}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "needs Chromium: apt-get install -y chromium" >&2; exit 1; }
log=$(mktemp)
.build/release/recurrent-server --checkpoint "$checkpoint" --port 0 >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do grep -q "serving" "$log" && break; sleep 0.1; done
port=$(grep -o '127.0.0.1:[0-9]*' "$log" | head -1 | cut -d: -f2)
url="http://127.0.0.1:$port/?prompt=ROMEO:&length=300&temperature=0.8&autostart=1"
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1000,900 --virtual-time-budget=20000)
dom=$("$browser" "${flags[@]}" --dump-dom "$url" 2>/dev/null)
text=$(printf '%s' "$dom" | python3 -c 'import sys,re,html; m=re.search(r"<div id=\"out\">(.*?)</div>", sys.stdin.read(), re.S); print(html.unescape(m.group(1)) if m else "")')
status=$(printf '%s' "$dom" | grep -o '<div id="status">[^<]*</div>' || true)
echo "status: $status"
echo "text: ${text:0:200}"
[ "${#text}" -gt 100 ] || { echo "the page shows no generated text" >&2; exit 1; }
case "$status" in *done*) ;; *) echo "the stream did not finish on the page" >&2; exit 1 ;; esac
"$browser" "${flags[@]}" --screenshot="$screenshot" "$url" 2>/dev/null
echo "wrote $screenshot"
