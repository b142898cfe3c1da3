//! Level reports: 125 ms blocks summed over an interval into LAeq, LCeq, LZeq, LAFmax, LAFmin,
//! LASmax, LA10 and LA90, and the JSON line (and MQTT payload) that carries them.

use serde::Serialize;

use super::bands::BandSet;
use super::clock::Clock;
use super::meter::{to_db, Block, BLOCKS_PER_S};
use super::weighting::Weighting;
use crate::format::round3;

/// Running sums of the blocks of one interval.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Seconds of audio summed.
    pub seconds: f64,
    a: f64,
    c: f64,
    z: f64,
    af_max: f64,
    af_min: Option<f64>,
    as_max: f64,
    /// Mean squares of the blocks (125 ms LAeq), for the percentiles.
    short: Vec<f64>,
    /// Band mean squares × seconds, when the blocks carry bands.
    bands: Vec<f64>,
}

/// The levels of an interval in dB (dB SPL when calibrated, else dBFS).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Levels {
    /// A-weighted equivalent continuous level.
    pub laeq: f64,
    /// C-weighted equivalent continuous level.
    pub lceq: f64,
    /// Z-weighted (flat) equivalent continuous level.
    pub lzeq: f64,
    /// Highest A-weighted, F-time-weighted level (LAFmax).
    pub lamax: f64,
    /// Lowest A-weighted, F-time-weighted level (LAFmin); null until the F average settled.
    pub lamin: Option<f64>,
    /// Highest A-weighted, S-time-weighted level (LASmax).
    pub lasmax: f64,
    /// Level exceeded 10 % of the time (from the 125 ms LAeq values).
    pub la10: f64,
    /// Level exceeded 90 % of the time: the background.
    pub la90: f64,
}

impl Summary {
    /// Adds one block.
    pub fn push(&mut self, b: &Block) {
        self.seconds += b.seconds;
        self.a += b.a * b.seconds;
        self.c += b.c * b.seconds;
        self.z += b.z * b.seconds;
        self.af_max = self.af_max.max(b.af_max);
        self.as_max = self.as_max.max(b.as_max);
        if let Some(m) = b.af_min {
            self.af_min = Some(self.af_min.map_or(m, |x| x.min(m)));
        }
        self.short.push(b.a);
        if let Some(bands) = &b.bands {
            let v = bands.values();
            self.bands.resize(v.len(), 0.0);
            for (sum, ms) in self.bands.iter_mut().zip(v) {
                *sum += f64::from(*ms) * b.seconds;
            }
        }
    }

    /// The band levels in dB of `set` with the calibration `offset`; `None` without bands.
    pub fn band_levels(&self, set: &BandSet, offset: f64) -> Option<BandLevels> {
        if self.bands.len() != set.bands.len() {
            return None;
        }
        let t = self.seconds.max(1e-12);
        let leq = set
            .bands
            .iter()
            .zip(&self.bands)
            .enumerate()
            .map(|(i, (band, e))| {
                (
                    band.nominal,
                    round2(to_db(e / t, offset) + set.correction_db(i)),
                )
            })
            .collect();
        Some(BandLevels {
            scale: set.scale.name(),
            weighting: match set.weighting {
                Weighting::A => "A",
                Weighting::C => "C",
                Weighting::Z => "Z",
            },
            leq: Ordered(leq),
        })
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.short.is_empty()
    }

    /// The levels in dB with the calibration `offset`.
    pub fn levels(&self, offset: f64) -> Levels {
        let t = self.seconds.max(1e-12);
        let db = |ms: f64| round2(to_db(ms, offset));
        let mut sorted = self.short.clone();
        sorted.sort_by(f64::total_cmp);
        Levels {
            laeq: db(self.a / t),
            lceq: db(self.c / t),
            lzeq: db(self.z / t),
            lamax: db(self.af_max),
            lamin: self.af_min.map(db),
            lasmax: db(self.as_max),
            la10: db(exceeded(&sorted, 0.10)),
            la90: db(exceeded(&sorted, 0.90)),
        }
    }
}

