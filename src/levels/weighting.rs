//! A, C and Z frequency weightings (IEC 61672-1) as IIR filters designed for the sample rate.
//!
//! The analytic weightings are products of first-order corners: zeros at DC, a double pole at
//! f1 ≈ 20.6 Hz, single poles at f2 ≈ 108 Hz and f3 ≈ 738 Hz (A only) and a double pole at
//! f4 ≈ 12.2 kHz. The high-pass corners are far below the sample rate and become exact
//! bilinear sections (pre-warped at their corner). The f4 double pole is close to the Nyquist
//! frequency, where the bilinear transform squeezes the response; it becomes one biquad whose
//! poles are the matched-z images of the analog poles and whose numerator is fitted (least
//! squares, relative error) to the analog magnitude up to 0.49 × the sample rate. Each chain is
//! then scaled to exactly 0 dB at 1 kHz. At 48 kHz the result is within 0.1 dB of the analytic
//! curves up to 8 kHz and 0.25 dB up to 20 kHz (`weighting_follows_the_analytic_curves`).

use std::f64::consts::PI;

/// IEC 61672-1 pole frequencies, Hz.
const F1: f64 = 20.598_997;
const F2: f64 = 107.652_65;
const F3: f64 = 737.862_23;
const F4: f64 = 12_194.217;

/// A frequency weighting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weighting {
    /// A: the ear at moderate levels; the weighting of most noise limits.
    A,
    /// C: nearly flat, keeps low-frequency rumble.
    C,
    /// Z: flat (zero) weighting.
    Z,
}

/// The analytic weighting in dB at `f` Hz (IEC 61672-1 Annex E, 0 dB at 1 kHz).
pub fn analytic_db(w: Weighting, f: f64) -> f64 {
    let f2 = f * f;
    let rc = |f2: f64| F4 * F4 * f2 / ((f2 + F1 * F1) * (f2 + F4 * F4));
    let ra = |f2: f64| rc(f2) * f2 / ((f2 + F2 * F2) * (f2 + F3 * F3)).sqrt();
    match w {
        Weighting::A => 20.0 * (ra(f2) / ra(1e6)).log10(),
        Weighting::C => 20.0 * (rc(f2) / rc(1e6)).log10(),
        Weighting::Z => 0.0,
    }
}

/// One second-order section, transposed direct form II, in f64.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
    s: [f64; 2],
}

impl Biquad {
    pub(crate) fn new(b: [f64; 3], a: [f64; 2]) -> Self {
        Self { b, a, s: [0.0; 2] }
    }

    /// The denominator (a1, a2).
    pub(crate) fn a(&self) -> [f64; 2] {
        self.a
    }

    /// The numerator (b0, b1, b2).
    pub(crate) fn b(&self) -> [f64; 3] {
        self.b
    }

    /// The same section with its numerator times `g`.
    pub(crate) fn scaled(mut self, g: f64) -> Self {
        self.b = self.b.map(|b| b * g);
        self
    }

    /// Filters one sample.
    #[inline]
    pub fn step(&mut self, x: f64) -> f64 {
        let y = self.b[0] * x + self.s[0];
        self.s[0] = self.b[1] * x - self.a[0] * y + self.s[1];
        self.s[1] = self.b[2] * x - self.a[1] * y;
        y
    }

    /// |H| at `f` Hz for sample rate `fs`.
    pub(crate) fn gain(&self, f: f64, fs: f64) -> f64 {
        let w = 2.0 * PI * f / fs;
        let (c1, s1, c2, s2) = (w.cos(), -w.sin(), (2.0 * w).cos(), -(2.0 * w).sin());
        let num =
            (self.b[0] + self.b[1] * c1 + self.b[2] * c2).hypot(self.b[1] * s1 + self.b[2] * s2);
        let den = (1.0 + self.a[0] * c1 + self.a[1] * c2).hypot(self.a[0] * s1 + self.a[1] * s2);
        num / den
    }
}

/// First-order high-pass s/(s+ωc) by the bilinear transform pre-warped at fc: (b, a1).
fn high_pass(fc: f64, fs: f64) -> ([f64; 2], f64) {
    let k = (PI * fc / fs).tan();
    ([1.0 / (1.0 + k), -1.0 / (1.0 + k)], (k - 1.0) / (k + 1.0))
}

