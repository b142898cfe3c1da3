//! What a day's report is made of, read from the history: the level rows, the events joined
//! from their messages, the notes; and the figures computed from them (hourly and 15-minute
//! LAeq, LA10/LA90, limit verdicts, named periods, Lden/Ldn, night LAFmax counts, gaps).

use rusqlite::Connection;

use crate::levels::{exceeded, LimitRule, Metric};

/// One level report as kept.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelRow {
    /// Start and end, seconds since 1970.
    pub start: f64,
    /// End.
    pub end: f64,
    /// Seconds measured.
    pub seconds: f64,
    /// LAeq, LCeq, LZeq, LAFmax, LA10, LA90 of the interval, dB.
    pub laeq: f64,
    /// LCeq.
    pub lceq: f64,
    /// LZeq.
    pub lzeq: f64,
    /// LAFmax.
    pub lamax: f64,
    /// LA10.
    pub la10: f64,
    /// LA90.
    pub la90: f64,
    /// Calibrated (dB SPL) or dBFS.
    pub calibrated: bool,
    /// Band levels ("63", dB), when measured.
    pub bands: Vec<(String, f64)>,
}

/// One event: its messages joined.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSpan {
    /// The event id.
    pub id: String,
    /// sound, limit or level.
    pub kind: String,
    /// Label or rule name.
    pub label: String,
    /// Start, seconds since 1970.
    pub start: f64,
    /// End; `None` while it was still open when the history ends.
    pub end: Option<f64>,
}

/// A note: the daemon started or stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// When, seconds since 1970.
    pub time: f64,
    /// "start" or "stop".
    pub kind: String,
    /// JSON details.
    pub detail: serde_json::Value,
}

/// Everything between two times.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    /// Level reports that start within the span, in order.
    pub levels: Vec<LevelRow>,
    /// Events that overlap it.
    pub events: Vec<EventSpan>,
    /// Notes within it.
    pub notes: Vec<Note>,
}

/// Reads what lies between `from` and `to` (seconds since 1970).
pub fn read(db: &Connection, from: f64, to: f64) -> anyhow::Result<Rows> {
    let mut levels = Vec::new();
    let mut q = db.prepare(
        "SELECT start_unix, end_unix, interval_s, laeq, lceq, lzeq, lamax, la10, la90, \
         calibrated, line FROM levels WHERE start_unix >= ?1 AND start_unix < ?2 \
         ORDER BY start_unix, id",
    )?;
    let mut rows = q.query([from, to])?;
    while let Some(r) = rows.next()? {
        let line: String = r.get(10)?;
        levels.push(LevelRow {
            start: r.get(0)?,
            end: r.get(1)?,
            seconds: r.get(2)?,
            laeq: r.get(3)?,
            lceq: r.get(4)?,
            lzeq: r.get(5)?,
            lamax: r.get(6)?,
            la10: r.get(7)?,
            la90: r.get(8)?,
            calibrated: r.get(9)?,
            bands: bands_of(&line),
        });
    }
    let mut events: Vec<EventSpan> = Vec::new();
    let mut index = std::collections::HashMap::new();
    // events that began up to a day before the span (a longer one shows from its second day
    // as open from the start of the span's rows)
    let mut q = db.prepare(
        "SELECT event_id, kind, label, state, start_unix, end_unix FROM events \
         WHERE start_unix >= ?1 - 86400 AND start_unix < ?2 ORDER BY start_unix, id",
    )?;
    let mut rows = q.query([from, to])?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        let end: Option<f64> = r.get(5)?;
        let state: String = r.get(3)?;
        let end = if state == "end" { end } else { None };
        match index.get(&id) {
            Some(&i) => {
                let e: &mut EventSpan = &mut events[i];
                e.end = end.or(e.end);
            }
            None => {
                index.insert(id.clone(), events.len());
                events.push(EventSpan {
                    id,
                    kind: r.get(1)?,
                    label: r.get(2)?,
                    start: r.get(4)?,
                    end,
                });
            }
        }
    }
    events.retain(|e| e.end.is_none_or(|end| end >= from));
    let mut notes = Vec::new();
    let mut q = db.prepare(
        "SELECT time_unix, kind, detail FROM notes WHERE time_unix >= ?1 AND time_unix < ?2 \
         ORDER BY time_unix, id",
    )?;
    let mut rows = q.query([from, to])?;
    while let Some(r) = rows.next()? {
        let detail: String = r.get(2)?;
        notes.push(Note {
            time: r.get(0)?,
            kind: r.get(1)?,
            detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
        });
    }
    Ok(Rows {
        levels,
        events,
        notes,
    })
}

/// The band levels of a report line, lowest band first.
fn bands_of(line: &str) -> Vec<(String, f64)> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return Vec::new();
    };
    let mut out: Vec<(String, f64)> = v["bands"]["leq"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| {
        let f = |s: &str| s.parse::<f64>().unwrap_or(0.0);
        f(&a.0).total_cmp(&f(&b.0))
    });
    out
}

/// The energy average of levels weighted by seconds: 10·log10(Σ tᵢ·10^(Lᵢ/10) / Σ tᵢ).
pub fn energy_mean(values: impl IntoIterator<Item = (f64, f64)>) -> Option<f64> {
    let (mut e, mut t) = (0.0, 0.0);
    for (level, seconds) in values {
        e += seconds * 10f64.powf(level / 10.0);
        t += seconds;
    }
    (t > 0.0).then(|| 10.0 * (e / t).log10())
}

/// The figures of a set of level rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    /// Seconds measured.
    pub seconds: f64,
    /// LAeq.
    pub laeq: f64,
    /// Highest LAFmax.
    pub lamax: f64,
    /// Level exceeded 10 % of the time, of the intervals' LAeq values.
    pub la10: f64,
    /// Level exceeded 90 % of the time, of the intervals' LAeq values.
    pub la90: f64,
}

