#!/usr/bin/env bash
# The web server's cost: the daemon replays samples/demo-scene.wav (64 s) at real-time pace
# twice, without [http] and with it and the page open in headless Chromium all along, and
# prints the daemon's CPU (user + system, % of one core over the run) and peak RSS for each.
# Usage: tools/web_cost.sh [BINARY]   (default target/release/soundsentry)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/soundsentry}
port=${PORT:-18090}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
config() {
  cat <<TOML
sensor_id = "cost"
[model]
path = "$PWD/models/sitehome-tiny-ast"
[source]
kind = "file"
path = "$PWD/samples/demo-scene.wav"
realtime = true
[output]
stdout = true
[levels]
enabled = true
interval = "1s"
stdout = false
TOML
  if [ "$1" = web ]; then printf '[http]\nlisten = "127.0.0.1:%s"\n' "$port"; fi
}
measure() {
  config "$1" > "$work/$1.toml"
  /usr/bin/time -f "%e %U %S %M" -o "$work/$1.time" "$bin" run --config "$work/$1.toml" \
    > /dev/null 2> "$work/$1.log" &
  local daemon=$!
  local browser=
  if [ "$1" = web ]; then
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" > /dev/null && break; sleep 0.1; done
    chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
      --disable-component-update --disable-sync --user-data-dir="$work/chromium" \
      --remote-debugging-port=0 "http://127.0.0.1:$port/" > /dev/null 2>&1 &
    browser=$!
    sleep 5
    echo "page open: $(curl -sf "http://127.0.0.1:$port/metrics" | grep '^soundsentry_stream_clients ')"
  fi
  wait "$daemon"
  if [ -n "$browser" ]; then kill "$browser" 2> /dev/null || true; wait "$browser" 2> /dev/null || true; fi
  read -r wall user sys rss < "$work/$1.time"
  printf '%-8s wall %6.1f s  CPU %5.2f %% of a core  peak RSS %6.1f MiB\n' "$1" "$wall" \
    "$(echo "($user + $sys) * 100 / $wall" | bc -l)" "$(echo "$rss / 1024" | bc -l)"
}
measure plain
measure web
