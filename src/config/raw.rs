//! The configuration file as written: serde structs with defaults, unknown keys collected.

use serde::Deserialize;

/// `(key path, message)` pairs.
pub type Errors = Vec<(String, String)>;

/// The whole file.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct Raw {
    pub sensor_id: Option<String>,
    pub model: crate::model::config::RawModel,
    pub source: crate::source::config::RawSource,
    pub analysis: RawAnalysis,
    pub detect: RawDetect,
    pub output: RawOutput,
    pub mqtt: crate::mqtt::config::RawMqtt,
    pub levels: crate::levels::config::RawLevels,
    pub http: crate::web::config::RawHttp,
    pub clips: crate::recorder::config::RawClips,
    pub privacy: crate::recorder::config::RawPrivacy,
    pub history: crate::archive::config::RawHistory,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct RawAnalysis {
    pub hop: String,
}

impl Default for RawAnalysis {
    fn default() -> Self {
        Self { hop: "1s".into() }
    }
}

/// Thresholds and timings; in `[detect]` they are the defaults, in a watch they override.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(default)]
pub struct RawSettings {
    pub on: Option<f32>,
    pub off: Option<f32>,
    pub min_duration: Option<String>,
    pub hold: Option<String>,
    pub update_interval: Option<String>,
}

// The settings fields are repeated rather than flattened: serde's flatten would swallow
// unknown keys, and a typo like `of = 0.2` must be reported.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct RawDetect {
    pub on: Option<f32>,
    pub off: Option<f32>,
    pub min_duration: Option<String>,
    pub hold: Option<String>,
    pub update_interval: Option<String>,
    pub watch: Vec<RawWatch>,
    pub level: Vec<RawLevelTrigger>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct RawWatch {
    pub name: Option<String>,
    pub labels: Vec<String>,
    pub on: Option<f32>,
    pub off: Option<f32>,
    pub min_duration: Option<String>,
    pub hold: Option<String>,
    pub update_interval: Option<String>,
    pub hours: Option<String>,
    pub days: Option<String>,
}

/// One `[[detect.level]]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct RawLevelTrigger {
    pub name: Option<String>,
    pub metric: Option<String>,
    pub threshold_db: Option<f64>,
    pub min_duration: Option<String>,
    pub hold: Option<String>,
    pub update_interval: Option<String>,
}

impl RawDetect {
    /// The default settings of `[detect]`.
    pub fn settings(&self) -> RawSettings {
        RawSettings {
            on: self.on,
            off: self.off,
            min_duration: self.min_duration.clone(),
            hold: self.hold.clone(),
            update_interval: self.update_interval.clone(),
        }
    }
}

impl RawWatch {
    /// The settings this watch overrides.
    pub fn settings(&self) -> RawSettings {
        RawSettings {
            on: self.on,
            off: self.off,
            min_duration: self.min_duration.clone(),
            hold: self.hold.clone(),
            update_interval: self.update_interval.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct RawOutput {
    pub stdout: bool,
    pub scores: bool,
    pub top_k: usize,
}

impl Default for RawOutput {
    fn default() -> Self {
        Self {
            stdout: true,
            scores: false,
            top_k: 5,
        }
    }
}

/// Parses TOML into [`Raw`] and the list of unknown keys (as errors), or fails with the
/// unknown keys and the first type error with its key path (serde stops at the first one).
pub fn parse(text: &str) -> Result<(Raw, Errors), Errors> {
    let value: toml::Value = toml::from_str(text).map_err(|e| {
        vec![(
            "(syntax)".to_owned(),
            e.message().to_owned() + &at(&e, text),
        )]
    })?;
    let mut unknown = Vec::new();
    let mut note = |path: serde_ignored::Path| unknown.push(path.to_string());
    let de = serde_ignored::Deserializer::new(value, &mut note);
    let raw: Result<Raw, _> = serde_path_to_error::deserialize(de);
    let mut errors: Errors = unknown
        .into_iter()
        .map(|k| (k, "unknown key".to_owned()))
        .collect();
    match raw {
        Ok(raw) => Ok((raw, errors)),
        Err(e) => {
            errors.push((e.path().to_string(), e.inner().to_string()));
            Err(errors)
        }
    }
}

/// " (line L)" for a TOML syntax error.
fn at(e: &toml::de::Error, text: &str) -> String {
    e.span()
        .map(|s| format!(" (line {})", text[..s.start].lines().count().max(1)))
        .unwrap_or_default()
}