/// The product of two first-order high-passes as one biquad.
fn high_pass_pair(fa: f64, fb: f64, fs: f64) -> Biquad {
    let ((ba, aa), (bb, ab)) = (high_pass(fa, fs), high_pass(fb, fs));
    Biquad::new(
        [ba[0] * bb[0], ba[0] * bb[1] + ba[1] * bb[0], ba[1] * bb[1]],
        [aa + ab, aa * ab],
    )
}

/// The double pole at `fc` (magnitude 1/(1+(f/fc)²)) as one biquad: matched-z poles, numerator
/// fitted to the analog magnitude on a log grid from 10 Hz to 0.49 fs. Uses the
/// parametrisation |B|² = B0·φ0 + B1·φ1 + B2·φ2 (φ1 = sin²(ω/2), φ0 = 1 − φ1, φ2 = 4φ0φ1), in
/// which the fit is linear and the numerator follows in closed form (M. Vicanek, "Matched
/// second order digital filters", 2016).
fn low_pass_double(fc: f64, fs: f64) -> Biquad {
    let p = (-2.0 * PI * fc / fs).exp();
    let (a1, a2) = (-2.0 * p, p * p);
    let (a0s, a1s, a2s) = ((1.0 + a1 + a2).powi(2), (1.0 - a1 + a2).powi(2), -4.0 * a2);
    let (lo, hi, n) = (10.0f64.ln(), (0.49 * fs).ln(), 400);
    let mut m = [[0.0f64; 3]; 3];
    let mut v = [0.0f64; 3];
    for i in 0..n {
        let f = (lo + (hi - lo) * i as f64 / (n - 1) as f64).exp();
        let s = (PI * f / fs).sin().powi(2);
        let phi = [1.0 - s, s, 4.0 * (1.0 - s) * s];
        let den = a0s * phi[0] + a1s * phi[1] + a2s * phi[2];
        let target = den / (1.0 + (f / fc).powi(2)).powi(2);
        // Relative error: each row divided by its target.
        let row = phi.map(|x| x / target);
        for r in 0..3 {
            for c in 0..3 {
                m[r][c] += row[r] * row[c];
            }
            v[r] += row[r];
        }
    }
    let [b0s, b1s, b2s] = solve3(m, v);
    let w = 0.5 * (b0s.max(0.0).sqrt() + b1s.max(0.0).sqrt());
    let b0 = 0.5 * (w + (w * w + b2s).max(0.0).sqrt());
    let b1 = 0.5 * (b0s.max(0.0).sqrt() - b1s.max(0.0).sqrt());
    let b2 = -b2s / (4.0 * b0);
    Biquad::new([b0, b1, b2], [a1, a2])
}

/// Solves a 3×3 system by Gaussian elimination with partial pivoting.
fn solve3(mut m: [[f64; 3]; 3], mut v: [f64; 3]) -> [f64; 3] {
    for c in 0..3 {
        let p = (c..3)
            .max_by(|&a, &b| m[a][c].abs().total_cmp(&m[b][c].abs()))
            .unwrap_or(c);
        m.swap(c, p);
        v.swap(c, p);
        for r in c + 1..3 {
            let k = m[r][c] / m[c][c];
            let pivot = m[c];
            for (x, p) in m[r].iter_mut().zip(pivot).skip(c) {
                *x -= k * p;
            }
            v[r] -= k * v[c];
        }
    }
    let mut x = [0.0; 3];
    for r in (0..3).rev() {
        let s: f64 = (r + 1..3).map(|j| m[r][j] * x[j]).sum();
        x[r] = (v[r] - s) / m[r][r];
    }
    x
}

/// The three weightings at once: C = high-pass(f1, f1) · low-pass(f4, f4), A = C ·
/// high-pass(f2, f3), Z = a DC blocker (1 Hz, −0.04 dB at 10 Hz), so one sample costs four
/// biquads.
#[derive(Debug, Clone)]
pub struct Weighter {
    f1: Biquad,
    f4: Biquad,
    f23: Biquad,
    dc: Biquad,
    c_gain: f64,
    a_gain: f64,
}

/// The lowest sample rate the weightings are designed for.
pub const MIN_RATE: u32 = 8_000;

