//! Band filter design: Butterworth band-passes (six poles) and the decimators' low-passes by
//! the bilinear transform, and the IEC 61260-1 class 1 mask the band edges are tuned against.
//!
//! A third-order Butterworth prototype turned band-pass has 3 dB at the band edges and, for a
//! third-octave band, 46 dB at the octave-equivalent G¹ point where class 1 asks 17.5 dB. Far
//! below the sample rate the pre-warped bilinear design is geometrically symmetric and meets
//! the mask with room; near the Nyquist frequency warping makes it lopsided (the lower skirt
//! steepens). Each band's two design edges are therefore chosen, from a small grid around the
//! exact edges, to maximise the smallest margin to the class 1 limits of its own digital
//! response.

use std::f64::consts::PI;

use realfft::num_complex::Complex;

use crate::levels::weighting::Biquad;

/// The base-10 octave ratio G = 10^(3/10) (IEC 61260-1).
pub const G: f64 = 1.995_262_314_968_879_6;

/// A band-pass of a stage at rate `r`: three sections with poles from the pre-warped edges
/// `lo`, `hi` (Hz), normalised to 0 dB at `centre`.
pub fn band_pass(lo: f64, hi: f64, centre: f64, r: f64) -> [Biquad; 3] {
    let warp = |f: f64| 2.0 * r * (PI * f / r).tan();
    let (w1, w2) = (warp(lo), warp(hi));
    let (w0sq, bw) = (w1 * w2, w2 - w1);
    let mut poles = Vec::with_capacity(3);
    for k in 0..3 {
        // prototype poles of a third-order Butterworth low-pass, left half plane
        let theta = PI / 2.0 + PI * (2 * k + 1) as f64 / 6.0;
        let p = Complex::from_polar(1.0, theta);
        // s² − p·bw·s + ω0² = 0
        let pb = p * bw;
        let root = (pb * pb - 4.0 * w0sq).sqrt();
        for s in [(pb + root) / 2.0, (pb - root) / 2.0] {
            if s.im > 0.0 {
                poles.push(bilinear(s, r));
            }
        }
    }
    let mut sections = [Biquad::new([1.0, 0.0, -1.0], [0.0, 0.0]); 3];
    for (q, z) in sections.iter_mut().zip(&poles) {
        *q = Biquad::new([1.0, 0.0, -1.0], [-2.0 * z.re, z.norm_sqr()]);
    }
    let g: f64 = sections.iter().map(|q| q.gain(centre, r)).product();
    sections[0] = sections[0].scaled(1.0 / g);
    sections
}

/// An eighth-order Butterworth low-pass at 0.2 × `r` (four sections, 0 dB at DC): flat to
/// 0.001 dB at 0.12 r, 88 dB down from 0.38 r, so that keeping every second sample aliases
/// nothing into the next stage's bands (their upper edges are at most 0.12 r).
pub fn decimator(r: f64) -> [Biquad; 4] {
    let wc = 2.0 * r * (PI * 0.2).tan();
    let mut sections = [Biquad::new([1.0, 2.0, 1.0], [0.0, 0.0]); 4];
    for (k, q) in sections.iter_mut().enumerate() {
        let theta = PI / 2.0 + PI * (2 * k + 1) as f64 / 16.0;
        let z = bilinear(Complex::from_polar(wc, theta), r);
        let a = [-2.0 * z.re, z.norm_sqr()];
        *q = Biquad::new([1.0, 2.0, 1.0], a).scaled((1.0 + a[0] + a[1]) / 4.0);
    }
    sections
}

fn bilinear(s: Complex<f64>, r: f64) -> Complex<f64> {
    (2.0 * r + s) / (2.0 * r - s)
}

/// One breakpoint of the class 1 mask: the octave-equivalent exponent of G and the limits of
/// the relative attenuation in dB (`None`: no upper limit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breakpoint {
    /// Exponent e of G^e (octave bands); negative below the mid-band frequency.
    pub e: f64,
    /// Least attenuation allowed.
    pub min_db: f64,
    /// Most attenuation allowed.
    pub max_db: Option<f64>,
}