/// The figures of `rows`; `None` when there are none.
pub fn figures<'a>(rows: impl IntoIterator<Item = &'a LevelRow>) -> Option<Figures> {
    let rows: Vec<&LevelRow> = rows.into_iter().collect();
    let laeq = energy_mean(rows.iter().map(|r| (r.laeq, r.seconds)))?;
    let mut sorted: Vec<f64> = rows.iter().map(|r| r.laeq).collect();
    sorted.sort_by(f64::total_cmp);
    Some(Figures {
        seconds: rows.iter().map(|r| r.seconds).sum(),
        laeq,
        lamax: rows
            .iter()
            .map(|r| r.lamax)
            .fold(f64::NEG_INFINITY, f64::max),
        la10: exceeded(&sorted, 0.10),
        la90: exceeded(&sorted, 0.90),
    })
}

/// A rule's metric over `rows`.
pub fn metric_value(metric: Metric, rows: &[&LevelRow]) -> Option<f64> {
    let mean = |f: fn(&LevelRow) -> f64| energy_mean(rows.iter().map(|r| (f(r), r.seconds)));
    let fig = figures(rows.iter().copied())?;
    match metric {
        Metric::Laeq => Some(fig.laeq),
        Metric::Lceq => mean(|r| r.lceq),
        Metric::Lzeq => mean(|r| r.lzeq),
        Metric::Lamax => Some(fig.lamax),
        Metric::La10 => Some(fig.la10),
        Metric::La90 => Some(fig.la90),
    }
}

/// One period of a limit rule and its verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The rule's name.
    pub rule: String,
    /// The period, seconds since 1970.
    pub start: f64,
    /// Its end.
    pub end: f64,
    /// The metric's value, dB; `None` when nothing was measured.
    pub value: Option<f64>,
    /// The threshold, dB.
    pub threshold: f64,
    /// Seconds measured of the period.
    pub seconds: f64,
}

impl Verdict {
    /// "over", "ok" or "no data".
    pub fn word(&self) -> &'static str {
        match self.value {
            Some(v) if v > self.threshold => "over",
            Some(_) => "ok",
            None => "no data",
        }
    }
}

/// The periods of `rule` that start within the day [`day_start`, `day_end`), with the rule's
/// hours and days in the time zone `tz`.
pub fn verdicts(
    rule: &LimitRule,
    rows: &[LevelRow],
    day_start: f64,
    day_end: f64,
    tz: &jiff::tz::TimeZone,
) -> Vec<Verdict> {
    let step = rule.period.as_secs_f64();
    let mut out = Vec::new();
    let mut t = day_start;
    while t < day_end - 1e-6 {
        let end = (t + step).min(day_end);
        if rule_applies(rule, t, tz) {
            let inside: Vec<&LevelRow> = rows
                .iter()
                .filter(|r| r.start >= t && r.start < end)
                .collect();
            out.push(Verdict {
                rule: rule.name.clone(),
                start: t,
                end,
                value: metric_value(rule.metric, &inside),
                threshold: rule.threshold_db,
                seconds: inside.iter().map(|r| r.seconds).sum(),
            });
        }
        t = end;
    }
    out
}

fn rule_applies(rule: &LimitRule, t: f64, tz: &jiff::tz::TimeZone) -> bool {
    let Ok(ts) = jiff::Timestamp::from_millisecond((t * 1000.0).round() as i64) else {
        return false;
    };
    let local = ts.to_zoned(tz.clone());
    let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
    let day = local.weekday().to_monday_zero_offset() as usize;
    crate::levels::in_window(rule.hours, &rule.days, minute as u32, day)
}

/// A span without level reports longer than three report intervals.
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    /// From (the end of the last report before it, or the day's start).
    pub start: f64,
    /// To.
    pub end: f64,
    /// Why, as far as the notes tell.
    pub why: String,
}

/// The source's restarts noted on the day: (time, restarts so far in that run).
pub fn restarts(rows: &Rows) -> Vec<(f64, u64)> {
    rows.notes
        .iter()
        .filter(|n| n.kind == "source restart")
        .map(|n| (n.time, n.detail["restarts_total"].as_u64().unwrap_or(0)))
        .collect()
}

/// The gaps of a day's rows within [`from`, `to`), `to` capped at `now`.
pub fn gaps(rows: &Rows, from: f64, to: f64, now: f64) -> Vec<Gap> {
    let to = to.min(now);
    let interval = rows
        .levels
        .iter()
        .map(|r| r.seconds)
        .fold(0.0f64, f64::max)
        .max(1.0);
    let mut out = Vec::new();
    let mut last = from;
    let ends: Vec<(f64, f64)> = rows.levels.iter().map(|r| (r.start, r.end)).collect();
    for (start, end) in ends.into_iter().chain([(to, to)]) {
        if start - last > 3.0 * interval {
            let started = rows
                .notes
                .iter()
                .find(|n| n.kind == "start" && n.time >= last && n.time <= start + 1.0);
            let stopped = rows
                .notes
                .iter()
                .any(|n| n.kind == "stop" && n.time >= last - 1.0 && n.time <= start);
            let why = match (stopped, started) {
                (true, Some(_)) => "daemon stopped, then started again",
                (false, Some(_)) => "daemon down (it did not stop cleanly), then started again",
                (true, None) => "daemon stopped",
                (false, None) => "no measurements",
            };
            out.push(Gap {
                start: last,
                end: start,
                why: why.into(),
            });
        }
        last = last.max(end);
    }
    out
}
