//! The event record, serialised as the JSON of the MQTT schema (`"v": 1`).

use serde::Serialize;

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventState {
    /// The sound started (after its minimum duration).
    Start,
    /// Still going: sent every update interval so no event stays open silently.
    Update,
    /// The sound ended (after the hold time), or the stream ended.
    End,
}

impl EventState {
    /// "start", "update" or "end", as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Update => "update",
            Self::End => "end",
        }
    }
}

/// What raised an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A watched label (or group) of the model.
    Sound,
    /// A level limit rule (`[[levels.limit]]`).
    Limit,
    /// A level held above a threshold (`[[detect.level]]`).
    Level,
}

impl EventKind {
    /// "sound", "limit" or "level", as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sound => "sound",
            Self::Limit => "limit",
            Self::Level => "level",
        }
    }
}

/// The figures of a limit event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LimitInfo {
    /// The metric the rule watches (laeq, lceq, lzeq, lamax, la10, la90).
    pub metric: &'static str,
    /// The rule's period, seconds.
    pub period_s: f64,
    /// The rule's threshold, dB.
    pub threshold_db: f64,
    /// The metric over the period that produced this message, dB.
    pub value_db: f64,
    /// The highest period value since the start, dB.
    pub peak_db: f64,
    /// Whether the levels are calibrated (dB SPL) or dBFS.
    pub calibrated: bool,
}

/// What the pipeline adds to a detector's event: identity and wall-clock times.
#[derive(Debug, Clone)]
pub struct EventStamp {
    /// Sensor id.
    pub sensor: String,
    /// Model name.
    pub model: String,
    /// Wall-clock time of the stream start.
    pub stream_start: jiff::Timestamp,
    /// The time zone of watches' `hours` and `days`.
    pub tz: jiff::tz::TimeZone,
}

/// One event message.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    /// Schema version.
    pub v: u32,
    /// ULID shared by the start, updates and end of one event.
    pub id: String,
    /// Sensor id.
    pub sensor: String,
    /// Watched label (or group) name.
    pub label: String,
    /// Slug of the label, `[a-z0-9_]`.
    pub slug: String,
    /// sound (a watched label) or limit (a level limit rule).
    pub kind: EventKind,
    /// start, update or end.
    pub state: EventState,
    /// Score of the window that produced this message (null for limit events).
    pub score: Option<f32>,
    /// Highest score since the start (null for limit events).
    pub peak_score: Option<f32>,
    /// RFC 3339 UTC start time.
    pub start: String,
    /// RFC 3339 UTC end time (end messages only).
    pub end: Option<String>,
    /// Duration in seconds (end messages only).
    pub duration_s: Option<f64>,
    /// LAeq from the start of the event to this message (null unless `[levels]` is on).
    pub laeq_db: Option<f64>,
    /// Model name.
    pub model: String,
    /// Message sequence number of this run, from 1 (given by the output, in output order).
    pub seq: u64,
    /// Start, in seconds from the stream start (useful for recordings).
    pub start_offset_s: f64,
    /// End, in seconds from the stream start (end messages only).
    pub end_offset_s: Option<f64>,
    /// The rule's figures (limit events only; absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<LimitInfo>,
    /// The file name of the event's clip in `[clips] dir`, when clips are kept for it
    /// (absent otherwise). The file appears after the event's end and post-roll, unless
    /// privacy withholds it or it cannot be written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip: Option<String>,
}