/// IEC 61260-1:2014 class 1 acceptance limits on the relative attenuation, at the
/// breakpoints above the mid-band frequency (those below mirror them). At the band edge
/// (e = ½) the limits from inside (−0.3 … 5.0) and outside (2.0 … 5.0) meet; the stricter
/// pair is kept.
const CLASS1: [(f64, f64, Option<f64>); 9] = [
    (0.0, -0.3, Some(0.3)),
    (0.125, -0.3, Some(0.4)),
    (0.25, -0.3, Some(0.6)),
    (0.375, -0.3, Some(1.3)),
    (0.5, 2.0, Some(5.0)),
    (1.0, 17.5, None),
    (2.0, 42.0, None),
    (3.0, 61.0, None),
    (4.0, 70.0, None),
];

/// The class 1 breakpoints from G^−4 to G^4 (17 of them).
pub fn class1() -> Vec<Breakpoint> {
    let up = CLASS1
        .iter()
        .map(|&(e, min_db, max_db)| Breakpoint { e, min_db, max_db });
    let down = CLASS1
        .iter()
        .skip(1)
        .rev()
        .map(|&(e, min_db, max_db)| Breakpoint {
            e: -e,
            min_db,
            max_db,
        });
    down.chain(up).collect()
}

/// The normalised frequency f/fm of breakpoint `e` for bands of 1/`b` octave (IEC 61260-1
/// eq. for fractional-octave filters: the octave points scaled by the relative bandwidth).
pub fn omega(e: f64, b: u32) -> f64 {
    let edge = G.powf(1.0 / (2.0 * f64::from(b)));
    let up = 1.0 + (edge - 1.0) / (G.sqrt() - 1.0) * (G.powf(e.abs()) - 1.0);
    if e < 0.0 {
        1.0 / up
    } else {
        up
    }
}

/// How far an attenuation `db` is inside a breakpoint's limits (negative: outside).
pub fn margin(p: &Breakpoint, db: f64) -> f64 {
    let low = db - p.min_db;
    p.max_db.map_or(low, |m| low.min(m - db))
}

/// The band-pass for the band `centre` of 1/`b` octave at stage rate `r`: the exact-edge
/// design where it meets class 1 with room, else (near the Nyquist frequency) its poles moved
/// by a Nelder–Mead search for the largest class 1 margin, with the effective bandwidth kept
/// within 0.2 dB of the nominal, trying zeros at the Nyquist frequency on none to all three
/// sections.
pub fn tuned_band_pass(centre: f64, b: u32, r: f64) -> [Biquad; 3] {
    let edge = G.powf(1.0 / (2.0 * f64::from(b)));
    let exact = band_pass(centre / edge, centre * edge, centre, r);
    let fit = Fit::new(centre, b, r);
    if fit.score(&exact) >= 0.1 {
        return exact;
    }
    let start: Vec<f64> = exact
        .iter()
        .flat_map(|q| {
            let [a1, a2] = q.a();
            let rho = a2.sqrt();
            [
                (1.0 - rho).ln(),
                (-a1 / (2.0 * rho)).clamp(-1.0, 1.0).acos(),
            ]
        })
        .collect();
    let mut best = (fit.score(&exact), exact);
    for nyquist_zeros in 0..=3 {
        let build = |x: &[f64]| sections(x, nyquist_zeros, centre, r);
        let x = nelder_mead(|x| -fit.score(&build(x)), &start, 1500);
        let q = build(&x);
        let score = fit.score(&q);
        if score > best.0 {
            best = (score, q);
        }
    }
    best.1
}

