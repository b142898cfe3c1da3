//! Site reports: for each day, a self-contained HTML page (charts embedded as PNG) and CSV
//! tables of what the history kept — levels with the limits, hourly and 15-minute LAeq,
//! LA10/LA90, limit verdicts, named periods with Lden/Ldn, band spectra of the loudest
//! quarter-hours, the events, the calibration and the gaps.
//!
//! Data path: the history file → [`data::read`] (a day's rows) → [`day`] (the figures) →
//! [`page`] (HTML, CSV and charts in the day's folder) → an index of the days.

pub mod data;
mod page;
pub mod periods;

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::levels::LimitRule;
use data::{figures, EventSpan, Figures, Gap, LevelRow, Verdict};
use periods::{period_figures, NamedPeriod, PeriodFigures};

/// What a report needs besides the history.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// The sensor, for the titles.
    pub sensor: String,
    /// The local time zone: days run from local midnight to midnight.
    pub tz: jiff::tz::TimeZone,
    /// The limit rules to give verdicts for.
    pub limits: Vec<LimitRule>,
    /// Named periods (day, evening, night) and their Lden penalties.
    pub periods: Vec<NamedPeriod>,
    /// The LAFmax level that counts as a loud event at night.
    pub night_lamax_db: Option<f64>,
}

/// One day's figures.
#[derive(Debug, Clone)]
pub struct Day {
    /// The date.
    pub date: jiff::civil::Date,
    /// Its start and end, seconds since 1970.
    pub start: f64,
    /// Its end.
    pub end: f64,
    /// The level reports.
    pub levels: Vec<LevelRow>,
    /// The whole day's figures; `None` without measurements.
    pub total: Option<Figures>,
    /// (hour start, figures) for each hour with measurements.
    pub hours: Vec<(f64, Option<Figures>)>,
    /// (quarter-hour start, figures).
    pub quarters: Vec<(f64, Option<Figures>)>,
    /// The limit rules' periods.
    pub verdicts: Vec<Verdict>,
    /// Named periods, Lden, Ldn, night events.
    pub periods: PeriodFigures,
    /// Events overlapping the day.
    pub events: Vec<EventSpan>,
    /// Spans without measurements.
    pub gaps: Vec<Gap>,
    /// The source's restarts (a capture device or command that failed and was started
    /// again): (time, restarts so far in that run).
    pub restarts: Vec<(f64, u64)>,
    /// The calibration offset in force (from the last start note), and whether the levels
    /// are calibrated.
    pub calibration: (Option<f64>, bool),
    /// The model of the last start note.
    pub model: Option<String>,
}

impl Day {
    /// The local time of `t` (seconds since 1970).
    pub fn local(&self, t: f64, tz: &jiff::tz::TimeZone) -> jiff::Zoned {
        zoned(t, tz)
    }
}

/// `t` (seconds since 1970) in `tz`.
pub fn zoned(t: f64, tz: &jiff::tz::TimeZone) -> jiff::Zoned {
    jiff::Timestamp::from_millisecond((t * 1000.0).round() as i64)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(tz.clone())
}

/// Seconds since 1970 of local midnight starting `date` in `tz`.
pub fn midnight(date: jiff::civil::Date, tz: &jiff::tz::TimeZone) -> anyhow::Result<f64> {
    let z = date.to_zoned(tz.clone())?;
    Ok(z.timestamp().as_millisecond() as f64 / 1000.0)
}

/// The figures of `date` from the history `db`; `now` caps the gaps of a day not over yet.
pub fn day(
    db: &Connection,
    date: jiff::civil::Date,
    settings: &ReportSettings,
    now: f64,
) -> anyhow::Result<Day> {
    let tz = &settings.tz;
    let start = midnight(date, tz)?;
    let end = midnight(date.tomorrow()?, tz)?;
    let rows = data::read(db, start, end)?;
    let levels = rows.levels.clone();
    let slots = |step: f64| -> Vec<(f64, Option<Figures>)> {
        let mut out = Vec::new();
        let mut t = start;
        while t < end - 1e-6 {
            let next = (t + step).min(end);
            out.push((
                t,
                figures(levels.iter().filter(|r| r.start >= t && r.start < next)),
            ));
            t = next;
        }
        out
    };
    let verdicts = settings
        .limits
        .iter()
        .flat_map(|rule| data::verdicts(rule, &levels, start, end, tz))
        .collect();
    let minute_of = |r: &LevelRow| {
        let z = zoned(r.start, tz);
        u32::from(z.hour() as u8) * 60 + u32::from(z.minute() as u8)
    };
    let periods = period_figures(
        &levels,
        &settings.periods,
        minute_of,
        settings.night_lamax_db,
    );
    let last_start: Option<String> = db
        .query_row(
            "SELECT detail FROM notes WHERE kind = 'start' AND time_unix < ?1 \
             ORDER BY time_unix DESC LIMIT 1",
            [end],
            |r| r.get(0),
        )
        .ok();
    let note: serde_json::Value = last_start
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let calibrated = levels.iter().any(|r| r.calibrated);
    Ok(Day {
        date,
        start,
        end,
        total: figures(&levels),
        hours: slots(3600.0),
        quarters: slots(900.0),
        verdicts,
        periods,
        gaps: data::gaps(&rows, start, end, now),
        restarts: data::restarts(&rows),
        events: rows.events,
        calibration: (note["offset_db"].as_f64(), calibrated),
        model: note["model"].as_str().map(str::to_owned),
        levels,
    })
}

/// Writes the reports of the days `from` to `to` (inclusive) into `out`: a folder per day
/// (`report.html` and the CSV tables) and `index.html`. Returns the days' folders.
pub fn write(
    db: &Connection,
    from: jiff::civil::Date,
    to: jiff::civil::Date,
    settings: &ReportSettings,
    out: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
    let days = (to - from).get_days() + 1;
    anyhow::ensure!(days <= 366, "{days} days asked for: at most 366 at once");
    std::fs::create_dir_all(out).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    let now = crate::archive::now();
    let progress = indicatif::ProgressBar::new(days as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} days {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut written = Vec::new();
    let mut summary = Vec::new();
    let mut date = from;
    while date <= to {
        progress.set_message(date.to_string());
        let d = day(db, date, settings, now)?;
        let dir = out.join(date.to_string());
        page::write_day(&d, settings, &dir)?;
        summary.push(d);
        written.push(dir);
        progress.inc(1);
        date = date.tomorrow()?;
    }
    progress.finish_and_clear();
    page::write_index(&summary, settings, out)?;
    Ok(written)
}
