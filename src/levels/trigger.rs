//! `[[detect.level]]`: "any loud noise" events while a level (LAF, LAeq over the last second,
//! LCeq over the last second) stays above a threshold for a minimum time, decided by the same
//! detector as sound events (start, updates, end after a hold), one 125 ms block at a time.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::meter::{to_db, Block};
use super::History;
use crate::detect::{Detector, Event, EventKind, EventStamp, LimitInfo, Watch, WatchSettings};

/// The level a trigger watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelMetric {
    /// A-weighted, fast time weighting: the highest LAF of each 125 ms block.
    Laf,
    /// A-weighted Leq over the last second.
    Laeq1s,
    /// C-weighted Leq over the last second.
    Lceq1s,
}

impl LevelMetric {
    /// Config names and metrics.
    pub const ALL: [(&'static str, LevelMetric); 3] = [
        ("laf", LevelMetric::Laf),
        ("laeq_1s", LevelMetric::Laeq1s),
        ("lceq_1s", LevelMetric::Lceq1s),
    ];

    /// Its config name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("laf", |(n, _)| n)
    }

    /// The metric a config name means.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, m)| *m)
    }
}

/// One `[[detect.level]]` entry, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelTrigger {
    /// Event label (default e.g. "LAF > 85 dB").
    pub name: String,
    /// The level.
    pub metric: LevelMetric,
    /// Above this (dB; dBFS while uncalibrated) the sound is loud.
    pub threshold_db: f64,
    /// How long it must stay above before `start`.
    pub min_duration: Duration,
    /// How long below before `end`.
    pub hold: Duration,
    /// `update` messages while it lasts.
    pub update_interval: Duration,
}

/// The triggers of one stream.
pub struct Triggers {
    rules: Vec<LevelTrigger>,
    detector: Detector,
    /// The last second's blocks: (seconds, A, C mean squares).
    recent: VecDeque<(f64, f64, f64)>,
    offset: Option<f64>,
    history: Arc<History>,
    /// Open events' highest level, by event id.
    peaks: HashMap<String, f64>,
    levels: Vec<f64>,
    end_s: f64,
}

impl Triggers {
    /// Triggers for a stream stamped `stamp`; levels in dB with `offset` (calibration).
    pub fn new(
        rules: Vec<LevelTrigger>,
        stamp: EventStamp,
        offset: Option<f64>,
        history: Arc<History>,
    ) -> Self {
        let watches = rules
            .iter()
            .enumerate()
            .map(|(i, r)| Watch {
                name: r.name.clone(),
                outputs: vec![i],
                settings: WatchSettings {
                    on: 0.5,
                    off: 0.5,
                    min_duration: r.min_duration,
                    hold: r.hold,
                    update_interval: r.update_interval,
                },
                schedule: None,
            })
            .collect();
        let n = rules.len();
        Self {
            rules,
            detector: Detector::new(watches, stamp),
            recent: VecDeque::new(),
            offset,
            history,
            peaks: HashMap::new(),
            levels: vec![f64::NEG_INFINITY; n],
            end_s: 0.0,
        }
    }

    /// (name, slug) of the triggers, for MQTT entities.
    pub fn names(&self) -> Vec<(String, String)> {
        self.rules
            .iter()
            .map(|r| (r.name.clone(), crate::format::slugify(&r.name)))
            .collect()
    }

    /// One block: the levels, then the detector.
    pub fn push(&mut self, b: &Block, out: &mut Vec<Event>) {
        if self.rules.is_empty() {
            return;
        }
        self.recent.push_back((b.seconds, b.a, b.c));
        while self.recent.iter().map(|r| r.0).sum::<f64>() > 1.0 + 1e-9 {
            self.recent.pop_front();
        }
        let secs: f64 = self.recent.iter().map(|r| r.0).sum::<f64>().max(1e-9);
        let leq = |k: fn(&(f64, f64, f64)) -> f64| {
            self.recent.iter().map(|r| r.0 * k(r)).sum::<f64>() / secs
        };
        let offset = self.offset.unwrap_or(0.0);
        for (i, r) in self.rules.iter().enumerate() {
            self.levels[i] = match r.metric {
                LevelMetric::Laf => to_db(b.af_max, offset),
                LevelMetric::Laeq1s => to_db(leq(|r| r.1), offset),
                LevelMetric::Lceq1s => to_db(leq(|r| r.2), offset),
            };
        }
        let scores: Vec<f32> = self
            .rules
            .iter()
            .zip(&self.levels)
            .map(|(r, &l)| if l > r.threshold_db { 1.0 } else { 0.0 })
            .collect();
        self.end_s = b.start_s + b.seconds;
        let w = crate::analysis::WindowScores {
            end_s: self.end_s,
            new_from_s: b.start_s,
            frames: 0,
            scores,
        };
        let first = out.len();
        self.detector.process(&w, out);
        self.dress(&mut out[first..]);
    }

    /// The end of the stream: open events end.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        let first = out.len();
        self.detector.finish(self.end_s, out);
        self.dress(&mut out[first..]);
    }

    /// Makes the detector's events level events: the level now and its peak, the LAeq.
    fn dress(&mut self, events: &mut [Event]) {
        for e in events {
            let Some(i) = self.rules.iter().position(|r| r.name == e.label) else {
                continue;
            };
            let r = &self.rules[i];
            let now = self.levels[i];
            let peak = self.peaks.entry(e.id.clone()).or_insert(now);
            *peak = peak.max(now);
            let peak = *peak;
            if e.end_offset_s.is_some() {
                self.peaks.remove(&e.id);
            }
            e.kind = EventKind::Level;
            e.score = None;
            e.peak_score = None;
            e.laeq_db = self
                .history
                .laeq(e.start_offset_s, e.end_offset_s.unwrap_or(self.end_s));
            e.limit = Some(LimitInfo {
                metric: r.metric.name(),
                period_s: match r.metric {
                    LevelMetric::Laf => 0.125,
                    _ => 1.0,
                },
                threshold_db: r.threshold_db,
                value_db: (now * 10.0).round() / 10.0,
                peak_db: (peak * 10.0).round() / 10.0,
                calibrated: self.offset.is_some(),
            });
        }
    }
}
