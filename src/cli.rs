//! Command-line interface: the subcommands and their arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    Run(RunArgs),
    /// Classify whole audio files (WAV, FLAC, Ogg/Vorbis) in model-window chunks, streamed
    /// (memory: one window, whatever the file's length).
    Classify(ClassifyArgs),
    /// Write the features of a file as .npy (float32).
    Fbank(FbankArgs),
    /// Write the model's embeddings of audio files or folders: one vector per window and one
    /// per file (the mean over its windows), as .npy (float32) with CSV indexes.
    Embed(EmbedArgs),
    /// Train a classifier head on a model's embeddings of your labelled clips, and write a new
    /// model folder with your labels (and per-label thresholds chosen by cross-validation).
    TrainHead(TrainHeadArgs),
    /// Evaluate a model on labelled clips: AP, ROC-AUC, PR-AUC, F1, mAP, with plots (JSON,
    /// HTML and PNG), for four ways of combining a file's windows.
    Eval(EvalArgs),
    /// Print the sound levels of a recording: one JSON line per interval (LAeq, LCeq, LZeq,
    /// LAFmax, LAFmin, LASmax, LA10, LA90), as `run` reports them.
    Levels(LevelsArgs),
    /// Daily noise reports (HTML with charts, CSV tables) from the history (`[history]`), a
    /// daemon's JSON lines, or a recording.
    Report(ReportArgs),
    /// Measure a sound calibrator (94 dB, 1 kHz) and print the calibration offset for
    /// `[levels] offset_db`: from a recording, or listening to the source of a configuration.
    Calibrate(CalibrateArgs),
    /// List the audio input devices (for `[source] kind = "capture"`) with what they support.
    Devices,
    /// Check a configuration file (and the model it names); report every error.
    CheckConfig(CheckConfigArgs),
}

/// The arguments of `soundsentry run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Configuration file (TOML).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Replay a file source at real-time pace instead of as fast as possible.
    #[arg(long)]
    pub realtime: bool,
    /// Publish to this MQTT broker (mqtt://HOST[:PORT] or mqtts://...), overriding
    /// `mqtt.url` of the configuration; the other `[mqtt]` keys still apply.
    #[arg(long, value_name = "URL")]
    pub mqtt: Option<String>,
}

/// The arguments of `soundsentry classify`.
#[derive(Debug, Clone, Args)]
pub struct ClassifyArgs {
    /// Audio files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Model folder (with model.toml).
    #[arg(long, short)]
    pub model: PathBuf,
    /// How chunk scores are combined.
    #[arg(long, value_enum, default_value_t = Aggregate::Mean)]
    pub aggregate: Aggregate,
    /// Labels to show per file.
    #[arg(long, short = 'k', default_value_t = 5)]
    pub top_k: usize,
    /// One JSON line per file instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Threads for the model's matrix products.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,
}

/// The arguments of `soundsentry fbank`.
#[derive(Debug, Clone, Args)]
pub struct FbankArgs {
    /// Audio file.
    pub file: PathBuf,
    /// Model folder whose fbank and normalisation to use.
    #[arg(long, short)]
    pub model: PathBuf,
    /// Output .npy file.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Plain log-mel frames of the whole file (frames × mel bins), before padding and
    /// normalisation; without it, the windows exactly as fed to the model
    /// (windows × window_frames × mel bins; for a `dynamic_frames` model, whose last
    /// window is shorter, the windows end to end: frames × mel bins).
    #[arg(long)]
    pub raw: bool,
}

/// The arguments of `soundsentry embed`.
#[derive(Debug, Clone, Args)]
pub struct EmbedArgs {
    /// Audio files, or folders whose audio files (.wav, .flac, .ogg, .oga, recursively) are
    /// taken in path order.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Model folder (with model.toml naming an `embedding` output).
    #[arg(long, short)]
    pub model: PathBuf,
    /// Output: F.npy gets one row per window, F.csv its index (row, file, start_s, end_s),
    /// F.files.npy one row per file (the mean of its windows), F.files.csv their index.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Also draw a 2-D map of the files' embeddings into this picture (.png or .svg).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// How the map is made: t-SNE (neighbourhoods kept) or PCA (the two directions of most
    /// spread; fast, and works for a handful of files).
    #[arg(long = "map", value_enum, default_value_t = MapMethod::Tsne)]
    pub map: MapMethod,
    /// t-SNE's perplexity (about the number of neighbours each point keeps); default 30, or
    /// the most the number of files allows ((files - 1) / 3).
    #[arg(long)]
    pub perplexity: Option<f64>,
    /// Colour the map by the labels of these clips (a CSV `file,labels` or a folder of label
    /// folders, as for train-head); clips with several labels are left grey and counted.
    #[arg(long, value_name = "CSV|DIR")]
    pub labels: Option<PathBuf>,
    /// Threads for the model's matrix products.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,
}

/// How `embed --plot` brings embeddings down to two dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MapMethod {
    /// t-SNE (Barnes-Hut).
    Tsne,
    /// Principal component analysis.
    Pca,
}

