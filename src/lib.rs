//! soundsentry: recognises sounds with audio transformers and reports them as events.
//!
//! # Layout
//! The data path, in order: [`source`] (a file or a command's output as chunks) or
//! [`capture`] (a microphone) → [`audio`] (decode, mono, resample) → [`analysis`] (resample →
//! [`features`] fbank → [`window`] of frames → model input) → [`model`] (tract; its own ops in
//! `model::ops`) → [`detect`] (scores → events) → [`mqtt`] and stdout; beside it, [`levels`]
//! (sound levels and limits). [`pipeline`] runs them on threads.
//!
//! - [`aggregate`]: a file's window scores as one score per label (mean, max, vote, weighted).
//! - [`analysis`]: one stream's chain from samples to prepared model windows.
//! - [`audio`]: decoding WAV/FLAC/Ogg, downmixing and resampling.
//! - [`capture`]: microphone capture through cpal (ALSA), with reconnection.
//! - [`classify`]: offline classification of files (the `classify` command).
//! - [`cli`]: the command line's subcommands and arguments.
//! - [`clips`]: labelled clips (a CSV or label folders) and their cached embeddings.
//! - [`commands`]: each subcommand's work, behind the thin `main`.
//! - [`config`]: raw TOML → validated domain types, every error at once.
//! - [`detect`]: per-label hysteresis and hold, start/update/end events.
//! - [`embed`]: a model's embeddings of audio files (the `embed` command).
//! - [`eval`]: evaluation on labelled clips (AP, ROC-AUC, PR-AUC, F1).
//! - [`features`]: incremental Kaldi fbank, equal to torchaudio's.
//! - [`head`]: a classifier trained on a model's embedding (the `train-head` command).
//! - [`format`]: label slugs, RFC 3339 stamps, rounding, top scores as written.
//! - [`levels`]: A/C/Z and F/S weighting, Leq and percentiles, limits and their events.
//! - [`memory`]: keeps the resident set near the model's size.
//! - [`model`]: model folders (manifest, labels, ONNX) loaded and run by tract.
//! - [`mqtt`]: publishing through a durable outbox, Home Assistant discovery, status.
//! - [`noise`]: a small deterministic noise generator for tests, benches and probes.
//! - [`notify`]: systemd readiness, status and watchdog notifications.
//! - [`npy`]: float32 `.npy` files written row by row.
//! - [`pipeline`]: the threads and bounded queues of `run`, and their shutdown.
//! - [`plot`]: charts as PNG or SVG (embedding maps, evaluation curves and bars).
//! - [`recorder`]: event clips with pre- and post-roll, retention, and the privacy rule.
//! - [`source`]: audio sources (file, command) as streams of mono chunks.
//! - [`stats`]: the daemon's counters (windows, events, inference times, source health).
//! - [`web`]: the local web page, JSON API, live stream and Prometheus metrics.
//! - [`window`]: the rolling window over fbank frames.

pub mod aggregate;
pub mod analysis;
pub mod archive;
pub mod audio;
pub mod capture;
pub mod classify;
pub mod cli;
pub mod clips;
pub mod commands;
pub mod config;
pub mod detect;
pub mod embed;
pub mod eval;
pub mod features;
pub mod format;
pub mod head;
pub mod levels;
pub mod memory;
pub mod model;
pub mod mqtt;
pub mod noise;
pub mod notify;
pub mod npy;
pub mod pipeline;
pub mod plot;
pub mod recorder;
pub mod report;
pub mod source;
pub mod stats;
pub mod web;
pub mod window;
