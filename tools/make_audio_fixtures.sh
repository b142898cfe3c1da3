#!/usr/bin/env bash
# Writes the small audio files the decoder tests read (tests/fixtures/audio), with sox.
# One signal (a 440 Hz sine, 0.5 s, amplitude 0.4) in every supported encoding,
# plus broken files. Needs: apt-get install sox libsox-fmt-all
set -euo pipefail
out=${1:-tests/fixtures/audio}
mkdir -p "$out"
cd "$out"
rm -f ./*.wav ./*.flac ./*.ogg ./*.txt ./*.mp3
sox -n -r 16000 -c 1 -b 16 -e signed-integer tone-16k-s16.wav synth 0.5 sine 440 vol 0.4
sox -n -r 16000 -c 1 -b 8 -e unsigned-integer tone-16k-u8.wav synth 0.5 sine 440 vol 0.4
sox -n -r 16000 -c 1 -b 24 -e signed-integer tone-16k-s24.wav synth 0.5 sine 440 vol 0.4
sox -n -r 16000 -c 1 -b 32 -e signed-integer tone-16k-s32.wav synth 0.5 sine 440 vol 0.4
sox -n -r 16000 -c 1 -b 32 -e floating-point tone-16k-f32.wav synth 0.5 sine 440 vol 0.4
sox -n -r 16000 -c 1 -b 16 tone-16k.flac synth 0.5 sine 440 vol 0.4
sox -n -r 16000 -c 1 -C 6 tone-16k.ogg synth 0.5 sine 440 vol 0.4
# Multi-channel at other rates: the same tone on every channel.
sox -n -r 48000 -c 2 -b 16 -e signed-integer tone-48k-stereo.wav synth 0.5 sine 440 vol 0.4
sox -n -r 44100 -c 6 -b 24 tone-44k1-6ch.flac synth 0.5 sine 440 vol 0.4
sox -n -r 22050 -c 2 -C 4 tone-22k05-stereo.ogg synth 0.5 sine 440 vol 0.4
# Broken inputs.
: > empty.wav
head -c 3000 /dev/urandom > corrupt.wav
head -c 9000 tone-16k-s16.wav > truncated.wav
head -c 2500 tone-16k.flac > truncated.flac
sox -n -r 16000 -c 1 -b 16 no-samples.wav trim 0 0
sox -n -r 16000 -c 1 -b 16 too-short.wav synth 0.02 sine 440 vol 0.4
echo "this is not audio" > not-audio.txt
ls -l