/// The value exceeded a `fraction` of the time in ascending `sorted` values (nearest rank:
/// the smallest value with at most `fraction` of the values above it).
pub fn exceeded(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let n = sorted.len();
    let rank = ((1.0 - fraction) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The band levels of a report (`"bands"`): `{"scale": "third", "weighting": "Z", "leq":
/// {"25": 41.2, "31.5": 40.8, …}}`, keyed by nominal mid-band frequency, lowest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BandLevels {
    /// "octave" or "third".
    pub scale: &'static str,
    /// "Z" (as filtered) or "A" (corrected at each mid-band frequency).
    pub weighting: &'static str,
    /// Leq of each band in dB.
    pub leq: BandMap,
}

/// (nominal frequency, dB) pairs, written as a JSON object in this order.
pub type BandMap = Ordered<&'static str, f64>;

/// (key, value) pairs, written as a JSON object in their order.
#[derive(Debug, Clone, PartialEq)]
pub struct Ordered<K, V>(pub Vec<(K, V)>);

impl<K: Serialize, V: Serialize> Serialize for Ordered<K, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// One level report, as printed and published (`"type": "level"`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelReport {
    /// Schema version.
    pub v: u32,
    /// Always "level" (tells report lines from event lines on stdout).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Sensor id.
    pub sensor: String,
    /// RFC 3339 UTC start of the interval.
    pub start: String,
    /// RFC 3339 UTC end of the interval.
    pub end: String,
    /// Start, seconds from the stream start.
    pub start_offset_s: f64,
    /// End, seconds from the stream start.
    pub end_offset_s: f64,
    /// Seconds of audio measured (the configured interval, shorter at the end of a stream).
    pub interval_s: f64,
    /// The levels.
    #[serde(flatten)]
    pub levels: Levels,
    /// Octave or third-octave band levels, when `[levels] bands` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bands: Option<BandLevels>,
    /// True when a calibration offset is set (levels in dB SPL), false for dBFS.
    pub calibrated: bool,
    /// "dB" (SPL) when calibrated, "dBFS" otherwise.
    pub unit: &'static str,
}

/// Cuts the blocks of a stream into report intervals, aligned by a [`Clock`].
#[derive(Debug, Clone)]
pub struct Reporter {
    interval_s: f64,
    sensor: String,
    clock: Clock,
    offset: Option<f64>,
    /// (period key, first block's start) of the interval in progress.
    current: Option<((i64, i64), f64)>,
    summary: Summary,
    bands: Option<BandSet>,
}

impl Reporter {
    /// Reports every `interval` on `clock` (on the local clock: 60 s reports run from :00 to
    /// :00, the first and last of a stream being shorter); `offset` is the calibration
    /// (dBFS → dB SPL), `None` when uncalibrated.
    pub fn new(
        interval: std::time::Duration,
        sensor: &str,
        clock: Clock,
        offset: Option<f64>,
    ) -> Self {
        Self {
            interval_s: interval.as_secs_f64().max(1.0 / f64::from(BLOCKS_PER_S)),
            sensor: sensor.to_owned(),
            clock,
            offset,
            current: None,
            summary: Summary::default(),
            bands: None,
        }
    }

    /// Reports the band levels of `set` too (the meter must measure the same bands).
    pub fn with_bands(mut self, set: Option<BandSet>) -> Self {
        self.bands = set;
        self
    }

    /// Adds a block; returns the report of the interval it ends (the block starts the next).
    pub fn push(&mut self, b: &Block) -> Option<LevelReport> {
        let key = self.clock.period(b.start_s, self.interval_s).key;
        let done = match self.current {
            Some((k, _)) if k != key => Some(self.report(b.start_s)),
            _ => None,
        };
        self.current.get_or_insert((key, b.start_s));
        self.summary.push(b);
        done
    }

    /// Ends the stream at `end_s`: the report of the interval in progress, if any.
    pub fn finish(&mut self, end_s: f64) -> Option<LevelReport> {
        (!self.summary.is_empty()).then(|| self.report(end_s))
    }

    fn report(&mut self, end_s: f64) -> LevelReport {
        let summary = std::mem::take(&mut self.summary);
        let start_s = self.current.take().map_or(0.0, |c| c.1);
        let at = |s: f64| crate::format::rfc3339(self.clock.stream_start, s);
        LevelReport {
            v: 1,
            kind: "level",
            sensor: self.sensor.clone(),
            start: at(start_s),
            end: at(end_s),
            start_offset_s: round3(start_s),
            end_offset_s: round3(end_s),
            interval_s: round3(summary.seconds),
            levels: summary.levels(self.offset.unwrap_or(0.0)),
            bands: self
                .bands
                .as_ref()
                .and_then(|set| summary.band_levels(set, self.offset.unwrap_or(0.0))),
            calibrated: self.offset.is_some(),
            unit: if self.offset.is_some() { "dB" } else { "dBFS" },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceeded_levels_use_the_nearest_rank() {
        // 30 % at 70, 70 % at 50: exceeded 10 % of the time is 70, 90 % of the time is 50.
        let mut v: Vec<f64> = [70.0; 3].into_iter().chain([50.0; 7]).collect();
        v.sort_by(f64::total_cmp);
        assert_eq!(exceeded(&v, 0.10), 70.0);
        assert_eq!(exceeded(&v, 0.90), 50.0);
        assert_eq!(exceeded(&v, 0.5), 50.0);
        assert_eq!(exceeded(&[1.0], 0.9), 1.0);
    }
}
