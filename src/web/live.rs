//! What the pipeline shows the web server: recent events and level reports, the latest scores,
//! spectrogram columns, the counters `/metrics` adds to [`Health`], and the live stream.
//!
//! Every call from the pipeline is a short lock on a ring buffer or a send that never waits
//! (a broadcast channel: a client that falls behind loses messages, counted, and nobody else
//! notices). Handlers copy what they need under the same short locks.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use serde_json::Value;

use crate::detect::Event;
use crate::levels::LevelReport;
use crate::mqtt::MqttProbe;
use crate::notify::Notifier;
use crate::stats::Health;

/// Recent events kept for `/api/events`.
pub const EVENTS_KEPT: usize = 500;
/// Level reports kept for `/api/levels` (an hour of 1 s reports).
pub const LEVELS_KEPT: usize = 3600;
/// Messages a stream client may fall behind before it loses some.
pub const STREAM_QUEUE: usize = 256;
/// Stream clients at once; more are refused (503) rather than queued.
pub const MOST_STREAMS: usize = 16;

/// One message of the live stream: its SSE event name and JSON data.
#[derive(Debug, Clone)]
pub struct StreamMessage {
    /// `scores`, `level`, `event` or `frames`.
    pub kind: &'static str,
    /// JSON.
    pub data: Arc<str>,
}

/// The labels of the events counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// The event's label (a watch's name or a limit rule's).
    pub label: String,
    /// start, update or end.
    pub state: String,
    /// sound or limit.
    pub kind: String,
}

/// A limit rule as the page draws it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LimitLine {
    /// The rule's name.
    pub name: String,
    /// Its metric (laeq, lamax, ...).
    pub metric: &'static str,
    /// Its threshold, dB.
    pub threshold_db: f64,
}

/// The shared state of one run.
pub struct Live {
    /// Sensor id.
    pub sensor: String,
    /// Model name.
    pub model: String,
    /// Watched labels (event names).
    pub watched: Vec<String>,
    /// Limit rules.
    pub limits: Vec<LimitLine>,
    /// The pipeline's counters.
    pub health: Arc<Health>,
    /// The liveness the systemd watchdog is fed by.
    pub notifier: Arc<Notifier>,
    /// The MQTT publisher's state, when publishing.
    pub mqtt: Option<MqttProbe>,
    /// The clip folder and the clip counters, when clips are kept.
    pub clips: Option<(std::path::PathBuf, Arc<crate::recorder::ClipCounters>)>,
    /// Events per label, state and kind.
    pub events_by_label: Family<EventLabels, Counter>,
    /// Inference time per window, seconds.
    pub inference: Histogram,
    /// Stream messages lost by clients that fell behind.
    pub stream_dropped: AtomicU64,
    /// Stream clients connected now.
    pub streams_open: AtomicUsize,
    events: Mutex<VecDeque<Arc<Value>>>,
    levels: Mutex<VecDeque<Arc<Value>>>,
    scores: Mutex<Option<Arc<Value>>>,
    stream: tokio::sync::broadcast::Sender<StreamMessage>,
}

impl Live {
    /// The state of a run starting now (without MQTT or clips: set `mqtt` and `clips`).
    pub fn new(
        sensor: &str,
        model: &str,
        watched: Vec<String>,
        limits: Vec<LimitLine>,
        health: Arc<Health>,
        notifier: Arc<Notifier>,
    ) -> Self {
        let (stream, _) = tokio::sync::broadcast::channel(STREAM_QUEUE);
        Self {
            sensor: sensor.to_owned(),
            model: model.to_owned(),
            watched,
            limits,
            health,
            notifier,
            mqtt: None,
            clips: None,
            events_by_label: Family::default(),
            // 5 ms to 10 s, doubling
            inference: Histogram::new((0..12).map(|i| 0.005 * f64::from(1u32 << i))),
            stream_dropped: AtomicU64::new(0),
            streams_open: AtomicUsize::new(0),
            events: Mutex::new(VecDeque::new()),
            levels: Mutex::new(VecDeque::new()),
            scores: Mutex::new(None),
            stream,
        }
    }

    fn send(&self, kind: &'static str, data: &Value) {
        // No receiver: nobody is watching; nothing to do.
        let _ = self.stream.send(StreamMessage {
            kind,
            data: data.to_string().into(),
        });
    }

