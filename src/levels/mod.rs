//! Sound levels for noise limits: A/C/Z weighting, F/S time weighting, Leq, Lmax/Lmin,
//! L10/L90 reports, limit rules and calibration, measured at the capture rate.
//!
//! Data path: samples (mono, capture rate) → [`Meter`] (weighting filters, 125 ms [`Block`]s)
//! → [`Reporter`] (a [`LevelReport`] every interval), [`Limits`] (limit events) and
//! [`History`] (the LAeq of sound events). [`LevelChain`] bundles them for `run`.

pub mod bands;
mod calibrate;
mod clock;
pub(crate) mod config;
pub mod day;
mod history;
mod limits;
mod meter;
mod report;
pub mod trigger;
pub mod weighting;

use std::sync::Arc;
use std::time::Duration;

pub use calibrate::{measure_tone, CalibrationError, Tone};
pub use clock::{Clock, Period};
pub use history::History;
pub use limits::{in_window, parse_days, parse_hours, parse_schedule, LimitRule, Limits, Metric};
pub use meter::{to_db, Block, Meter, BLOCKS_PER_S};
pub use report::{exceeded, BandLevels, BandMap, LevelReport, Levels, Reporter, Summary};

use crate::detect::Event;

/// The validated `[levels]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelsConfig {
    /// Measure levels at all.
    pub enabled: bool,
    /// Time between level reports.
    pub interval: Duration,
    /// dBFS → dB SPL; `None` until calibrated (reports say `calibrated: false`).
    pub offset_db: Option<f64>,
    /// Level reports on stdout (they go to MQTT whenever a broker is set).
    pub stdout: bool,
    /// Time zone of the limit rules' hours and days.
    pub timezone: jiff::tz::TimeZone,
    /// Octave or third-octave band levels in the reports, and their weighting (Z or A).
    pub bands: Option<(bands::BandScale, weighting::Weighting)>,
    /// Named parts of the day for reports and Lden (default: the EU's day, evening, night).
    pub periods: Vec<crate::report::periods::NamedPeriod>,
    /// LAFmax over this counts as a loud event at night (reports).
    pub night_lamax_db: Option<f64>,
    /// Limit rules.
    pub limits: Vec<LimitRule>,
}

impl Default for LevelsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval: Duration::from_secs(60),
            offset_db: None,
            stdout: true,
            timezone: jiff::tz::TimeZone::UTC,
            bands: None,
            periods: crate::report::periods::eu_periods(),
            night_lamax_db: None,
            limits: Vec::new(),
        }
    }
}

/// What the level chain produces.
#[derive(Debug)]
pub enum LevelOutput {
    /// A level report.
    Report(LevelReport),
    /// A limit event.
    Event(Event),
    /// A local day's figures (when the day ends, and at the end of the stream).
    Day(day::DaySummary),
}

/// Why levels cannot be measured on a stream.
#[derive(Debug, thiserror::Error)]
#[error("levels need audio at {min} Hz or more; the source gives {rate} Hz", min = weighting::MIN_RATE)]
pub struct RateTooLow {
    /// The source's rate.
    pub rate: u32,
}

/// Meter, reports, limits and history for one stream.
pub struct LevelChain {
    meter: Meter,
    reporter: Reporter,
    limits: Limits,
    history: Arc<History>,
    blocks: Vec<Block>,
    events: Vec<Event>,
    end_s: f64,
    triggers: Option<trigger::Triggers>,
    clock: Clock,
    offset: Option<f64>,
    sensor: String,
    model: String,
    days: day::DayTracker,
}

