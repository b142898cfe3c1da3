//! Limit rules: a metric over clock-aligned periods (e.g. LAeq over each quarter hour) compared
//! with a threshold inside working hours, turned into `limit` events (start, update, end).
//!
//! Periods are aligned to local midnight in the configured time zone (a 15 min period runs
//! 07:00–07:15, 07:15–07:30, …), so the period length must divide a day. A period counts when
//! its start lies inside the rule's hours and days and at least half of it was measured. A
//! period above the threshold starts the event (or updates it); the first counted period at or
//! below it, or a period outside the hours, ends it, with the end of the last period above as
//! its end time.

use std::time::Duration;

use super::clock::Clock;
use super::meter::Block;
use super::report::{Levels, Summary};
use crate::detect::{Event, EventKind, EventState, LimitInfo};
use crate::format::{rfc3339, round3};

/// What a rule compares with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// A-weighted Leq over the period.
    Laeq,
    /// C-weighted Leq.
    Lceq,
    /// Z-weighted Leq.
    Lzeq,
    /// LAFmax.
    Lamax,
    /// LA10.
    La10,
    /// LA90.
    La90,
}

impl Metric {
    /// All metrics with their config names.
    pub const ALL: [(&'static str, Metric); 6] = [
        ("laeq", Metric::Laeq),
        ("lceq", Metric::Lceq),
        ("lzeq", Metric::Lzeq),
        ("lamax", Metric::Lamax),
        ("la10", Metric::La10),
        ("la90", Metric::La90),
    ];

    /// Parses a config name (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .map(|&(_, m)| m)
    }

    /// The config name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|&&(_, m)| m == self)
            .map_or("laeq", |(n, _)| n)
    }

    /// The usual written form: LAeq, LCeq, LZeq, LAFmax, LA10, LA90.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Laeq => "LAeq",
            Metric::Lceq => "LCeq",
            Metric::Lzeq => "LZeq",
            Metric::Lamax => "LAFmax",
            Metric::La10 => "LA10",
            Metric::La90 => "LA90",
        }
    }

    fn value(self, l: &Levels) -> f64 {
        match self {
            Metric::Laeq => l.laeq,
            Metric::Lceq => l.lceq,
            Metric::Lzeq => l.lzeq,
            Metric::Lamax => l.lamax,
            Metric::La10 => l.la10,
            Metric::La90 => l.la90,
        }
    }
}

/// One validated `[[levels.limit]]` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitRule {
    /// Event label (default e.g. "LAeq 15m > 75 dB").
    pub name: String,
    /// The metric.
    pub metric: Metric,
    /// Period length; divides a day.
    pub period: Duration,
    /// Exceeded when the metric is above this, dB.
    pub threshold_db: f64,
    /// Local time-of-day window, minutes after midnight [start, end); end ≤ start runs past
    /// midnight. `None`: all day.
    pub hours: Option<(u32, u32)>,
    /// Weekdays the rule applies on, Monday first.
    pub days: [bool; 7],
}

impl LimitRule {
    /// Whether a period starting at this local time counts.
    fn applies(&self, minute: u32, weekday: usize) -> bool {
        in_window(self.hours, &self.days, minute, weekday)
    }
}

/// Whether a local time (minute after midnight, weekday with Monday 0) lies in `hours`
/// ([start, end) in minutes; end ≤ start runs past midnight; `None`: all day) on `days`.
pub fn in_window(hours: Option<(u32, u32)>, days: &[bool; 7], minute: u32, weekday: usize) -> bool {
    let in_hours = match hours {
        None => true,
        Some((a, b)) if a < b => (a..b).contains(&minute),
        Some((a, b)) => minute >= a || minute < b,
    };
    in_hours && days.get(weekday).copied().unwrap_or(false)
}

/// A config entry's `hours` and `days` (`days` absent: all), each mistake reported to `err`
/// under `{key}.hours` / `{key}.days`; a mistaken value reads as all day / every day.
pub fn parse_schedule(
    hours: Option<&str>,
    days: Option<&str>,
    key: &str,
    err: &mut dyn FnMut(&str, String),
) -> (Option<(u32, u32)>, [bool; 7]) {
    let hours = hours.and_then(|h| {
        parse_hours(h)
            .map_err(|e| err(&format!("{key}.hours"), e))
            .ok()
    });
    let days = parse_days(days.unwrap_or("all")).unwrap_or_else(|e| {
        err(&format!("{key}.days"), e);
        [true; 7]
    });
    (hours, days)
}

