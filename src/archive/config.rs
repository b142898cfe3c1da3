//! The `[history]` table: where the local history is kept, for how long, and how big it may
//! grow.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[history]` as written.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct RawHistory {
    pub path: Option<PathBuf>,
    pub retention_days: u32,
    pub max_mb: u64,
}

impl Default for RawHistory {
    fn default() -> Self {
        Self {
            path: None,
            retention_days: 400,
            max_mb: 1024,
        }
    }
}

/// The validated `[history]` table; on when `path` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct HistorySettings {
    /// The SQLite file.
    pub path: Option<PathBuf>,
    /// Days of rows kept (older rows are deleted at start and every hour).
    pub retention_days: u32,
    /// Bytes the file may take (the oldest days go first past it).
    pub max_bytes: u64,
}

impl Default for HistorySettings {
    fn default() -> Self {
        validate(&RawHistory::default(), Path::new("."), &mut |_, _| {})
    }
}

/// The `[history]` table; relative paths are taken from `base` (the configuration's folder).
pub(crate) fn validate(
    raw: &RawHistory,
    base: &Path,
    err: &mut dyn FnMut(&str, String),
) -> HistorySettings {
    if raw.retention_days == 0 || raw.retention_days > 36_500 {
        err(
            "history.retention_days",
            format!("{} must be from 1 to 36500", raw.retention_days),
        );
    }
    if raw.max_mb < 1 {
        err("history.max_mb", "must be at least 1".into());
    }
    HistorySettings {
        path: raw.path.as_ref().map(|p| base.join(p)),
        retention_days: raw.retention_days.clamp(1, 36_500),
        max_bytes: raw.max_mb.max(1).saturating_mul(1 << 20),
    }
}
