#!/usr/bin/env bash
# Runs the unit tests of the attention, int8 (dequantisation) and normalisation ops — and the
# int8 kernel test against tract — as aarch64 code under qemu-user, for the CPUs of the boards
# users own: a Cortex-A72 (Raspberry Pi 4: NEON, no dot product) and a Cortex-A76 (Raspberry
# Pi 5: NEON with SDOT/UDOT). tract-linalg picks its kernels from what the (emulated) CPU
# reports, so each CPU runs its own int8 and f32 paths.
#
# One-time set-up (Debian 12), as in tools/cross-aarch64.sh:
#   sudo dpkg --add-architecture arm64 && sudo apt-get update
#   sudo apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross libasound2-dev:arm64 qemu-user
#   rustup target add aarch64-unknown-linux-gnu
# Usage: tools/test-aarch64.sh [EXTRA TEST FILTER]
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-gnu
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
filters=(model::ops model::kernels features blocks ${1:+"$1"})
for cpu in cortex-a72 cortex-a76; do
  echo "== $cpu"
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -cpu $cpu -L /usr/aarch64-linux-gnu" \
    cargo test --locked --release --target "$target" --lib -- "${filters[@]}"
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -cpu $cpu -L /usr/aarch64-linux-gnu" \
    cargo test --locked --release --target "$target" --test integration -- int8_kernel kernels waveform::a_waveform
done
