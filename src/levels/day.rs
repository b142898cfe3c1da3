//! The day's figures while the daemon runs: LAeq of the named periods, Lden, Ldn and loud
//! night events, from the same level reports and by the same arithmetic as `report`, sent
//! when a local day ends (and, marked incomplete, when the stream ends).

use serde::Serialize;

use super::report::LevelReport;
use crate::report::data::LevelRow;
use crate::report::periods::{period_figures, NamedPeriod};

/// A day's figures (`"type": "day"`), printed with the level reports and published retained
/// on `<base>/day`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DaySummary {
    /// Schema version.
    pub v: u32,
    /// Always "day".
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Sensor id.
    pub sensor: String,
    /// The local date.
    pub date: String,
    /// False when the stream ended before the day did (or began after it started).
    pub complete: bool,
    /// Seconds measured.
    pub measured_s: f64,
    /// LAeq of each named period (`null` without measurements).
    pub laeq: NamedLevels,
    /// Lden (day-evening-night level), when every named period was measured.
    pub lden: Option<f64>,
    /// Ldn (day 07–22, night 22–07 + 10 dB).
    pub ldn: Option<f64>,
    /// Reports at night whose LAFmax went over `night_lamax_db`, counted as runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub night_lamax_events: Option<usize>,
    /// The threshold of `night_lamax_events`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub night_lamax_db: Option<f64>,
    /// dB (calibrated) or dBFS.
    pub unit: &'static str,
}

/// Collects a local day's level reports.
#[derive(Debug)]
pub struct DayTracker {
    tz: jiff::tz::TimeZone,
    periods: Vec<NamedPeriod>,
    night_lamax_db: Option<f64>,
    sensor: String,
    unit: &'static str,
    /// (date, whether it started at midnight, its reports).
    current: Option<(jiff::civil::Date, bool, Vec<LevelRow>)>,
}

impl DayTracker {
    /// A tracker for days in `tz`.
    pub fn new(
        tz: jiff::tz::TimeZone,
        periods: Vec<NamedPeriod>,
        night_lamax_db: Option<f64>,
        sensor: &str,
        calibrated: bool,
    ) -> Self {
        Self {
            tz,
            periods,
            night_lamax_db,
            sensor: sensor.to_owned(),
            unit: if calibrated { "dB" } else { "dBFS" },
            current: None,
        }
    }

    /// Adds a report; returns the summary of the day it ends, if it starts a new one.
    pub fn push(&mut self, r: &LevelReport) -> Option<DaySummary> {
        let start = crate::archive::store::unix(&r.start);
        let local = crate::report::zoned(start, &self.tz);
        let date = local.date();
        let done = match &self.current {
            Some((d, _, _)) if *d != date => self.summary(true),
            _ => None,
        };
        let (_, _, rows) = self.current.get_or_insert_with(|| {
            // a day counts as complete when its first report starts within a minute of
            // midnight
            let from_midnight = local.hour() == 0 && local.minute() == 0;
            (date, from_midnight, Vec::new())
        });
        rows.push(LevelRow {
            start,
            end: crate::archive::store::unix(&r.end),
            seconds: r.interval_s,
            laeq: r.levels.laeq,
            lceq: r.levels.lceq,
            lzeq: r.levels.lzeq,
            lamax: r.levels.lamax,
            la10: r.levels.la10,
            la90: r.levels.la90,
            calibrated: r.calibrated,
            bands: Vec::new(),
        });
        done
    }

    /// The summary of the day in progress (incomplete), at the end of a stream.
    pub fn finish(&mut self) -> Option<DaySummary> {
        self.summary(false)
    }

    fn summary(&mut self, ended: bool) -> Option<DaySummary> {
        let (date, from_midnight, rows) = self.current.take()?;
        let tz = &self.tz;
        let minute_of = |r: &LevelRow| {
            let z = crate::report::zoned(r.start, tz);
            u32::from(z.hour() as u8) * 60 + u32::from(z.minute() as u8)
        };
        let f = period_figures(&rows, &self.periods, minute_of, self.night_lamax_db);
        let round = |v: f64| (v * 100.0).round() / 100.0;
        Some(DaySummary {
            v: 1,
            kind: "day",
            sensor: self.sensor.clone(),
            date: date.to_string(),
            complete: ended && from_midnight,
            measured_s: rows.iter().map(|r| r.seconds).sum(),
            laeq: super::report::Ordered(
                f.laeq
                    .iter()
                    .map(|(name, v, _)| (name.clone(), v.map(round)))
                    .collect(),
            ),
            lden: f.lden.map(round),
            ldn: f.ldn.map(round),
            night_lamax_events: f.night_events.map(|n| n.1),
            night_lamax_db: f.night_events.map(|n| n.0),
            unit: self.unit,
        })
    }
}

/// (period, dB) pairs, written as a JSON object in this order.
pub type NamedLevels = super::report::Ordered<String, Option<f64>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::levels::Levels;

    fn report(t: i64, laeq: f64) -> LevelReport {
        let at = |s: i64| {
            jiff::Timestamp::from_second(s)
                .expect("time")
                .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
        };
        LevelReport {
            v: 1,
            kind: "level",
            sensor: "s".into(),
            start: at(t),
            end: at(t + 60),
            start_offset_s: 0.0,
            end_offset_s: 60.0,
            interval_s: 60.0,
            levels: Levels {
                laeq,
                lceq: laeq,
                lzeq: laeq,
                lamax: laeq + 10.0,
                lamin: None,
                lasmax: laeq,
                la10: laeq,
                la90: laeq,
            },
            bands: None,
            calibrated: true,
            unit: "dB",
        }
    }

    #[test]
    fn a_whole_day_is_summed_when_the_next_begins() {
        let mut days = DayTracker::new(
            jiff::tz::TimeZone::UTC,
            crate::report::periods::eu_periods(),
            Some(65.0),
            "s",
            true,
        );
        // 2026-12-01 00:00 UTC, a report a minute: 50 dB by day, 40 at night, one loud minute
        let midnight = 1_796_083_200;
        for m in 0..1440 {
            let night = !(7 * 60..23 * 60).contains(&m);
            let mut r = report(midnight + m * 60, if night { 40.0 } else { 50.0 });
            if m == 180 {
                r.levels.lamax = 80.0;
            }
            assert_eq!(days.push(&r), None, "minute {m}");
        }
        let d = days
            .push(&report(midnight + 86_400, 40.0))
            .expect("the day ended");
        assert_eq!((d.date.as_str(), d.complete), ("2026-12-01", true));
        assert_eq!(d.measured_s, 86_400.0);
        // day 50 dB, evening 50 + 5, night 40 + 10
        let want: f64 =
            10.0 * (12.0 / 24.0 * 1e5 + 4.0 / 24.0 * 10f64.powf(5.5) + 8.0 / 24.0 * 1e5).log10();
        assert!((d.lden.expect("lden") - (want * 100.0).round() / 100.0).abs() < 1e-9);
        assert_eq!(d.night_lamax_events, Some(1));
        assert_eq!(d.laeq.0[0], ("day".to_owned(), Some(50.0)));
        // the next day so far: incomplete
        let next = days.finish().expect("the day in progress");
        assert_eq!((next.date.as_str(), next.complete), ("2026-12-02", false));
    }
}