impl Weighter {
    /// Designs the filters for `rate` Hz (at least [`MIN_RATE`]).
    pub fn new(rate: u32) -> Self {
        let fs = f64::from(rate.max(MIN_RATE));
        let f1 = high_pass_pair(F1, F1, fs);
        let f4 = low_pass_double(F4, fs);
        let f23 = high_pass_pair(F2, F3, fs);
        let (hp, a1) = high_pass(1.0, fs);
        let dc = Biquad::new([hp[0], hp[1], 0.0], [a1, 0.0]);
        let c1k = f1.gain(1000.0, fs) * f4.gain(1000.0, fs);
        let a1k = c1k * f23.gain(1000.0, fs);
        Self {
            f1,
            f4,
            f23,
            dc,
            c_gain: 1.0 / c1k,
            a_gain: 1.0 / a1k,
        }
    }

    /// Weights one sample: (A, C, Z).
    #[inline]
    pub fn step(&mut self, x: f64) -> (f64, f64, f64) {
        let c = self.f4.step(self.f1.step(x));
        let a = self.f23.step(c);
        (a * self.a_gain, c * self.c_gain, self.dc.step(x))
    }

    /// The designed response in dB at `f` Hz (for the documentation table).
    pub fn response_db(&self, w: Weighting, f: f64, rate: u32) -> f64 {
        let fs = f64::from(rate);
        let c = self.f1.gain(f, fs) * self.f4.gain(f, fs) * self.c_gain;
        let g = match w {
            Weighting::A => c * self.f23.gain(f, fs) * self.a_gain / self.c_gain,
            Weighting::C => c,
            Weighting::Z => self.dc.gain(f, fs),
        };
        20.0 * g.log10()
    }
}

/// The weightings' gains in dB at `f` Hz, measured by feeding a unit sine through a fresh
/// [`Weighter`] at `rate` Hz: 2 s to settle, then the output power over a whole number of
/// periods (at least 1 s) against the input's. Returns (A, C, Z).
pub fn measure_db(rate: u32, f: f64) -> (f64, f64, f64) {
    let fs = f64::from(rate);
    let mut w = Weighter::new(rate);
    let periods = (f.max(1.0)).ceil();
    let n = (periods * fs / f).round() as usize;
    let settle = 2 * rate as usize;
    let (mut pa, mut pc, mut pz, mut pin) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..settle + n {
        let x = (2.0 * PI * f * i as f64 / fs).sin();
        let (a, c, z) = w.step(x);
        if i >= settle {
            (pa, pc, pz, pin) = (pa + a * a, pc + c * c, pz + z * z, pin + x * x);
        }
    }
    let db = |p: f64| 10.0 * (p / pin).log10();
    (db(pa), db(pc), db(pz))
}

/// The measured deviations from the analytic curves at every third-octave centre below 0.45 ×
/// `rate`, as a Markdown table (the one in docs/levels-weighting.md).
pub fn deviation_table(rate: u32) -> String {
    let mut t = String::from(
        "| nominal Hz | A analytic | A measured | A dev. | C analytic | C measured | C dev. | Z dev. | class 1 limits |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (f, nominal) in third_octave_centres().zip(NOMINAL) {
        if f >= 0.45 * f64::from(rate) {
            continue;
        }
        let (a, c, z) = measure_db(rate, f);
        let (aa, ca) = (analytic_db(Weighting::A, f), analytic_db(Weighting::C, f));
        let (plus, minus) = class1_limits(f);
        let minus = minus.map_or("−∞".to_owned(), |m| format!("−{m:.1}"));
        t.push_str(&format!(
            "| {nominal} | {} | {} | {} | {} | {} | {} | {} | +{plus:.1} / {minus} |\n",
            fixed(aa),
            fixed(a),
            signed(a - aa),
            fixed(ca),
            fixed(c),
            signed(c - ca),
            signed(z)
        ));
    }
    t
}

/// Two decimals, without a "-0.00".
fn fixed(x: f64) -> String {
    let s = format!("{x:.2}");
    if s == "-0.00" {
        "0.00".into()
    } else {
        s
    }
}

/// Two decimals with a sign, "+0.00" for zero.
fn signed(x: f64) -> String {
    let s = fixed(x);
    if s.starts_with('-') {
        s
    } else {
        format!("+{s}")
    }
}