/// Sections from (ln(1 − ρ), θ) pole pairs: a zero at DC on each, a zero at the Nyquist
/// frequency on the first `nyquist_zeros`; 0 dB at `centre`.
fn sections(x: &[f64], nyquist_zeros: usize, centre: f64, r: f64) -> [Biquad; 3] {
    let mut q = [Biquad::new([1.0, 0.0, -1.0], [0.0, 0.0]); 3];
    for (i, s) in q.iter_mut().enumerate() {
        let rho = (1.0 - x[2 * i].exp()).clamp(0.0, 0.999_999);
        let b = if i < nyquist_zeros {
            [1.0, 0.0, -1.0]
        } else {
            [1.0, -1.0, 0.0]
        };
        *s = Biquad::new(b, [-2.0 * rho * x[2 * i + 1].cos(), rho * rho]);
    }
    let g: f64 = q.iter().map(|s| s.gain(centre, r)).product();
    q[0] = q[0].scaled(1.0 / g);
    q
}

/// What the pole search maximises: the smallest class 1 margin at the breakpoints below
/// 0.49 r (the mid-band, 0 dB by construction, left out), less a penalty when the effective
/// bandwidth is more than 0.2 dB off the nominal.
struct Fit {
    /// (breakpoint, cos ω, sin ω, cos 2ω, sin 2ω) at each breakpoint's frequency.
    points: Vec<(Breakpoint, [f64; 4])>,
    /// The same at log-spaced frequencies for the effective bandwidth, and ln of their
    /// spacing.
    grid: Vec<[f64; 4]>,
    step: f64,
    nominal: f64,
}

/// cos ω, sin ω, cos 2ω, sin 2ω at `f` Hz for rate `r`.
fn trig(f: f64, r: f64) -> [f64; 4] {
    let w = 2.0 * PI * f / r;
    [w.cos(), w.sin(), (2.0 * w).cos(), (2.0 * w).sin()]
}

/// |H|² of three sections at a frequency given by its [`trig`] values.
fn power(q: &[Biquad; 3], t: &[f64; 4]) -> f64 {
    let [c1, s1, c2, s2] = *t;
    q.iter()
        .map(|s| {
            let ([b0, b1, b2], [a1, a2]) = (s.b(), s.a());
            let (nr, ni) = (b0 + b1 * c1 + b2 * c2, b1 * s1 + b2 * s2);
            let (dr, di) = (1.0 + a1 * c1 + a2 * c2, a1 * s1 + a2 * s2);
            (nr * nr + ni * ni) / (dr * dr + di * di)
        })
        .product()
}

impl Fit {
    fn new(centre: f64, b: u32, r: f64) -> Self {
        let points = class1()
            .into_iter()
            .filter(|p| p.e != 0.0)
            .map(|p| (p, omega(p.e, b) * centre))
            .filter(|&(_, f)| f < 0.49 * r)
            .map(|(p, f)| (p, trig(f, r)))
            .collect();
        let (lo, hi) = ((centre / 8.0).ln(), (centre * 8.0).min(0.4999 * r).ln());
        let n = 160;
        let grid = (0..n)
            .map(|i| trig((lo + (hi - lo) * i as f64 / (n - 1) as f64).exp(), r))
            .collect();
        Self {
            points,
            grid,
            step: (hi - lo) / (n - 1) as f64,
            nominal: G.ln() / f64::from(b),
        }
    }

    fn score(&self, q: &[Biquad; 3]) -> f64 {
        let margin = self
            .points
            .iter()
            .map(|(p, t)| margin(p, -10.0 * power(q, t).max(1e-30).log10()))
            .fold(f64::INFINITY, f64::min);
        // ∫ |H|² d(ln f), trapezoid rule
        let v = self.grid.iter().map(|t| power(q, t));
        let (n, first) = (self.grid.len(), power(q, &self.grid[0]));
        let last = power(q, &self.grid[n - 1]);
        let bandwidth = (v.sum::<f64>() - 0.5 * (first + last)) * self.step;
        let db = 10.0 * (bandwidth / self.nominal).log10();
        margin - 10.0 * (db.abs() - 0.2).max(0.0)
    }
}

