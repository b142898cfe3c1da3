//! Named periods of a day (day, evening, night), Lden and Ldn, and the count of loud LAFmax
//! events at night.

use super::data::{energy_mean, LevelRow};

/// A named part of the day and its penalty in Lden.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedPeriod {
    /// "day", "evening", "night", or any name.
    pub name: String,
    /// Local minutes after midnight [from, to); to ≤ from runs past midnight.
    pub hours: (u32, u32),
    /// Added to the period's LAeq in Lden (EU: 0, 5, 10).
    pub penalty_db: f64,
}

impl NamedPeriod {
    /// `name` from hour `from` to hour `to` (local, may wrap midnight) with `penalty_db`.
    pub fn new(name: &str, from: u32, to: u32, penalty_db: f64) -> Self {
        Self {
            name: name.into(),
            hours: (from * 60, to * 60),
            penalty_db,
        }
    }

    /// Minutes of the day it covers.
    pub fn minutes(&self) -> u32 {
        let (a, b) = self.hours;
        if a < b {
            b - a
        } else {
            1440 - a + b
        }
    }

    /// Whether local minute `m` (0–1439) is in it.
    pub fn contains(&self, m: u32) -> bool {
        crate::levels::in_window(Some(self.hours), &[true; 7], m, 0)
    }
}

/// The EU's periods (Directive 2002/49/EC): day 07–19, evening 19–23 (+5 dB), night 23–07
/// (+10 dB).
pub fn eu_periods() -> Vec<NamedPeriod> {
    vec![
        NamedPeriod::new("day", 7, 19, 0.0),
        NamedPeriod::new("evening", 19, 23, 5.0),
        NamedPeriod::new("night", 23, 7, 10.0),
    ]
}

/// The figures of the periods over one day's rows; `minute_of` gives a row's local minute.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodFigures {
    /// (period, LAeq or `None` without measurements, seconds measured).
    pub laeq: Vec<(String, Option<f64>, f64)>,
    /// Lden over the named periods (penalties applied), when each has measurements and
    /// together they cover the day once.
    pub lden: Option<f64>,
    /// Ldn: day 07–22, night 22–07 + 10 dB.
    pub ldn: Option<f64>,
    /// Loud events at night: runs of reports whose LAFmax is over the threshold.
    pub night_events: Option<(f64, usize)>,
}

/// Computes the period figures of a day.
pub fn period_figures(
    rows: &[LevelRow],
    periods: &[NamedPeriod],
    minute_of: impl Fn(&LevelRow) -> u32,
    night_lamax_db: Option<f64>,
) -> PeriodFigures {
    // (name, LAeq, seconds measured) of a period
    let laeq_of = |p: &NamedPeriod| -> (String, Option<f64>, f64) {
        let inside: Vec<&LevelRow> = rows.iter().filter(|r| p.contains(minute_of(r))).collect();
        (
            p.name.clone(),
            energy_mean(inside.iter().map(|r| (r.laeq, r.seconds))),
            inside.iter().map(|r| r.seconds).sum(),
        )
    };
    let laeq: Vec<(String, Option<f64>, f64)> = periods.iter().map(laeq_of).collect();
    let covers_day = periods.iter().map(NamedPeriod::minutes).sum::<u32>() == 1440;
    let lden = weighted(periods, &laeq).filter(|_| covers_day);
    let dn = [
        NamedPeriod::new("day", 7, 22, 0.0),
        NamedPeriod::new("night", 22, 7, 10.0),
    ];
    let dn_laeq: Vec<(String, Option<f64>, f64)> = dn.iter().map(laeq_of).collect();
    let ldn = weighted(&dn, &dn_laeq);
    let night_events = night_lamax_db.and_then(|t| {
        let night = periods.iter().find(|p| p.name == "night")?;
        let mut count = 0;
        let mut above = false;
        for r in rows.iter().filter(|r| night.contains(minute_of(r))) {
            if r.lamax > t && !above {
                count += 1;
            }
            above = r.lamax > t;
        }
        Some((t, count))
    });
    PeriodFigures {
        laeq,
        lden,
        ldn,
        night_events,
    }
}

/// 10·log10(Σ (minutesₚ/1440)·10^((Lₚ + penaltyₚ)/10)) when every period has a level.
fn weighted(periods: &[NamedPeriod], laeq: &[(String, Option<f64>, f64)]) -> Option<f64> {
    let mut sum = 0.0;
    for (p, (_, l, _)) in periods.iter().zip(laeq) {
        let l = (*l)?;
        sum += f64::from(p.minutes()) / 1440.0 * 10f64.powf((l + p.penalty_db) / 10.0);
    }
    (!periods.is_empty()).then(|| 10.0 * sum.log10())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(minute: u32, laeq: f64, lamax: f64) -> LevelRow {
        LevelRow {
            start: f64::from(minute) * 60.0,
            end: f64::from(minute + 1) * 60.0,
            seconds: 60.0,
            laeq,
            lceq: laeq,
            lzeq: laeq,
            lamax,
            la10: laeq,
            la90: laeq,
            calibrated: true,
            bands: Vec::new(),
        }
    }

    #[test]
    fn lden_of_a_flat_day_adds_the_penalties_by_duration() {
        // 60 dB all day: Lden = 10 log10(12/24 + 4/24·10^0.5 + 8/24·10^1) + 60 = 66.4 dB
        let rows: Vec<LevelRow> = (0..1440).map(|m| row(m, 60.0, 70.0)).collect();
        let f = period_figures(
            &rows,
            &eu_periods(),
            |r| (r.start / 60.0) as u32,
            Some(65.0),
        );
        let want = 60.0 + 10.0 * (0.5 + 4.0 / 24.0 * 10f64.sqrt() + 8.0 / 24.0 * 10.0).log10();
        assert!((f.lden.expect("lden") - want).abs() < 1e-9);
        // Ldn: 15 h at 60, 9 h at 70
        let ldn = 60.0 + 10.0 * (15.0f64 / 24.0 + 9.0 / 24.0 * 10.0).log10();
        assert!((f.ldn.expect("ldn") - ldn).abs() < 1e-9);
        // every minute of the night is over 65 dB: one long event
        assert_eq!(f.night_events, Some((65.0, 1)));
    }

    #[test]
    fn night_events_count_runs_over_the_threshold() {
        let mut rows: Vec<LevelRow> = (0..1440).map(|m| row(m, 40.0, 50.0)).collect();
        for m in [60, 61, 62, 120, 300, 23 * 60 + 30, 12 * 60] {
            rows[m].lamax = 80.0;
        }
        let f = period_figures(
            &rows,
            &eu_periods(),
            |r| (r.start / 60.0) as u32,
            Some(65.0),
        );
        // 01:00–01:02 is one, 02:00, 05:00 and 23:30 three more; noon is not night
        assert_eq!(f.night_events, Some((65.0, 4)));
        assert_eq!(f.laeq[0].0, "day");
        assert!((f.laeq[0].1.expect("day") - 40.0).abs() < 1e-9);
    }
}