/// Nominal names of the base-10 third-octave centres, 10 Hz to 20 kHz.
pub(crate) const NOMINAL: [&str; 34] = [
    "10", "12.5", "16", "20", "25", "31.5", "40", "50", "63", "80", "100", "125", "160", "200",
    "250", "315", "400", "500", "630", "800", "1000", "1250", "1600", "2000", "2500", "3150",
    "4000", "5000", "6300", "8000", "10000", "12500", "16000", "20000",
];

/// Base-10 one-third-octave centre frequencies from 10 Hz to 20 kHz (exact, 10^(n/10)).
pub fn third_octave_centres() -> impl Iterator<Item = f64> {
    (10..=43).map(|n| 10f64.powf(f64::from(n) / 10.0))
}

/// IEC 61672-1:2002 class 1 tolerance limits (+, −) in dB at the third-octave centre nearest
/// `f`; `None` for −∞.
pub fn class1_limits(f: f64) -> (f64, Option<f64>) {
    const TABLE: [(f64, f64, Option<f64>); 34] = [
        (10.0, 3.5, None),
        (12.5, 3.0, None),
        (16.0, 2.5, Some(4.5)),
        (20.0, 2.5, Some(2.5)),
        (25.0, 2.5, Some(2.0)),
        (31.5, 2.0, Some(2.0)),
        (40.0, 1.5, Some(1.5)),
        (50.0, 1.5, Some(1.5)),
        (63.0, 1.5, Some(1.5)),
        (80.0, 1.5, Some(1.5)),
        (100.0, 1.5, Some(1.5)),
        (125.0, 1.5, Some(1.5)),
        (160.0, 1.5, Some(1.5)),
        (200.0, 1.5, Some(1.5)),
        (250.0, 1.4, Some(1.4)),
        (315.0, 1.4, Some(1.4)),
        (400.0, 1.4, Some(1.4)),
        (500.0, 1.4, Some(1.4)),
        (630.0, 1.4, Some(1.4)),
        (800.0, 1.4, Some(1.4)),
        (1000.0, 1.1, Some(1.1)),
        (1250.0, 1.4, Some(1.4)),
        (1600.0, 1.6, Some(1.6)),
        (2000.0, 1.6, Some(1.6)),
        (2500.0, 1.6, Some(1.6)),
        (3150.0, 1.6, Some(1.6)),
        (4000.0, 1.6, Some(1.6)),
        (5000.0, 2.1, Some(2.1)),
        (6300.0, 2.1, Some(2.6)),
        (8000.0, 2.1, Some(3.1)),
        (10000.0, 2.6, Some(3.6)),
        (12500.0, 3.0, Some(6.0)),
        (16000.0, 3.5, Some(17.0)),
        (20000.0, 4.0, None),
    ];
    TABLE
        .iter()
        .min_by(|a, b| (a.0 / f).ln().abs().total_cmp(&(b.0 / f).ln().abs()))
        .map(|&(_, p, m)| (p, m))
        .unwrap_or((0.0, Some(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analytic_curves_match_the_nominal_table() {
        // IEC 61672-1 nominal values (0.1 dB) at exact base-10 centres 10^(n/10) Hz.
        for (n, a, c) in [
            (10, -70.4, -14.3),
            (15, -39.4, -3.0),
            (21, -16.1, -0.2),
            (30, 0.0, 0.0),
            (36, 1.0, -0.8),
            (42, -6.6, -8.5),
        ] {
            let f = 10f64.powf(f64::from(n) / 10.0);
            assert!((analytic_db(Weighting::A, f) - a).abs() < 0.06, "A {f}");
            assert!((analytic_db(Weighting::C, f) - c).abs() < 0.06, "C {f}");
        }
    }

    #[test]
    fn designed_response_follows_the_curves_at_common_rates() {
        for rate in [16_000, 32_000, 44_100, 48_000, 96_000] {
            let w = Weighter::new(rate);
            for f in third_octave_centres().filter(|&f| f <= 8_000.0 && f < 0.45 * f64::from(rate))
            {
                for k in [Weighting::A, Weighting::C] {
                    let d = w.response_db(k, f, rate) - analytic_db(k, f);
                    assert!(d.abs() < 0.2, "{k:?} {f} Hz at {rate}: {d}");
                }
            }
        }
    }
}
