//! The `[clips]` and `[privacy]` tables: which events keep a recording, how much before and
//! after, how much disk the clips may take, and what speech withholds or mutes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::values::duration;

/// `[clips]` as written.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct RawClips {
    pub dir: Option<PathBuf>,
    pub labels: Vec<String>,
    pub limits: bool,
    pub pre_roll: String,
    pub post_roll: String,
    pub max_length: String,
    pub max_count: u64,
    pub max_total_mb: u64,
    pub max_age: String,
}

impl Default for RawClips {
    fn default() -> Self {
        Self {
            dir: None,
            labels: Vec::new(),
            limits: false,
            pre_roll: "3s".into(),
            post_roll: "3s".into(),
            max_length: "30s".into(),
            max_count: 1000,
            max_total_mb: 1024,
            max_age: "30d".into(),
        }
    }
}

/// `[privacy]` as written.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct RawPrivacy {
    pub labels: Option<Vec<String>>,
    pub threshold: f32,
    pub clips: String,
    pub publish: bool,
}

impl Default for RawPrivacy {
    fn default() -> Self {
        Self {
            labels: None,
            threshold: 0.1,
            clips: "withhold".into(),
            publish: true,
        }
    }
}

/// The validated `[clips]` table; on when `dir` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipsSettings {
    /// Where clips are written.
    pub dir: Option<PathBuf>,
    /// Watches (event labels) whose events keep a clip; `*` for all.
    pub labels: Vec<String>,
    /// Limit events keep a clip too.
    pub limits: bool,
    /// Audio kept before an event's start.
    pub pre_roll: Duration,
    /// Audio kept after its end.
    pub post_roll: Duration,
    /// The longest clip (an event longer is cut at its start + this).
    pub max_length: Duration,
    /// Clips kept at most (the oldest go first).
    pub max_count: u64,
    /// Bytes of clips kept at most.
    pub max_total_bytes: u64,
    /// Clips older than this go.
    pub max_age: Duration,
}

/// What speech does to clips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeechInClips {
    /// A clip with speech in it is not stored.
    Withhold,
    /// The seconds with speech are silenced; the rest is stored.
    Mute,
}

/// The validated `[privacy]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct PrivacySettings {
    /// Labels that mean someone speaks; `None`: Speech and its AudioSet family, those the
    /// model has.
    pub labels: Option<Vec<String>>,
    /// A window scoring this or more on one of them has speech.
    pub threshold: f32,
    /// Withhold or mute.
    pub clips: SpeechInClips,
    /// Whether events of those labels are published at all.
    pub publish: bool,
}

/// AudioSet's speech family: the default `[privacy] labels` (those the model has).
pub const SPEECH_FAMILY: [&str; 12] = [
    "Speech",
    "Male speech, man speaking",
    "Female speech, woman speaking",
    "Child speech, kid speaking",
    "Conversation",
    "Narration, monologue",
    "Babbling",
    "Whispering",
    "Shout",
    "Yell",
    "Children shouting",
    "Chatter",
];

/// Checks `[clips]`; a relative `dir` is taken from `base`.
pub(crate) fn validate_clips(
    raw: &RawClips,
    base: &Path,
    err: &mut impl FnMut(&str, String),
) -> ClipsSettings {
    let mut d = |v: &str, key: &str| duration(v, key, &mut *err);
    let s = ClipsSettings {
        dir: raw.dir.as_ref().map(|d| base.join(d)),
        labels: raw.labels.clone(),
        limits: raw.limits,
        pre_roll: d(&raw.pre_roll, "clips.pre_roll"),
        post_roll: d(&raw.post_roll, "clips.post_roll"),
        max_length: d(&raw.max_length, "clips.max_length"),
        max_count: raw.max_count,
        max_total_bytes: raw.max_total_mb.saturating_mul(1 << 20),
        max_age: d(&raw.max_age, "clips.max_age"),
    };
    for (key, v) in [("pre_roll", s.pre_roll), ("post_roll", s.post_roll)] {
        if v > Duration::from_secs(60) {
            err(&format!("clips.{key}"), "must be at most 1m".into());
        }
    }
    if s.max_length < Duration::from_secs(1) || s.max_length > Duration::from_secs(600) {
        err("clips.max_length", "must be from 1s to 10m".into());
    }
    if s.max_count == 0 {
        err("clips.max_count", "must be at least 1".into());
    }
    if raw.max_total_mb == 0 {
        err("clips.max_total_mb", "must be at least 1".into());
    }
    if s.max_age.is_zero() {
        err("clips.max_age", "must be > 0".into());
    }
    if s.dir.is_some() && s.labels.is_empty() && !s.limits {
        err(
            "clips.labels",
            "name the watches whose events keep a clip (or \"*\"), or set clips.limits = true"
                .into(),
        );
    }
    if s.dir.is_none() && (!s.labels.is_empty() || s.limits) {
        err(
            "clips.dir",
            "missing: the folder clips are written to".into(),
        );
    }
    s
}

/// Checks `[privacy]`.
pub(crate) fn validate_privacy(
    raw: &RawPrivacy,
    err: &mut impl FnMut(&str, String),
) -> PrivacySettings {
    if !(raw.threshold > 0.0 && raw.threshold < 1.0) {
        err(
            "privacy.threshold",
            format!("{} must lie strictly between 0 and 1", raw.threshold),
        );
    }
    let clips = match raw.clips.as_str() {
        "withhold" => SpeechInClips::Withhold,
        "mute" => SpeechInClips::Mute,
        other => {
            err(
                "privacy.clips",
                format!("{other:?}: must be \"withhold\" or \"mute\""),
            );
            SpeechInClips::Withhold
        }
    };
    if raw.labels.as_ref().is_some_and(Vec::is_empty) {
        err(
            "privacy.labels",
            "must name at least one label (leave it out for the speech family)".into(),
        );
    }
    PrivacySettings {
        labels: raw.labels.clone(),
        threshold: raw.threshold,
        clips,
        publish: raw.publish,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_need_a_folder_and_something_to_keep() {
        let mut errs = Vec::new();
        let raw = RawClips {
            labels: vec!["Dog".into()],
            pre_roll: "2m".into(),
            ..Default::default()
        };
        validate_clips(&raw, Path::new("/b"), &mut |k: &str, m| {
            errs.push((k.to_owned(), m))
        });
        let keys: Vec<&str> = errs.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(keys, ["clips.pre_roll", "clips.dir"], "{errs:?}");
        errs.clear();
        let raw = RawClips {
            dir: Some("clips".into()),
            ..Default::default()
        };
        let s = validate_clips(&raw, Path::new("/b"), &mut |k: &str, m| {
            errs.push((k.to_owned(), m))
        });
        assert_eq!(errs[0].0, "clips.labels");
        assert_eq!(s.dir.as_deref(), Some(Path::new("/b/clips")));
        errs.clear();
        let p = validate_privacy(
            &RawPrivacy {
                clips: "blur".into(),
                threshold: 1.5,
                ..Default::default()
            },
            &mut |k: &str, m| errs.push((k.to_owned(), m)),
        );
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(p.clips, SpeechInClips::Withhold);
    }
}
