//! Octave and third-octave band levels (IEC 61260-1 class 1, base 10) at the capture rate,
//! with multirate decimation: each octave of bands runs at the lowest rate that holds it.
//!
//! Data path: samples → stage 0 (the bands near the Nyquist frequency, at the capture rate)
//! → an eighth-order low-pass and every second sample → stage 1 (one octave lower, at half
//! the rate) → … Each band sums its squared output; [`BandBank::take`] turns the sums since
//! the last call into mean squares, one [`BandBlock`] per 125 ms level block.

mod check;
mod design;

use std::str::FromStr;

pub use check::{measure_db, response_table, BandCheck};
pub use design::{class1, margin, omega, Breakpoint, G};

use super::weighting::{analytic_db, Biquad, Weighting, NOMINAL};

/// The most bands a bank has (third-octaves 25 Hz – 20 kHz).
pub const MAX_BANDS: usize = 30;

/// Octave or third-octave bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BandScale {
    /// Octave bands, 31.5 Hz up.
    Octave,
    /// One-third-octave bands, 25 Hz up.
    Third,
}

impl BandScale {
    /// Bands per octave (b in IEC 61260-1).
    pub fn per_octave(self) -> u32 {
        match self {
            Self::Octave => 1,
            Self::Third => 3,
        }
    }

    /// "octave" or "third".
    pub fn name(self) -> &'static str {
        match self {
            Self::Octave => "octave",
            Self::Third => "third",
        }
    }
}

impl FromStr for BandScale {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "octave" => Ok(Self::Octave),
            "third" => Ok(Self::Third),
            other => Err(format!("{other:?}: expected \"octave\" or \"third\"")),
        }
    }
}

/// One band: its nominal name and exact mid-band and edge frequencies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    /// Nominal mid-band frequency as printed ("31.5", "1000").
    pub nominal: &'static str,
    /// Exact base-10 mid-band frequency, Hz.
    pub centre: f64,
    /// Lower band edge, Hz.
    pub lower: f64,
    /// Upper band edge, Hz.
    pub upper: f64,
}

/// The bands of `scale` that fit below the Nyquist frequency of `rate` (upper edge below
/// rate/2): at 48 kHz third-octaves 25 Hz – 20 kHz, at 16 kHz 25 Hz – 6.3 kHz.
pub fn bands(scale: BandScale, rate: u32) -> Vec<Band> {
    let b = scale.per_octave();
    let edge = G.powf(1.0 / (2.0 * f64::from(b)));
    // third-octave centres are 10^(n/10), n = 14 (25 Hz) … 43 (20 kHz); octaves every third
    let ns: Vec<i32> = match scale {
        BandScale::Third => (14..=43).collect(),
        BandScale::Octave => (15..=42).step_by(3).collect(),
    };
    ns.into_iter()
        .map(|n| {
            let centre = 10f64.powf(f64::from(n) / 10.0);
            Band {
                nominal: NOMINAL[(n - 10) as usize],
                centre,
                lower: centre / edge,
                upper: centre * edge,
            }
        })
        .filter(|band| band.upper < 0.5 * f64::from(rate))
        .collect()
}

/// Mean squares of the bands over one block (the first `len` entries are used).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandBlock {
    /// Mean square of each band's output, relative to full scale as the meter's.
    pub ms: [f32; MAX_BANDS],
    /// Number of bands.
    pub len: u8,
}

impl BandBlock {
    /// The bands' mean squares.
    pub fn values(&self) -> &[f32] {
        &self.ms[..usize::from(self.len)]
    }
}

/// The bands a report names: their nominal frequencies and the weighting applied.
#[derive(Debug, Clone, PartialEq)]
pub struct BandSet {
    /// Octave or third.
    pub scale: BandScale,
    /// Z (as filtered) or A (each band corrected by the A weighting at its exact mid-band).
    pub weighting: Weighting,
    /// The bands.
    pub bands: Vec<Band>,
}

impl BandSet {
    /// The bands of `scale` at `rate` with `weighting` (A or Z).
    pub fn new(scale: BandScale, weighting: Weighting, rate: u32) -> Self {
        Self {
            scale,
            weighting,
            bands: bands(scale, rate),
        }
    }

    /// The weighting correction of band `i` in dB.
    pub fn correction_db(&self, i: usize) -> f64 {
        analytic_db(self.weighting, self.bands[i].centre)
    }
}

/// One rate of the cascade: its bands and the low-pass in front of the next.
#[derive(Debug, Clone)]
struct Stage {
    rate: f64,
    /// (band index, sections) of the bands computed at this rate.
    filters: Vec<(usize, [Biquad; 3])>,
    sums: Vec<f64>,
    count: u64,
    next: Option<[Biquad; 4]>,
    keep: bool,
}

/// The band filters of one stream.
#[derive(Debug, Clone)]
pub struct BandBank {
    bands: Vec<Band>,
    stages: Vec<Stage>,
    last: [f32; MAX_BANDS],
}

