#!/usr/bin/env bash
# Cross-builds soundsentry for 64-bit ARM boards (Raspberry Pi 4/5 with a 64-bit OS) on a
# Debian x86-64 machine, then checks the binary under qemu-user: `--version` and `classify` of
# the sample with the bundled model.
#
# One-time set-up (Debian 12):
#   sudo dpkg --add-architecture arm64 && sudo apt-get update
#   sudo apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross libasound2-dev:arm64 qemu-user
#   rustup target add aarch64-unknown-linux-gnu
# Usage: tools/cross-aarch64.sh            (binary: target/aarch64-unknown-linux-gnu/release/soundsentry)
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-gnu
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# alsa-sys finds the arm64 libasound through pkg-config.
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
cargo build --locked --release --target "$target" --bin soundsentry
bin="target/$target/release/soundsentry"
file "$bin" 2>/dev/null || true
# cortex-a72: the Raspberry Pi 4 CPU (NEON, no SVE; qemu emulates SVE very slowly).
qemu-aarch64 -cpu cortex-a72 "$bin" --version
qemu-aarch64 -cpu cortex-a72 "$bin" classify samples/demo-20s.wav --model models/sitehome-tiny-ast -k 3
