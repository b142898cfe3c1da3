//! Configuration: raw TOML structs → a pure `validate` that returns domain types or every error.

mod machine;
mod raw;
mod validate;
pub(crate) mod values;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::levels::config::plausible_offset;
pub use crate::source::SourceConfig;
pub use validate::resolve_watches;
pub use values::max_threads;

use crate::detect::WatchSettings;

/// Every problem found in a configuration, each with its key path.
#[derive(Debug, thiserror::Error)]
#[error("{}", format_errors(.file, .errors))]
pub struct ConfigError {
    /// The configuration file.
    pub file: PathBuf,
    /// `(key path, message)` pairs.
    pub errors: Vec<(String, String)>,
}

fn format_errors(file: &Path, errors: &[(String, String)]) -> String {
    let n = errors.len();
    let mut s = format!(
        "{}: {n} error{}",
        file.display(),
        if n == 1 { "" } else { "s" }
    );
    for (key, msg) in errors {
        s.push_str(&format!("\n  {key}: {msg}"));
    }
    s
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Sensor id in events (default: the host name).
    pub sensor_id: String,
    /// The model folder and how it runs (`[model]`).
    pub model: crate::model::ModelConfig,
    /// Which CPU kernels may run (`model.kernels`); absent: `SOUNDSENTRY_KERNELS` or auto.
    pub kernels: Option<crate::model::Kernels>,
    /// Where audio comes from.
    pub source: SourceConfig,
    /// Time between windows.
    pub hop: Duration,
    /// Detection defaults and watched labels.
    pub detect: DetectConfig,
    /// Outputs.
    pub output: OutputConfig,
    /// MQTT publishing (`[mqtt]`); on when a broker URL is set.
    pub mqtt: crate::mqtt::MqttSettings,
    /// Sound levels and limits (`[levels]`).
    pub levels: crate::levels::LevelsConfig,
    /// The web page, JSON API and metrics (`[http]`); on when `listen` is set.
    pub http: crate::web::HttpSettings,
    /// Event clips (`[clips]`); on when `dir` is set.
    pub clips: crate::recorder::ClipsSettings,
    /// What speech withholds (`[privacy]`).
    pub privacy: crate::recorder::PrivacySettings,
    /// The local history (`[history]`); on when `path` is set.
    pub history: crate::archive::HistorySettings,
}

/// The `[detect]` table, validated; label names are resolved against the model later.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectConfig {
    /// Settings for labels without their own.
    pub defaults: WatchSettings,
    /// Whether `[detect]` sets `on` and `off` itself (else a label's model threshold, if the
    /// model has one, is its `on`).
    pub defaults_set: OnOffSet,
    /// Watched labels or groups; empty means every model label with the defaults.
    pub watch: Vec<WatchSpec>,
    /// `[[detect.level]]`: events from levels held above a threshold.
    pub level: Vec<crate::levels::trigger::LevelTrigger>,
}

/// One `[[detect.watch]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchSpec {
    /// Event label.
    pub name: String,
    /// Model label names in the group.
    pub labels: Vec<String>,
    /// Thresholds and timings.
    pub settings: WatchSettings,
    /// Whether this watch or `[detect]` sets `on` and `off`.
    pub set: OnOffSet,
    /// Hours and days it applies (`hours`, `days`); `None`: always.
    pub schedule: Option<crate::detect::Schedule>,
}

/// Which of `on` and `off` a configuration sets (rather than leaving them to defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OnOffSet {
    /// `on` is set.
    pub on: bool,
    /// `off` is set.
    pub off: bool,
}

/// The `[output]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputConfig {
    /// Print events as JSON lines on stdout.
    pub stdout: bool,
    /// Also print the top scores of every window (JSON lines with `"type": "scores"`).
    pub scores: bool,
    /// How many labels a scores line holds.
    pub top_k: usize,
}

impl Config {
    /// Reads, parses and validates a configuration file. Relative paths inside it are
    /// relative to the file's folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with(path, &Overrides::default())
    }

    /// [`Config::load`] with the command line's overrides applied to the file's values
    /// before they are validated, so every rule holds for them too.
    pub fn load_with(path: &Path, overrides: &Overrides) -> Result<Self, ConfigError> {
        let one = |key: &str, msg: String| ConfigError {
            file: path.to_owned(),
            errors: vec![(key.to_owned(), msg)],
        };
        let text = std::fs::read_to_string(path).map_err(|e| one("(file)", e.to_string()))?;
        Self::parse_with(&text, path, overrides)
    }

    /// Parses and validates configuration text; `path` names it and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        Self::parse_with(text, path, &Overrides::default())
    }

    /// [`Config::parse`] with the command line's overrides.
    pub fn parse_with(text: &str, path: &Path, overrides: &Overrides) -> Result<Self, ConfigError> {
        let base = path.parent().unwrap_or(Path::new("."));
        let errors = match raw::parse(text) {
            Ok((raw, mut errors)) => {
                let (mut cfg, unread, invalid) = validate::validate(overrides.apply(raw), base);
                errors.extend(invalid);
                let mut err = |k: &str, m: String| errors.push((k.to_owned(), m));
                machine::read(&mut cfg, &unread, &mut err);
                if errors.is_empty() {
                    return Ok(cfg);
                }
                errors
            }
            Err(errors) => errors,
        };
        let errors = errors
            .into_iter()
            .map(|(key, msg)| (overrides.name(key), msg))
            .collect();
        Err(ConfigError {
            file: path.to_owned(),
            errors,
        })
    }
}

/// What the command line says instead of the file (`run --mqtt URL`, `run --realtime`),
/// applied to the raw values before validation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `--mqtt URL`: this broker, whatever `mqtt.url` says; the other `[mqtt]` keys apply.
    pub mqtt: Option<String>,
    /// `--realtime`: a file source is replayed at real-time pace.
    pub realtime: bool,
}

impl Overrides {
    fn apply(&self, mut raw: raw::Raw) -> raw::Raw {
        if let Some(url) = &self.mqtt {
            raw.mqtt.url = Some(url.clone());
        }
        if self.realtime {
            raw.source.realtime = true;
        }
        raw
    }

    /// An error's key, naming the option where the value came from the command line.
    fn name(&self, key: String) -> String {
        match (key.as_str(), &self.mqtt) {
            ("mqtt.url", Some(url)) => format!("--mqtt {url}"),
            _ => key,
        }
    }
}