/// Minimises `f` from `x0` by the Nelder–Mead simplex method (reflection 1, expansion 2,
/// contraction ½, shrink ½) for at most `iterations` steps.
fn nelder_mead(f: impl Fn(&[f64]) -> f64, x0: &[f64], iterations: usize) -> Vec<f64> {
    let n = x0.len();
    let mut simplex: Vec<(Vec<f64>, f64)> = (0..=n)
        .map(|i| {
            let mut x = x0.to_vec();
            if i > 0 {
                x[i - 1] += 0.05 * x[i - 1].abs().max(0.05);
            }
            let y = f(&x);
            (x, y)
        })
        .collect();
    let at = |c: &[f64], w: &[f64], t: f64| -> Vec<f64> {
        c.iter().zip(w).map(|(c, w)| c + t * (w - c)).collect()
    };
    for _ in 0..iterations {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let centroid: Vec<f64> = (0..n)
            .map(|j| simplex[..n].iter().map(|(x, _)| x[j]).sum::<f64>() / n as f64)
            .collect();
        let worst = simplex[n].clone();
        let reflected = at(&centroid, &worst.0, -1.0);
        let yr = f(&reflected);
        if yr < simplex[0].1 {
            let expanded = at(&centroid, &worst.0, -2.0);
            let ye = f(&expanded);
            simplex[n] = if ye < yr {
                (expanded, ye)
            } else {
                (reflected, yr)
            };
        } else if yr < simplex[n - 1].1 {
            simplex[n] = (reflected, yr);
        } else {
            let contracted = at(&centroid, &worst.0, 0.5);
            let yc = f(&contracted);
            if yc < worst.1 {
                simplex[n] = (contracted, yc);
            } else {
                let best = simplex[0].0.clone();
                for s in simplex.iter_mut().skip(1) {
                    s.0 = at(&best, &s.0, 0.5);
                    s.1 = f(&s.0);
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    simplex.swap_remove(0).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breakpoints_follow_the_standard() {
        // third-octave band edges are G^(±1/6); the octave's G¹ … G⁴ points fall at
        // 1.2944, 1.8817, 3.0537 and 5.3919 × the mid-band frequency of a third-octave
        assert!((omega(0.5, 3) - G.powf(1.0 / 6.0)).abs() < 1e-12);
        for (e, want) in [
            (1.0, 1.294_37),
            (2.0, 1.881_73),
            (3.0, 3.053_65),
            (4.0, 5.391_95),
        ] {
            assert!((omega(e, 3) - want).abs() < 1e-4, "{e}: {}", omega(e, 3));
        }
        assert!((omega(-0.125, 3) - 0.974_02).abs() < 1e-5);
        // octave bands: the points are G^e themselves
        assert!((omega(2.0, 1) - G * G).abs() < 1e-12);
        assert_eq!(class1().len(), 17);
    }

    #[test]
    fn a_band_pass_is_3_db_down_at_its_edges_and_0_db_at_its_centre() {
        let r = 8_000.0;
        let q = band_pass(891.25, 1122.0, 1000.0, r);
        let db = |f: f64| 20.0 * q.iter().map(|s| s.gain(f, r)).product::<f64>().log10();
        assert!(db(1000.0).abs() < 1e-9);
        assert!((db(891.25) + 3.01).abs() < 0.05 && (db(1122.0) + 3.01).abs() < 0.05);
        assert!(db(1881.7) < -40.0);
    }

    #[test]
    fn the_decimator_is_flat_below_and_deep_above() {
        let r = 48_000.0;
        let q = decimator(r);
        let db = |f: f64| 20.0 * q.iter().map(|s| s.gain(f, r)).product::<f64>().log10();
        assert!(db(0.12 * r).abs() < 0.001, "{}", db(0.12 * r));
        assert!(db(0.38 * r) < -85.0, "{}", db(0.38 * r));
    }
}
