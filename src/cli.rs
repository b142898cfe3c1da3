//! Command-line interface: the subcommands and their arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::classify::Aggregate;

/// soundsentry recognises sounds with audio transformers and reports them as events.
#[derive(Debug, Parser)]
#[command(version, about, propagate_version = true)]
pub struct Cli {
    /// Log level for stderr: error, warn, info, debug, trace (RUST_LOG overrides).
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: stream the configured source through the model, print events.
    Run {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Replay a file source at real-time pace instead of as fast as possible.
        #[arg(long)]
        realtime: bool,
        /// Publish to this MQTT broker (mqtt://HOST[:PORT] or mqtts://...), overriding
        /// `mqtt.url` of the configuration; the other `[mqtt]` keys still apply.
        #[arg(long, value_name = "URL")]
        mqtt: Option<String>,
    },
    /// Classify whole audio files (WAV, FLAC, Ogg/Vorbis) in model-window chunks, streamed
    /// (memory: one window, whatever the file's length).
    Classify {
        /// Audio files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Model folder (with model.toml).
        #[arg(long, short)]
        model: PathBuf,
        /// How chunk scores are combined.
        #[arg(long, value_enum, default_value_t = Aggregate::Mean)]
        aggregate: Aggregate,
        /// Labels to show per file.
        #[arg(long, short = 'k', default_value_t = 5)]
        top_k: usize,
        /// One JSON line per file instead of a table.
        #[arg(long)]
        json: bool,
        /// Threads for the model's matrix products.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        threads: u16,
    },
    /// Write the features of a file as .npy (float32).
    Fbank {
        /// Audio file.
        file: PathBuf,
        /// Model folder whose fbank and normalisation to use.
        #[arg(long, short)]
        model: PathBuf,
        /// Output .npy file.
        #[arg(long, short)]
        out: PathBuf,
        /// Plain log-mel frames of the whole file (frames × mel bins), before padding and
        /// normalisation; without it, the windows exactly as fed to the model
        /// (windows × window_frames × mel bins; for a `dynamic_frames` model, whose last
        /// window is shorter, the windows end to end: frames × mel bins).
        #[arg(long)]
        raw: bool,
    },
    /// Print the sound levels of a recording: one JSON line per interval (LAeq, LCeq, LZeq,
    /// LAFmax, LAFmin, LASmax, LA10, LA90), as `run` reports them.
    Levels {
        /// Audio file (WAV, FLAC, Ogg/Vorbis), at 8 kHz or more.
        file: PathBuf,
        /// Report interval, a whole number of 125 ms blocks (e.g. 125ms, 1s, 1m, 15m).
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        interval: std::time::Duration,
        /// Calibration offset in dB (dBFS → dB SPL), as measured by `calibrate`; without it
        /// levels are in dBFS and reports say `calibrated: false`.
        #[arg(long, allow_hyphen_values = true)]
        offset: Option<f64>,
        /// Sensor id in the reports (default: the file name).
        #[arg(long)]
        sensor: Option<String>,
    },
    /// Measure a sound calibrator (94 dB, 1 kHz) and print the calibration offset for
    /// `[levels] offset_db`: from a recording, or listening to the source of a configuration.
    Calibrate {
        /// A recording of the calibrator on the microphone.
        #[arg(required_unless_present = "config")]
        file: Option<PathBuf>,
        /// Listen to this configuration's source instead of reading a file.
        #[arg(long, short, conflicts_with = "file")]
        config: Option<PathBuf>,
        /// Seconds to listen (with --config).
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// The calibrator's level, dB SPL.
        #[arg(long, default_value_t = 94.0)]
        reference_db: f64,
    },
    /// List the audio input devices (for `[source] kind = "capture"`) with what they support.
    Devices,
    /// Check a configuration file (and the model it names); report every error.
    CheckConfig {
        /// Configuration file (TOML), as a plain argument or, as `run` takes it, `--config F`.
        #[arg(
            required_unless_present = "config_flag",
            conflicts_with = "config_flag"
        )]
        config: Option<PathBuf>,
        /// The same, spelt as `run` takes it.
        #[arg(long = "config", value_name = "CONFIG")]
        config_flag: Option<PathBuf>,
    },
}
