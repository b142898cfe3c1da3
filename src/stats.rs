//! The daemon's counters: windows, events and inference times ([`Health`], published on
//! `<base>/stats` and in the closing log line) and a live source's overruns and restarts
//! ([`SourceHealth`]).

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Instant;

/// Counters of the running daemon, published on `<base>/stats`.
#[derive(Debug)]
pub struct Health {
    started: Instant,
    /// Windows scored.
    pub windows_total: AtomicU64,
    /// Windows dropped because the model was busy.
    pub windows_skipped_total: AtomicU64,
    /// Event messages produced.
    pub events_total: AtomicU64,
    /// Overruns and restarts of a live source.
    pub source: SourceHealth,
    inference_ms: Mutex<VecDeque<f32>>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            windows_total: AtomicU64::new(0),
            windows_skipped_total: AtomicU64::new(0),
            events_total: AtomicU64::new(0),
            source: Default::default(),
            inference_ms: Mutex::new(VecDeque::new()),
        }
    }
}

impl Health {
    /// Time since the counters were made (the daemon's start).
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Records one window's inference time (the last 256 are kept for the percentiles).
    pub fn inference(&self, ms: f32) {
        let mut q = self.inference_ms.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() == 256 {
            q.pop_front();
        }
        q.push_back(ms);
    }

    /// (p50, p95) of the recent inference times, ms.
    pub fn inference_percentiles(&self) -> (Option<f32>, Option<f32>) {
        let mut v: Vec<f32> = self
            .inference_ms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        if v.is_empty() {
            return (None, None);
        }
        v.sort_by(f32::total_cmp);
        let at = |p: f32| v[((v.len() - 1) as f32 * p).round() as usize];
        (Some(at(0.5)), Some(at(0.95)))
    }
}

/// What a live source reports while it runs.
#[derive(Debug, Default)]
pub struct SourceHealth {
    /// Chunks dropped because the analysis was behind (the reader never waits).
    pub overruns_total: AtomicU64,
    /// Times the command was started again after it ended.
    pub restarts_total: AtomicU64,
}
