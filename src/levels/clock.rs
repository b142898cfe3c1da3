//! Which period of a given length a moment of the stream falls in: aligned to local midnight
//! in a time zone (live reports and limits: 07:00–07:15, 07:15–07:30, …), or to the stream's
//! start (offline reports of a recording).

use jiff::tz::TimeZone;

/// The time base of a stream.
#[derive(Debug, Clone)]
pub struct Clock {
    /// Wall-clock time of stream offset 0.
    pub stream_start: jiff::Timestamp,
    /// Align periods to local midnight in this zone; `None`: to the stream start.
    pub zone: Option<TimeZone>,
}

/// One period of a stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Period {
    /// Identifies the period (local date as days since 1970, slot of the day).
    pub key: (i64, i64),
    /// Its start in stream seconds (negative when it began before the stream).
    pub start_s: f64,
    /// Local minute of the day and weekday (Monday = 0) of its start.
    pub minute: u32,
    /// Weekday of its start, Monday = 0.
    pub weekday: usize,
}

impl Clock {
    /// The period of length `period_s` that contains stream second `t`.
    pub fn period(&self, t: f64, period_s: f64) -> Period {
        let Some(tz) = &self.zone else {
            let slot = ((t + 1e-4) / period_s).floor();
            return Period {
                key: (0, slot as i64),
                start_s: slot * period_s,
                minute: 0,
                weekday: 0,
            };
        };
        let at = self
            .stream_start
            .checked_add(jiff::SignedDuration::from_secs_f64(t))
            .unwrap_or(self.stream_start)
            .to_zoned(tz.clone());
        let time = at.time();
        let into_day = f64::from(time.hour()) * 3600.0
            + f64::from(time.minute()) * 60.0
            + f64::from(time.second())
            + f64::from(time.subsec_nanosecond()) * 1e-9;
        // Block starts are whole samples: one within 0.1 ms of a boundary starts the new period.
        let slot = ((into_day + 1e-4) / period_s).floor();
        let days = at
            .date()
            .since(jiff::civil::date(1970, 1, 1))
            .map_or(0, |s| i64::from(s.get_days()));
        Period {
            key: (days, slot as i64),
            start_s: t - (into_day - slot * period_s),
            minute: (slot * period_s / 60.0) as u32,
            weekday: at.weekday().to_monday_zero_offset() as usize,
        }
    }

    /// Seconds from the stream start to the next multiple of 125 ms on the wall clock (0 when
    /// the stream starts on one): where live blocks are cut so they line up with the clock.
    pub fn block_phase(&self) -> f64 {
        if self.zone.is_none() {
            return 0.0;
        }
        let into = f64::from(self.stream_start.subsec_nanosecond()) * 1e-9 % 0.125;
        if into < 1e-9 {
            0.0
        } else {
            0.125 - into
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_follow_the_local_clock_or_the_stream() {
        let clock = Clock {
            stream_start: "2026-11-23T07:03:27.400Z".parse().expect("time"),
            zone: Some(TimeZone::UTC),
        };
        let p = clock.period(0.0, 900.0);
        assert!((p.start_s + 207.4).abs() < 1e-6, "{p:?}");
        assert_eq!((p.minute, p.weekday), (7 * 60, 0));
        assert!((clock.block_phase() - 0.1).abs() < 1e-9);
        // 07:15:00 is 692.6 s into the stream.
        let next = clock.period(692.6, 900.0);
        assert!(
            (next.start_s - 692.6).abs() < 1e-6 && next.key != p.key,
            "{next:?}"
        );
        assert_eq!(clock.period(692.5, 900.0).key, p.key);
        let stream = Clock {
            zone: None,
            ..clock
        };
        assert_eq!(stream.period(61.0, 60.0).start_s, 60.0);
        assert_eq!(stream.block_phase(), 0.0);
    }
}
