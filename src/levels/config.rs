//! The `[levels]` table and its `[[levels.limit]]` rules: as written, and validated.

use std::time::Duration;

use serde::Deserialize;

use super::bands::BandScale;
use super::weighting::Weighting;
use super::{parse_schedule, LevelsConfig, LimitRule, Metric};
use crate::config::values::duration;
use crate::report::periods::NamedPeriod;

/// `[levels]`.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct RawLevels {
    pub enabled: bool,
    pub interval: String,
    pub offset_db: Option<f64>,
    pub stdout: bool,
    pub timezone: Option<String>,
    pub bands: String,
    pub bands_weighting: String,
    pub night_lamax_db: Option<f64>,
    pub period: Vec<RawPeriod>,
    pub limit: Vec<RawLimit>,
}

/// `[[levels.period]]`: a named part of the day for reports and Lden.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct RawPeriod {
    pub name: Option<String>,
    pub hours: Option<String>,
    pub penalty_db: f64,
}

impl Default for RawLevels {
    fn default() -> Self {
        Self {
            enabled: false,
            interval: "60s".into(),
            offset_db: None,
            stdout: true,
            timezone: None,
            bands: "off".into(),
            bands_weighting: "Z".into(),
            night_lamax_db: None,
            period: Vec::new(),
            limit: Vec::new(),
        }
    }
}

/// `[[levels.limit]]`.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct RawLimit {
    pub name: Option<String>,
    pub metric: Option<String>,
    pub period: Option<String>,
    pub threshold_db: Option<f64>,
    pub hours: Option<String>,
    pub days: Option<String>,
}