/// Upper band edge, as a fraction of a stage's rate, below which a band moves to the next
/// (half-rate) stage: the decimator is flat to 0.12 of the rate before it, i.e. 0.24 of the
/// next stage's.
const STAGE_EDGE: f64 = 0.24;

impl BandBank {
    /// The bank for `scale` at `rate` Hz.
    pub fn new(scale: BandScale, rate: u32) -> Self {
        let bands = bands(scale, rate);
        let fs = f64::from(rate);
        // each band goes to the deepest stage whose rate still holds it
        let depth = |b: &Band| {
            let mut k = 0;
            while b.upper <= STAGE_EDGE * fs / f64::from(1u32 << (k + 1)) {
                k += 1;
            }
            k
        };
        let deepest = bands.iter().map(depth).max().unwrap_or(0);
        let mut stages: Vec<Stage> = (0..=deepest)
            .map(|k| {
                let rate = fs / f64::from(1u32 << k);
                Stage {
                    rate,
                    filters: Vec::new(),
                    sums: Vec::new(),
                    count: 0,
                    next: (k < deepest).then(|| design::decimator(rate)),
                    keep: false,
                }
            })
            .collect();
        for (i, b) in bands.iter().enumerate() {
            let k = depth(b);
            let r = stages[k].rate;
            let mut q = design::tuned_band_pass(b.centre, scale.per_octave(), r);
            // the decimators in front pass the centre a hair below 0 dB: made up here
            let through: f64 = stages[..k]
                .iter()
                .flat_map(|s| s.next.iter().flatten())
                .zip(
                    stages[..k]
                        .iter()
                        .flat_map(|s| std::iter::repeat_n(s.rate, 4)),
                )
                .map(|(q, r)| q.gain(b.centre, r))
                .product();
            q[0] = q[0].scaled(1.0 / through);
            stages[k].filters.push((i, q));
            stages[k].sums.push(0.0);
        }
        Self {
            bands,
            stages,
            last: [0.0; MAX_BANDS],
        }
    }

    /// The bands, lowest first.
    pub fn bands(&self) -> &[Band] {
        &self.bands
    }

    /// The rates of the stages (the capture rate first).
    pub fn stage_rates(&self) -> Vec<f64> {
        self.stages.iter().map(|s| s.rate).collect()
    }

    /// Filters samples, adding to each band's sum of squares.
    pub fn process(&mut self, samples: &[f32]) {
        for &x in samples {
            let mut v = f64::from(x);
            for st in self.stages.iter_mut() {
                for ((_, q), sum) in st.filters.iter_mut().zip(st.sums.iter_mut()) {
                    let y = q.iter_mut().fold(v, |acc, s| s.step(acc));
                    *sum += y * y;
                }
                st.count += 1;
                let Some(lp) = st.next.as_mut() else { break };
                let d = lp.iter_mut().fold(v, |acc, q| q.step(acc));
                st.keep = !st.keep;
                if !st.keep {
                    break;
                }
                v = d;
            }
        }
    }

    /// The mean squares since the last call, and starts new sums. A band that got no sample
    /// at its rate since (a block shorter than one of its samples) repeats its last value.
    pub fn take(&mut self) -> BandBlock {
        for st in self.stages.iter_mut() {
            for ((i, _), sum) in st.filters.iter().zip(st.sums.iter_mut()) {
                if st.count > 0 {
                    self.last[*i] = (*sum / st.count as f64) as f32;
                }
                *sum = 0.0;
            }
            st.count = 0;
        }
        BandBlock {
            ms: self.last,
            len: self.bands.len() as u8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bands_fit_the_rate() {
        let names = |s, r| bands(s, r).iter().map(|b| b.nominal).collect::<Vec<_>>();
        let third48 = names(BandScale::Third, 48_000);
        assert_eq!(
            (third48[0], *third48.last().expect("a band")),
            ("25", "20000")
        );
        assert_eq!(third48.len(), 30);
        assert_eq!(
            *names(BandScale::Third, 16_000).last().expect("a band"),
            "6300"
        );
        assert_eq!(
            *names(BandScale::Third, 44_100).last().expect("a band"),
            "16000"
        );
        let oct = names(BandScale::Octave, 48_000);
        assert_eq!(oct.first(), Some(&"31.5"));
        assert_eq!(oct.last(), Some(&"16000"));
    }

    #[test]
    fn each_octave_runs_at_the_lowest_rate_that_holds_it() {
        let bank = BandBank::new(BandScale::Third, 48_000);
        let rates = bank.stage_rates();
        assert_eq!(rates[0], 48_000.0);
        // 25 Hz (upper edge 28.2 Hz) runs at 187.5 Hz
        assert_eq!(*rates.last().expect("a stage"), 187.5);
        let per_stage: Vec<usize> = bank.stages.iter().map(|s| s.filters.len()).collect();
        assert_eq!(per_stage.iter().sum::<usize>(), 30);
        assert!(per_stage[1..].iter().all(|&n| n == 3), "{per_stage:?}");
    }
}
