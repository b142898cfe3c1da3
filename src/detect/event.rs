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

/// What the pipeline adds to a detector's event: identity and wall-clock times.
#[derive(Debug, Clone)]
pub struct EventStamp {
    /// Sensor id.
    pub sensor: String,
    /// Model name.
    pub model: String,
    /// Wall-clock time of the stream start.
    pub stream_start: jiff::Timestamp,
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
    /// start, update or end.
    pub state: EventState,
    /// Score of the window that produced this message.
    pub score: f32,
    /// Highest score since the start.
    pub peak_score: f32,
    /// RFC 3339 UTC start time.
    pub start: String,
    /// RFC 3339 UTC end time (end messages only).
    pub end: Option<String>,
    /// Duration in seconds (end messages only).
    pub duration_s: Option<f64>,
    /// LAeq during the event, once levels are measured.
    pub laeq_db: Option<f64>,
    /// Model name.
    pub model: String,
    /// Message sequence number of this run, from 1.
    pub seq: u64,
    /// Start, in seconds from the stream start (useful for recordings).
    pub start_offset_s: f64,
    /// End, in seconds from the stream start (end messages only).
    pub end_offset_s: Option<f64>,
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-21T07:02:13.120Z`.
pub fn rfc3339(base: jiff::Timestamp, offset_s: f64) -> String {
    let span = jiff::SignedDuration::from_secs_f64(offset_s.max(0.0));
    let t = base.checked_add(span).unwrap_or(base);
    format!("{:.3}", t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_with_milliseconds() {
        let base: jiff::Timestamp = "2026-11-21T07:02:13Z".parse().expect("time");
        assert_eq!(rfc3339(base, 0.12), "2026-11-21T07:02:13.120Z");
    }
}
