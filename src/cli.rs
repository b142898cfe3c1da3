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
    /// Classify whole audio files (WAV, FLAC, Ogg/Vorbis) in model-window chunks.
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
        /// (windows × window_frames × mel bins).
        #[arg(long)]
        raw: bool,
    },
    /// List the audio input devices (for `[source] kind = "capture"`) with what they support.
    Devices,
    /// Check a configuration file (and the model it names); report every error.
    CheckConfig {
        /// Configuration file (TOML).
        config: PathBuf,
    },
}