    /// A numbered event, as published.
    pub fn event(&self, e: &Event) {
        let kind = serde_json::to_value(e.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let state = serde_json::to_value(e.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        self.events_by_label
            .get_or_create(&EventLabels {
                label: e.label.clone(),
                state,
                kind,
            })
            .inc();
        let Ok(v) = serde_json::to_value(e) else {
            return;
        };
        push(&self.events, Arc::new(v.clone()), EVENTS_KEPT);
        self.send("event", &v);
    }

    /// A level report, as published.
    pub fn level(&self, r: &LevelReport) {
        let Ok(v) = serde_json::to_value(r) else {
            return;
        };
        push(&self.levels, Arc::new(v.clone()), LEVELS_KEPT);
        self.send("level", &v);
    }

    /// A window's top scores (`{"end_offset_s", "top": [{"label", "score"}...]}`).
    pub fn scores(&self, v: Value) {
        self.send("scores", &v);
        *lock(&self.scores) = Some(Arc::new(v));
    }

    /// Whether a stream client is connected (else spectrogram columns need not be made).
    pub fn watched(&self) -> bool {
        self.stream.receiver_count() > 0
    }

    /// New spectrogram columns: `columns` of `bins` values each, 0..=255, oldest first.
    pub fn frames(&self, end_s: f64, bins: usize, columns: &[u8]) {
        let v = serde_json::json!({
            "end_offset_s": crate::format::round3(end_s),
            "bins": bins,
            "columns": columns,
        });
        self.send("frames", &v);
    }

    /// One window's inference time.
    pub fn inference_ms(&self, ms: f32) {
        self.inference.observe(f64::from(ms) / 1000.0);
    }

    /// The newest `limit` events, newest first.
    pub fn recent_events(&self, limit: usize) -> Vec<Arc<Value>> {
        lock(&self.events)
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect()
    }

    /// Level reports whose interval ends after `since` (seconds from the stream start),
    /// oldest first.
    pub fn levels_since(&self, since: f64) -> Vec<Arc<Value>> {
        self.levels_where(|r| r["end_offset_s"].as_f64().is_some_and(|e| e > since))
    }

    /// Level reports whose interval ends after the RFC 3339 time `since`, oldest first.
    pub fn levels_after(&self, since: jiff::Timestamp) -> Vec<Arc<Value>> {
        self.levels_where(|r| {
            r["end"]
                .as_str()
                .and_then(|e| e.parse::<jiff::Timestamp>().ok())
                .is_some_and(|e| e > since)
        })
    }

    fn levels_where(&self, keep: impl Fn(&Value) -> bool) -> Vec<Arc<Value>> {
        lock(&self.levels)
            .iter()
            .filter(|r| keep(r))
            .cloned()
            .collect()
    }

    /// The latest level report.
    pub fn latest_level(&self) -> Option<Arc<Value>> {
        lock(&self.levels).back().cloned()
    }

    /// The latest window's top scores.
    pub fn latest_scores(&self) -> Option<Arc<Value>> {
        lock(&self.scores).clone()
    }

    /// A receiver of the live stream.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<StreamMessage> {
        self.stream.subscribe()
    }

    /// Adds `n` to the stream messages lost.
    pub fn dropped(&self, n: u64) {
        self.stream_dropped.fetch_add(n, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn push(ring: &Mutex<VecDeque<Arc<Value>>>, v: Arc<Value>, cap: usize) {
    let mut q = lock(ring);
    if q.len() == cap {
        q.pop_front();
    }
    q.push_back(v);
}

/// Spectrogram columns for the page from a window's model input (`frames × bins`, the first
/// `frames` rows real): the rows new in this window, every second one, bins paired, values
/// mapped from [-2, 2] (the normalised log-mel range) onto 0..=255.
pub fn spectrogram_columns(input: &[f32], bins: usize, frames: usize, new: usize) -> Vec<u8> {
    if bins == 0 {
        return Vec::new();
    }
    let first = frames.saturating_sub(new);
    let half = bins / 2;
    let mut out = Vec::with_capacity(new.div_ceil(2) * half);
    for row in (first..frames).step_by(2) {
        let Some(r) = input.get(row * bins..(row + 1) * bins) else {
            break;
        };
        for pair in r.chunks_exact(2) {
            let v = (pair[0] + pair[1]) * 0.5;
            let q = ((v + 2.0) / 4.0 * 255.0).clamp(0.0, 255.0);
            out.push(if q.is_finite() { q as u8 } else { 0 });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_take_the_new_rows_every_second_one_with_bins_paired() {
        // 4 bins, 6 frames of which 4 are new: rows 2 and 4
        let input: Vec<f32> = (0..6)
            .flat_map(|r| [r as f32 * 0.5 - 2.0, r as f32 * 0.5 - 2.0, 2.0, 2.0])
            .collect();
        let c = spectrogram_columns(&input, 4, 6, 4);
        assert_eq!(c, vec![63, 255, 127, 255]);
        assert!(spectrogram_columns(&input, 0, 6, 4).is_empty());
    }
}