/// Parses `"07:00-19:00"` into minutes after midnight.
pub fn parse_hours(s: &str) -> Result<(u32, u32), String> {
    let parse = |t: &str| -> Option<u32> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
    };
    let err = || format!("{s:?} is not a time range like \"07:00-19:00\"");
    let (a, b) = s.split_once('-').ok_or_else(err)?;
    let (a, b) = (parse(a).ok_or_else(err)?, parse(b).ok_or_else(err)?);
    if a == b {
        return Err(format!("{s:?} is an empty time range"));
    }
    Ok((a % (24 * 60), b % (24 * 60)))
}

/// Parses `"mon-fri"`, `"sat,sun"`, `"mon-fri,sun"` or `"all"` into weekdays (Monday first).
pub fn parse_days(s: &str) -> Result<[bool; 7], String> {
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let day = |d: &str| {
        let d = d.trim().to_ascii_lowercase();
        NAMES
            .iter()
            .position(|n| d.starts_with(n) && n.len() <= d.len())
            .ok_or_else(|| format!("{d:?} is not a day (mon, tue, wed, thu, fri, sat, sun)"))
    };
    let mut days = [false; 7];
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok([true; 7]);
    }
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    days[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[day(part)?] = true,
        }
    }
    Ok(days)
}

/// The period in progress of one rule.
#[derive(Debug)]
struct Period {
    key: (i64, i64),
    start_s: f64,
    applies: bool,
    summary: Summary,
}

/// An exceedance in progress.
#[derive(Debug)]
struct Active {
    id: String,
    start_s: f64,
    peak_db: f64,
    last_end_s: f64,
}

#[derive(Debug)]
struct RuleState {
    rule: LimitRule,
    period: Option<Period>,
    active: Option<Active>,
}

/// Evaluates every rule on the stream's blocks.
#[derive(Debug)]
pub struct Limits {
    rules: Vec<RuleState>,
    clock: Clock,
    offset: Option<f64>,
    sensor: String,
    model: String,
}

impl Limits {
    /// Rules on a stream whose periods `clock` aligns; `offset` is the calibration.
    pub fn new(
        rules: Vec<LimitRule>,
        clock: Clock,
        offset: Option<f64>,
        sensor: &str,
        model: &str,
    ) -> Self {
        Self {
            rules: rules
                .into_iter()
                .map(|rule| RuleState {
                    rule,
                    period: None,
                    active: None,
                })
                .collect(),
            clock,
            offset,
            sensor: sensor.to_owned(),
            model: model.to_owned(),
        }
    }

    /// (name, slug) of each rule, for MQTT states and discovery.
    pub fn names(&self) -> Vec<(String, String)> {
        self.rules
            .iter()
            .map(|r| (r.rule.name.clone(), crate::format::slugify(&r.rule.name)))
            .collect()
    }

    /// Adds a block; appends the events of the periods it closes to `out`.
    pub fn push(&mut self, b: &Block, out: &mut Vec<Event>) {
        if self.rules.is_empty() {
            return;
        }
        for i in 0..self.rules.len() {
            let at = self
                .clock
                .period(b.start_s, self.rules[i].rule.period.as_secs_f64());
            if self.rules[i]
                .period
                .as_ref()
                .is_some_and(|p| p.key != at.key)
            {
                self.close(i, out);
            }
            let applies = self.rules[i].rule.applies(at.minute, at.weekday);
            let period = self.rules[i].period.get_or_insert_with(|| Period {
                key: at.key,
                start_s: at.start_s,
                applies,
                summary: Summary::default(),
            });
            period.summary.push(b);
        }
    }