/// The `[levels]` table; errors go to `err` with their key paths.
pub(crate) fn validate(raw: &RawLevels, err: &mut dyn FnMut(&str, String)) -> LevelsConfig {
    let interval = duration(&raw.interval, "levels.interval", err);
    let millis = interval.as_millis();
    if millis < 125 || !millis.is_multiple_of(125) || interval.as_secs() > 86_400 {
        err(
            "levels.interval",
            format!(
                "{:?} must be a whole number of 125 ms blocks between 125ms and 24h",
                raw.interval
            ),
        );
    }
    let offset_db = raw.offset_db.filter(|o| match plausible_offset(*o) {
        Ok(_) => true,
        Err(e) => {
            err("levels.offset_db", e);
            false
        }
    });
    let timezone = match raw.timezone.as_deref() {
        None => jiff::tz::TimeZone::system(),
        Some("UTC") | Some("utc") => jiff::tz::TimeZone::UTC,
        Some(name) => jiff::tz::TimeZone::get(name).unwrap_or_else(|e| {
            err(
                "levels.timezone",
                format!("{name:?} is not a known time zone ({e}); e.g. \"Europe/Berlin\""),
            );
            jiff::tz::TimeZone::UTC
        }),
    };
    let mut limits: Vec<LimitRule> = Vec::new();
    for (i, l) in raw.limit.iter().enumerate() {
        let key = format!("levels.limit[{i}]");
        let metric_name = l.metric.as_deref().unwrap_or("laeq");
        let metric = Metric::parse(metric_name).unwrap_or_else(|| {
            let names: Vec<_> = Metric::ALL.iter().map(|(n, _)| *n).collect();
            err(
                &format!("{key}.metric"),
                format!("{metric_name:?} is not one of {}", names.join(", ")),
            );
            Metric::Laeq
        });
        let period_text = l.period.as_deref().unwrap_or("15m");
        let period = duration(period_text, &format!("{key}.period"), err);
        let secs = period.as_secs();
        if period.subsec_nanos() != 0 || secs == 0 || !86_400u64.is_multiple_of(secs) {
            err(
                &format!("{key}.period"),
                format!(
                    "{period_text:?} must be whole seconds that divide a day (e.g. 15m, 1h, 12h)"
                ),
            );
        }
        let period = Duration::from_secs(secs.clamp(1, 86_400));
        let threshold_db = match l.threshold_db {
            Some(t) if t.is_finite() => t,
            Some(t) => {
                err(
                    &format!("{key}.threshold_db"),
                    format!("{t} is not a level"),
                );
                0.0
            }
            None => {
                err(
                    &format!("{key}.threshold_db"),
                    "missing: the limit in dB".into(),
                );
                0.0
            }
        };
        let (hours, days) = parse_schedule(l.hours.as_deref(), l.days.as_deref(), &key, err);
        let name = l.name.clone().unwrap_or_else(|| {
            format!(
                "{} {} > {threshold_db} dB",
                metric.label(),
                humantime::format_duration(period)
            )
        });
        if crate::format::slugify(&name).is_empty() {
            err(
                &format!("{key}.name"),
                format!("{name:?} needs a letter or digit"),
            );
        } else if limits
            .iter()
            .any(|r| crate::format::slugify(&r.name) == crate::format::slugify(&name))
        {
            err(
                &format!("{key}.name"),
                format!("{name:?} is used by another limit"),
            );
        }
        limits.push(LimitRule {
            name,
            metric,
            period,
            threshold_db,
            hours,
            days,
        });
    }
    let bands = match raw.bands.as_str() {
        "off" => None,
        scale => match scale.parse::<BandScale>() {
            Ok(scale) => Some(scale),
            Err(e) => {
                err("levels.bands", format!("{e} (or \"off\")"));
                None
            }
        },
    };
    let bands_weighting = parse_band_weighting(&raw.bands_weighting).unwrap_or_else(|e| {
        err("levels.bands_weighting", e);
        Weighting::Z
    });
    let mut periods = Vec::new();
    for (i, p) in raw.period.iter().enumerate() {
        let key = format!("levels.period[{i}]");
        let name = p.name.clone().unwrap_or_default();
        if name.trim().is_empty() {
            err(&format!("{key}.name"), "missing: e.g. \"day\"".into());
        } else if periods.iter().any(|q: &NamedPeriod| q.name == name) {
            err(
                &format!("{key}.name"),
                format!("{name:?} is used by another period"),
            );
        }
        let hours = match p.hours.as_deref().map(super::parse_hours) {
            Some(Ok(h)) => h,
            Some(Err(e)) => {
                err(&format!("{key}.hours"), e);
                (0, 0)
            }
            None => {
                err(
                    &format!("{key}.hours"),
                    "missing: e.g. \"07:00-19:00\"".into(),
                );
                (0, 0)
            }
        };
        if !p.penalty_db.is_finite() || !(0.0..=20.0).contains(&p.penalty_db) {
            err(
                &format!("{key}.penalty_db"),
                format!("{} must be from 0 to 20", p.penalty_db),
            );
        }
        periods.push(NamedPeriod {
            name,
            hours,
            penalty_db: p.penalty_db,
        });
    }
    if periods.is_empty() {
        periods = crate::report::periods::eu_periods();
    }
    let night_lamax_db = raw.night_lamax_db.filter(|v| {
        let ok = v.is_finite();
        if !ok {
            err("levels.night_lamax_db", format!("{v} is not a level"));
        }
        ok
    });
    LevelsConfig {
        enabled: raw.enabled,
        interval,
        offset_db,
        stdout: raw.stdout,
        timezone,
        bands: bands.map(|scale| (scale, bands_weighting)),
        periods,
        night_lamax_db,
        limits,
    }
}

/// "Z" or "A" (any case): the weighting of band levels.
pub fn parse_band_weighting(s: &str) -> Result<Weighting, String> {
    match s {
        "Z" | "z" => Ok(Weighting::Z),
        "A" | "a" => Ok(Weighting::A),
        other => Err(format!("{other:?}: expected \"Z\" or \"A\"")),
    }
}

/// A calibration offset (dBFS → dB SPL) as `levels.offset_db` and `levels --offset` take it:
/// finite, from -100 to 250 dB.
pub fn plausible_offset(o: f64) -> Result<f64, String> {
    match o.is_finite() && (-100.0..=250.0).contains(&o) {
        true => Ok(o),
        false => Err(format!(
            "{o} is not a plausible calibration offset (a number of dB from -100 to 250)"
        )),
    }
}