impl LevelChain {
    /// The chain for audio at `rate` Hz of a stream that started at `stream_start`.
    pub fn new(
        cfg: &LevelsConfig,
        rate: u32,
        sensor: &str,
        model: &str,
        stream_start: jiff::Timestamp,
    ) -> Result<Self, RateTooLow> {
        if rate < weighting::MIN_RATE {
            return Err(RateTooLow { rate });
        }
        // Reports and limit periods follow the local clock; blocks are cut on its 125 ms grid.
        let clock = Clock {
            stream_start,
            zone: Some(cfg.timezone.clone()),
        };
        let phase = clock.block_phase();
        let stamp = (
            clock.clone(),
            cfg.offset_db,
            sensor.to_owned(),
            model.to_owned(),
        );
        let mut meter = Meter::with_phase(rate, phase);
        if let Some((scale, _)) = cfg.bands {
            meter = meter.with_bands(scale);
        }
        let band_set = cfg
            .bands
            .map(|(scale, w)| bands::BandSet::new(scale, w, rate));
        Ok(Self {
            meter,
            reporter: Reporter::new(cfg.interval, sensor, clock.clone(), cfg.offset_db)
                .with_bands(band_set),
            limits: Limits::new(cfg.limits.clone(), clock, cfg.offset_db, sensor, model),
            history: Arc::new(History::new(cfg.offset_db.unwrap_or(0.0), phase)),
            blocks: Vec::new(),
            events: Vec::new(),
            end_s: 0.0,
            triggers: None,
            clock: stamp.0,
            offset: stamp.1,
            days: day::DayTracker::new(
                cfg.timezone.clone(),
                cfg.periods.clone(),
                cfg.night_lamax_db,
                &stamp.2,
                cfg.offset_db.is_some(),
            ),
            sensor: stamp.2,
            model: stamp.3,
        })
    }

    /// Adds `[[detect.level]]` triggers: their events come out with the limit events.
    pub fn with_triggers(mut self, rules: Vec<trigger::LevelTrigger>) -> Self {
        if rules.is_empty() {
            return self;
        }
        let stamp = crate::detect::EventStamp {
            sensor: self.sensor.clone(),
            model: self.model.clone(),
            stream_start: self.clock.stream_start,
            tz: self.clock.zone.clone().unwrap_or(jiff::tz::TimeZone::UTC),
        };
        self.triggers = Some(trigger::Triggers::new(
            rules,
            stamp,
            self.offset,
            Arc::clone(&self.history),
        ));
        self
    }

    /// (name, slug) of the level triggers.
    pub fn trigger_names(&self) -> Vec<(String, String)> {
        self.triggers
            .as_ref()
            .map(trigger::Triggers::names)
            .unwrap_or_default()
    }

    /// The shared history (for the LAeq of sound events).
    pub fn history(&self) -> Arc<History> {
        Arc::clone(&self.history)
    }

    /// (name, slug) of the limit rules.
    pub fn limit_names(&self) -> Vec<(String, String)> {
        self.limits.names()
    }

    /// Feeds samples at the stream rate.
    pub fn process(&mut self, samples: &[f32], on: &mut dyn FnMut(LevelOutput)) {
        self.meter.process(samples, &mut self.blocks);
        self.drain(on);
    }

    /// Ends the stream: the partial report, the last periods, open limit events end.
    pub fn finish(&mut self, on: &mut dyn FnMut(LevelOutput)) {
        self.meter.finish(&mut self.blocks);
        self.drain(on);
        if let Some(r) = self.reporter.finish(self.end_s) {
            self.report(r, on);
        }
        self.limits.finish(&mut self.events);
        if let Some(t) = self.triggers.as_mut() {
            t.finish(&mut self.events);
        }
        self.events
            .drain(..)
            .for_each(|e| on(LevelOutput::Event(e)));
        if let Some(d) = self.days.finish() {
            on(LevelOutput::Day(d));
        }
    }

    fn drain(&mut self, on: &mut dyn FnMut(LevelOutput)) {
        let blocks = std::mem::take(&mut self.blocks);
        for b in &blocks {
            self.end_s = b.end_s();
            self.history.push(b);
            self.limits.push(b, &mut self.events);
            if let Some(t) = self.triggers.as_mut() {
                t.push(b, &mut self.events);
            }
            self.events
                .drain(..)
                .for_each(|e| on(LevelOutput::Event(e)));
            if let Some(r) = self.reporter.push(b) {
                self.report(r, on);
            }
        }
        // the allocation is kept for the next blocks
        self.blocks = blocks;
        self.blocks.clear();
    }

    /// A report out, after the summary of the day it ends.
    fn report(&mut self, r: LevelReport, on: &mut dyn FnMut(LevelOutput)) {
        if let Some(d) = self.days.push(&r) {
            on(LevelOutput::Day(d));
        }
        on(LevelOutput::Report(r));
    }
}
