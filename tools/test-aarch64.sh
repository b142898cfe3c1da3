#!/usr/bin/env bash
# Checks the arm64 build's model paths under qemu-user against this machine's x86-64 build:
# `classify --json` of the same files with the fp32 and int8 default models, the tiny AST and
# BEATs fixtures (the fused attention, layer norm, grouped convolutions) and the waveform
# fixture, as a Cortex-A72 (Raspberry Pi 4: NEON, int8 on the SMLAL kernel) and a Cortex-A76
# (Raspberry Pi 5: NEON with SDOT, the int8 dot-product kernel; qemu reports the CPU's
# features through HWCAP, which tract reads). Every label's score must agree within 1e-4.
# Then the daemon itself, threads and all: `run` of the demo configuration as a Cortex-A76
# gives the x86-64 build's sound events (labels, states, stream times; scores within 1e-4),
# and the lib's unit tests run under qemu (`--no-unit` skips them). About 9 minutes in all on
# two cores.
#
# qemu runs the binary against the arm64 glibc of the multiarch packages (`libc6:arm64`, which
# `libasound2-dev:arm64` installs) through the host's root. Never `-L /usr/aarch64-linux-gnu`:
# that prefix holds the cross package's loader, which then loads the multiarch libc.so.6 of
# another glibc build, and the pair (glibc's private loader state differs between builds)
# loops forever in the first `pthread_create` — every multi-threaded program hangs.
#
# One-time set-up (Debian 12), as in tools/cross-aarch64.sh:
#   sudo dpkg --add-architecture arm64 && sudo apt-get update
#   sudo apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross libasound2-dev:arm64 qemu-user
#   rustup target add aarch64-unknown-linux-gnu
# Usage: tools/test-aarch64.sh [--no-unit]
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-gnu
# The x86-64 build first, before the cross-build's pkg-config settings.
cargo build -q --locked --release --bin soundsentry
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
cargo build -q --locked --release --target "$target" --bin soundsentry
x86=target/release/soundsentry
arm=target/$target/release/soundsentry
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cases=(
  "models/sitehome-tiny-ast samples/demo-20s.wav"
  "models/sitehome-tiny-ast-int8 samples/demo-20s.wav"
  "tests/fixtures/models/tiny-ast samples/demo-20s.wav"
  "tests/fixtures/models/tiny-beats samples/demo-20s.wav"
  "tests/fixtures/waveform-tiny tests/fixtures/waveform-tiny/scene.wav"
)
fail=0
for c in "${cases[@]}"; do
  read -r model wav <<<"$c"
  name=$(basename "$model")
  "$x86" classify --json --aggregate max -k 1000 --model "$model" "$wav" 2>/dev/null >"$out/$name.x86"
  for cpu in cortex-a72 cortex-a76; do
    qemu-aarch64 -cpu "$cpu" "$arm" classify --json --aggregate max \
      -k 1000 --model "$model" "$wav" 2>/dev/null >"$out/$name.$cpu"
    python3 - "$out/$name.x86" "$out/$name.$cpu" "$name" "$cpu" <<'PY' || fail=1
import json, sys
def scores(path):
    line = json.loads(open(path).read().strip().splitlines()[-1])
    return {t["label"]: t["score"] for t in line["top"]}
a, b = scores(sys.argv[1]), scores(sys.argv[2])
worst = max(abs(a[k] - b[k]) for k in a)
ok = a.keys() == b.keys() and worst <= 1e-4
print(f"{sys.argv[3]:32} {sys.argv[4]:11} {len(a):3} labels, largest difference {worst:.1e}"
      f" {'ok' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
PY
  done
done
# The daemon: every thread of it (source, analysis, inference, output) on the emulated A76.
"$x86" run --config config/demo.toml 2>/dev/null >"$out/run.x86"
qemu-aarch64 -cpu cortex-a76 "$arm" run --config config/demo.toml 2>"$out/run.log" \
  >"$out/run.cortex-a76" || { tail -5 "$out/run.log"; fail=1; }
python3 - "$out/run.x86" "$out/run.cortex-a76" <<'PY' || fail=1
import json, sys
def events(path):
    lines = (json.loads(l) for l in open(path) if l.strip())
    return [l for l in lines if "label" in l and l.get("kind") == "sound"]
a, b = events(sys.argv[1]), events(sys.argv[2])
keys = ("label", "state", "start_offset_s", "end_offset_s", "duration_s")
same = len(a) == len(b) and all([x.get(k) for k in keys] == [y.get(k) for k in keys]
                                for x, y in zip(a, b))
# scores are printed to 4 decimals: one unit of the last digit either way
worst = max((abs(x[k] - y[k]) for x, y in zip(a, b) for k in ("score", "peak_score")
             if x.get(k) is not None), default=0.0)
ok = same and len(a) > 0 and worst <= 1.5e-4
print(f"{'run config/demo.toml':32} {'cortex-a76':11} {len(a):3} event lines, "
      f"{'same' if same else 'DIFFERENT'} events, largest score difference {worst:.1e}"
      f" {'ok' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
PY
if [ "${1:-}" != "--no-unit" ]; then
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -cpu cortex-a76"
  cargo test -q --locked --release --target "$target" --lib || fail=1
fi
exit $fail
