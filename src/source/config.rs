//! The `[source]` table: as written, and validated into a [`SourceConfig`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{RawFormat, RawLayout, Restart};
use crate::config::values::duration;

/// `[source]` as written.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct RawSource {
    pub kind: String,
    pub path: Option<PathBuf>,
    pub realtime: bool,
    pub chunk: String,
    pub command: Vec<String>,
    pub device: Option<String>,
    pub format: Option<String>,
    pub rate: Option<u32>,
    pub channels: Option<u16>,
    pub restart_min: String,
    pub restart_max: String,
}

impl Default for RawSource {
    fn default() -> Self {
        Self {
            kind: "file".into(),
            path: None,
            realtime: false,
            chunk: "100ms".into(),
            command: Vec::new(),
            device: None,
            format: None,
            rate: None,
            channels: None,
            restart_min: "1s".into(),
            restart_max: "60s".into(),
        }
    }
}

/// Audio sources.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    /// A recording replayed as a stream.
    File {
        /// The audio file.
        path: PathBuf,
        /// Replay at real-time pace instead of as fast as possible.
        realtime: bool,
        /// Size of the chunks the file is read in.
        chunk: Duration,
    },
    /// Raw PCM on standard input; the stream ends with it.
    Stdin {
        /// Sample format, rate and channels.
        layout: RawLayout,
        /// Audio per chunk.
        chunk: Duration,
    },
    /// Raw PCM on the standard output of a command (ffmpeg, arecord, ...), started again
    /// whenever it ends.
    Command {
        /// Program and arguments.
        argv: Vec<String>,
        /// Sample format, rate and channels.
        layout: RawLayout,
        /// Audio per chunk.
        chunk: Duration,
        /// Restart delays.
        restart: Restart,
    },
    /// A sound card or USB microphone through ALSA (cpal).
    Capture(crate::capture::CaptureConfig),
}

/// The `[source]` table; errors go to `err` with their key paths. Paths are relative to
/// `base`, the configuration file's folder.
pub(crate) fn validate(
    raw: &RawSource,
    base: &Path,
    err: &mut impl FnMut(&str, String),
) -> SourceConfig {
    let chunk = duration(&raw.chunk, "source.chunk", &mut *err);
    if !(Duration::from_millis(10)..=Duration::from_secs(10)).contains(&chunk) {
        err("source.chunk", "must be from 10ms to 10s".into());
    }
    let raw_layout = |err: &mut dyn FnMut(&str, String)| {
        let format = raw
            .format
            .as_deref()
            .unwrap_or("s16le")
            .parse::<RawFormat>()
            .unwrap_or_else(|e| {
                err("source.format", e);
                RawFormat::S16Le
            });
        let rate = raw.rate.unwrap_or_else(|| {
            err(
                "source.rate",
                "missing: the sample rate of the raw PCM (e.g. 48000)".into(),
            );
            16000
        });
        if !(1000..=768_000).contains(&rate) {
            err("source.rate", format!("{rate} Hz is outside 1000..768000"));
        }
        let channels = raw.channels.unwrap_or(1);
        if channels == 0 {
            err("source.channels", "must be at least 1".into());
        }
        RawLayout {
            format,
            rate,
            channels: channels.max(1),
        }
    };
    // Restart delays of a command, reopening delays of a capture device.
    let restart_delays = |err: &mut dyn FnMut(&str, String)| {
        let r = Restart {
            min: duration(&raw.restart_min, "source.restart_min", err),
            max: duration(&raw.restart_max, "source.restart_max", err),
        };
        if r.min.is_zero() || r.max < r.min {
            err(
                "source.restart_max",
                "need 0 < restart_min <= restart_max".into(),
            );
        }
        r
    };
    let source = match raw.kind.as_str() {
        "file" => {
            let path = raw.path.as_ref().map(|p| base.join(p)).unwrap_or_else(|| {
                err("source.path", "missing: the audio file to replay".into());
                Default::default()
            });
            SourceConfig::File {
                path,
                realtime: raw.realtime,
                chunk,
            }
        }
        "stdin" => SourceConfig::Stdin {
            layout: raw_layout(&mut *err),
            chunk,
        },
        "command" => {
            if raw.command.is_empty() {
                err(
                    "source.command",
                    "missing: the program and its arguments, e.g. [\"arecord\", \"-t\", \"raw\", ...]".into(),
                );
            }
            let restart = restart_delays(&mut *err);
            SourceConfig::Command {
                argv: raw.command.clone(),
                layout: raw_layout(&mut *err),
                chunk,
                restart,
            }
        }
        "capture" => {
            let retry = restart_delays(&mut *err);
            if raw.channels == Some(0) {
                err("source.channels", "must be at least 1".into());
            }
            SourceConfig::Capture(crate::capture::CaptureConfig {
                device: raw.device.clone(),
                rate: raw.rate,
                channels: raw.channels,
                chunk,
                retry,
            })
        }
        other => {
            err(
                "source.kind",
                format!(
                    "unknown source {other:?} (supported: \"file\", \"stdin\", \"command\", \"capture\")"
                ),
            );
            SourceConfig::File {
                path: Default::default(),
                realtime: false,
                chunk: Duration::from_millis(100),
            }
        }
    };
    source
}