/// The arguments of `soundsentry train-head`.
#[derive(Debug, Clone, Args)]
pub struct TrainHeadArgs {
    /// Labelled clips: a CSV with columns `file,labels` (paths relative to the CSV, labels
    /// separated by `;`, empty for a background clip), or a folder with one folder per label
    /// and an optional `background/`.
    #[arg(long, short)]
    pub data: PathBuf,
    /// The base model folder (with an embedding output).
    #[arg(long, short)]
    pub model: PathBuf,
    /// The new model folder (must not exist, unless --force).
    #[arg(long, short)]
    pub out: PathBuf,
    /// The new model's name; default: the out folder's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Keep the base model's labels (and thresholds) before the new ones.
    #[arg(long)]
    pub keep_base_labels: bool,
    /// Units of a hidden layer (ReLU) between the embedding and the outputs; 0: none
    /// (logistic regression per label).
    #[arg(long, default_value_t = 0)]
    pub hidden: usize,
    /// L2 penalty on the weights.
    #[arg(long, default_value_t = 0.01)]
    pub l2: f32,
    /// Full-batch training steps.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub epochs: u32,
    /// Folds of the cross-validation whose figures are printed and whose out-of-fold scores
    /// choose the thresholds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=50))]
    pub folds: u32,
    /// Choose each threshold as the lowest reaching this precision (0..1) in the
    /// cross-validation, instead of the best F1.
    #[arg(long)]
    pub target_precision: Option<f64>,
    /// Replace the out folder if it exists.
    #[arg(long)]
    pub force: bool,
    /// Threads for the model's matrix products.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,
}

/// The arguments of `soundsentry eval`.
#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// Labelled clips, as for `train-head` (a CSV or a folder of label folders). The labels
    /// must be the model's.
    #[arg(long, short)]
    pub data: PathBuf,
    /// Model folder.
    #[arg(long, short)]
    pub model: PathBuf,
    /// Report folder: report.json, index.html and the PNG plots.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// The aggregation whose figures are printed per label and --suggest-detect uses (all
    /// four are in report.json). Default max: a clip has a sound where one of its windows
    /// reaches the label's threshold, as `run` decides.
    #[arg(long, value_enum, default_value_t = Aggregate::Max)]
    pub aggregate: Aggregate,
    /// Decision threshold for labels without one of their own (model.toml [thresholds]).
    #[arg(long, default_value_t = 0.5)]
    pub on: f64,
    /// Print a `[detect]` snippet with the best-F1 thresholds found here.
    #[arg(long)]
    pub suggest_detect: bool,
    /// Threads for the model's matrix products.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,
}

/// The arguments of `soundsentry levels`.
#[derive(Debug, Clone, Args)]
pub struct LevelsArgs {
    /// Audio file (WAV, FLAC, Ogg/Vorbis), at 8 kHz or more.
    pub file: PathBuf,
    /// Report interval, a whole number of 125 ms blocks (e.g. 125ms, 1s, 1m, 15m).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: std::time::Duration,
    /// Calibration offset in dB (dBFS → dB SPL), as measured by `calibrate`; without it
    /// levels are in dBFS and reports say `calibrated: false`.
    #[arg(long, allow_hyphen_values = true)]
    pub offset: Option<f64>,
    /// Sensor id in the reports (default: the file name).
    #[arg(long)]
    pub sensor: Option<String>,
    /// Band levels in each report (`"bands"`): `octave` or `third` (IEC 61260-1 class 1
    /// filters, base-10 mid-band frequencies up to the Nyquist frequency).
    #[arg(long, value_parser = clap::value_parser!(BandScaleArg))]
    pub bands: Option<BandScaleArg>,
    /// Weighting of the band levels: Z (as filtered) or A (corrected at each mid-band
    /// frequency).
    #[arg(long, default_value = "Z", requires = "bands")]
    pub bands_weighting: String,
}

/// `--bands`: octave or third.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BandScaleArg {
    /// Octave bands.
    Octave,
    /// One-third-octave bands.
    Third,
}

/// The arguments of `soundsentry report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The daemon's configuration: its `[history]` file, time zone, limits and periods.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// A history file to read instead of the configuration's `[history] path`.
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Read the daemon's JSON lines (its stdout: level reports and events) from this file
    /// instead of a history.
    #[arg(long, conflicts_with_all = ["history", "file"])]
    pub lines: Option<PathBuf>,
    /// Analyse this recording (with the configuration's model and levels) and report it; its
    /// history is kept in OUT/history.sqlite.
    #[arg(long, conflicts_with = "history", requires = "config")]
    pub file: Option<PathBuf>,
    /// With --file: when the recording began (RFC 3339, e.g. 2026-12-01T07:00:00+01:00);
    /// default: now.
    #[arg(long, requires = "file")]
    pub start: Option<String>,
    /// First day: YYYY-MM-DD, `today`, `yesterday` or `-Nd` (N days before today); default:
    /// the first day of the data for --lines and --file, else yesterday.
    #[arg(long, allow_hyphen_values = true)]
    pub from: Option<String>,
    /// Last day (same forms); default: the last day of the data for --lines and --file, else
    /// the --from day (or yesterday).
    #[arg(long, allow_hyphen_values = true)]
    pub to: Option<String>,
    /// Where the reports go: a folder per day and index.html.
    #[arg(long)]
    pub out: PathBuf,
}

/// The arguments of `soundsentry calibrate`.
#[derive(Debug, Clone, Args)]
pub struct CalibrateArgs {
    /// A recording of the calibrator on the microphone.
    #[arg(required_unless_present = "config")]
    pub file: Option<PathBuf>,
    /// Listen to this configuration's source instead of reading a file.
    #[arg(long, short, conflicts_with = "file")]
    pub config: Option<PathBuf>,
    /// Seconds to listen (with --config).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// The calibrator's level, dB SPL.
    #[arg(long, default_value_t = 94.0)]
    pub reference_db: f64,
}

/// The arguments of `soundsentry check-config`.
#[derive(Debug, Clone, Args)]
pub struct CheckConfigArgs {
    /// Configuration file (TOML), as a plain argument or, as `run` takes it, `--config F`.
    #[arg(
        required_unless_present = "config_flag",
        conflicts_with = "config_flag"
    )]
    pub config: Option<PathBuf>,
    /// The same, spelt as `run` takes it.
    #[arg(long = "config", value_name = "CONFIG")]
    pub config_flag: Option<PathBuf>,
}