    /// Ends the stream: evaluates the periods in progress and ends open limit events.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        for i in 0..self.rules.len() {
            self.close(i, out);
            if let Some(a) = self.rules[i].active.take() {
                out.push(self.event(i, &a, EventState::End, None));
            }
        }
    }

    fn close(&mut self, i: usize, out: &mut Vec<Event>) {
        let Some(p) = self.rules[i].period.take() else {
            return;
        };
        let rule = &self.rules[i].rule;
        let period_s = rule.period.as_secs_f64();
        let levels = p.summary.levels(self.offset.unwrap_or(0.0));
        let value =
            (p.applies && p.summary.seconds >= 0.5 * period_s).then(|| rule.metric.value(&levels));
        let laeq = levels.laeq;
        let over = value.filter(|&v| v > rule.threshold_db);
        let end_s = p.start_s + period_s;
        match (over, self.rules[i].active.take()) {
            (Some(v), None) => {
                let a = Active {
                    id: ulid::Ulid::new().to_string(),
                    start_s: p.start_s.max(0.0),
                    peak_db: v,
                    last_end_s: end_s,
                };
                out.push(self.event(i, &a, EventState::Start, Some((v, laeq))));
                self.rules[i].active = Some(a);
            }
            (Some(v), Some(mut a)) => {
                a.peak_db = a.peak_db.max(v);
                a.last_end_s = end_s;
                out.push(self.event(i, &a, EventState::Update, Some((v, laeq))));
                self.rules[i].active = Some(a);
            }
            // Too little audio to judge a period inside the hours: the state stays.
            (None, Some(a)) if p.applies && value.is_none() => self.rules[i].active = Some(a),
            (None, Some(a)) => {
                out.push(self.event(i, &a, EventState::End, value.map(|v| (v, laeq))));
            }
            (None, None) => {}
        }
    }

    /// A limit event message; `figures` = (value of the period, its LAeq).
    fn event(&self, i: usize, a: &Active, state: EventState, figures: Option<(f64, f64)>) -> Event {
        let rule = &self.rules[i].rule;
        let end_s = (state == EventState::End).then_some(a.last_end_s);
        let base = self.clock.stream_start;
        Event {
            v: 1,
            id: a.id.clone(),
            sensor: self.sensor.clone(),
            label: rule.name.clone(),
            slug: crate::format::slugify(&rule.name),
            kind: EventKind::Limit,
            state,
            score: None,
            peak_score: None,
            start: rfc3339(base, a.start_s),
            end: end_s.map(|e| rfc3339(base, e)),
            duration_s: end_s.map(|e| round3(e - a.start_s)),
            laeq_db: figures.map(|f| f.1),
            model: self.model.clone(),
            seq: 0,
            start_offset_s: round3(a.start_s),
            end_offset_s: end_s.map(round3),
            limit: Some(LimitInfo {
                metric: rule.metric.name(),
                period_s: rule.period.as_secs_f64(),
                threshold_db: rule.threshold_db,
                value_db: figures.map_or(a.peak_db, |f| f.0),
                peak_db: a.peak_db,
                calibrated: self.offset.is_some(),
            }),
            clip: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_and_days_parse_with_clear_errors() {
        assert_eq!(parse_hours("07:00-19:00"), Ok((420, 1140)));
        assert_eq!(parse_hours("22:00-06:00"), Ok((1320, 360)));
        assert_eq!(parse_hours("00:00-24:00"), Ok((0, 0)));
        assert!(parse_hours("7-19").is_err());
        assert!(parse_hours("07:00-07:00").is_err());
        assert_eq!(
            parse_days("mon-fri"),
            Ok([true, true, true, true, true, false, false])
        );
        assert_eq!(
            parse_days("sat,sun"),
            Ok([false, false, false, false, false, true, true])
        );
        assert_eq!(
            parse_days("fri-mon"),
            Ok([true, false, false, false, true, true, true])
        );
        assert_eq!(parse_days("all"), Ok([true; 7]));
        assert!(parse_days("mon-fry").is_err());
    }

    #[test]
    fn overnight_hours_wrap_midnight() {
        let rule = LimitRule {
            name: "night".into(),
            metric: Metric::Laeq,
            period: Duration::from_secs(900),
            threshold_db: 45.0,
            hours: Some((22 * 60, 6 * 60)),
            days: [true; 7],
        };
        assert!(rule.applies(23 * 60, 0));
        assert!(rule.applies(60, 0));
        assert!(!rule.applies(12 * 60, 0));
    }
}
