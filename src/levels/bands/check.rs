//! The band filters measured with sines against the IEC 61260-1 class 1 limits, and the
//! Markdown table of that measurement (docs/levels-bands.md).

use std::f64::consts::PI;

use super::design::{class1, margin, omega};
use super::{BandBank, BandScale};

/// Every band's gain in dB for a unit sine at `f` Hz, measured through a fresh copy of `bank`
/// (as designed, before any audio) at `rate`: 1 s to settle, then the bands' mean squares over
/// whole periods (at least 0.5 s).
pub fn measure_db(bank: &BandBank, rate: u32, f: f64) -> Vec<f64> {
    let fs = f64::from(rate);
    let mut bank = bank.clone();
    let sine = |from: usize, n: usize| -> Vec<f32> {
        (from..from + n)
            .map(|i| (2.0 * PI * f * i as f64 / fs).sin() as f32)
            .collect()
    };
    let settle = rate as usize;
    bank.process(&sine(0, settle));
    bank.take();
    let periods = (0.5 * f).ceil().max(1.0);
    let n = (periods * fs / f).round() as usize;
    bank.process(&sine(settle, n));
    let block = bank.take();
    // a unit sine's mean square is ½
    block
        .values()
        .iter()
        .map(|&ms| 10.0 * (f64::from(ms).max(1e-30) / 0.5).log10())
        .collect()
}

/// The outcome of measuring every band at every class 1 breakpoint below the Nyquist
/// frequency.
#[derive(Debug, Clone, PartialEq)]
pub struct BandCheck {
    /// The smallest margin to the limits over all bands and breakpoints, dB (≥ 0: class 1).
    pub worst_margin_db: f64,
    /// Where it is: (band, breakpoint exponent e).
    pub worst_at: (&'static str, f64),
    /// Each band's gain at its own mid-band frequency, dB.
    pub centre_db: Vec<f64>,
}

/// Measures every band of `scale` at `rate` with sines at its class 1 breakpoints; returns the
/// Markdown table (relative attenuation in dB; "·" above the Nyquist frequency) and the check.
pub fn response_table(scale: BandScale, rate: u32) -> (String, BandCheck) {
    let bank = BandBank::new(scale, rate);
    let bands = bank.bands().to_vec();
    let points = class1();
    let b = scale.per_octave();
    let mut head = String::from("| band Hz |");
    let mut rule = String::from("|---:|");
    let mut limits = String::from("| class 1 |");
    for p in &points {
        head.push_str(&format!(" {} |", exponent(p.e)));
        rule.push_str("---:|");
        limits.push_str(&format!(
            " {} |",
            match p.max_db {
                Some(m) => format!("{:.1}…{:.1}", p.min_db, m),
                None => format!("≥{:.1}", p.min_db),
            }
        ));
    }
    head.push_str(" margin |\n");
    rule.push_str("---:|\n");
    limits.push_str(" |\n");
    let mut table = format!("{head}{rule}{limits}");
    let mut check = BandCheck {
        worst_margin_db: f64::INFINITY,
        worst_at: ("", 0.0),
        centre_db: Vec::new(),
    };
    for (i, band) in bands.iter().enumerate() {
        let mut row = format!("| {} |", band.nominal);
        let mut worst = f64::INFINITY;
        for p in &points {
            let f = omega(p.e, b) * band.centre;
            if f >= 0.5 * f64::from(rate) {
                row.push_str(" · |");
                continue;
            }
            let gain = measure_db(&bank, rate, f)[i];
            if p.e == 0.0 {
                check.centre_db.push(gain);
            }
            let attenuation = -gain;
            let m = margin(p, attenuation);
            if m < check.worst_margin_db {
                check.worst_margin_db = m;
                check.worst_at = (band.nominal, p.e);
            }
            worst = worst.min(m);
            row.push_str(&format!(" {} |", value(attenuation)));
        }
        row.push_str(&format!(" {worst:.2} |\n"));
        table.push_str(&row);
    }
    (table, check)
}

fn exponent(e: f64) -> String {
    let s = match (e.abs() * 8.0).round() as i32 {
        0 => "0".to_owned(),
        1 => "1/8".into(),
        2 => "1/4".into(),
        3 => "3/8".into(),
        4 => "1/2".into(),
        n => format!("{}", n / 8),
    };
    if e < 0.0 {
        format!("G^−{s}")
    } else {
        format!("G^{s}")
    }
}

/// Two decimals in the pass band, one in the stop band; no "-0.00".
fn value(db: f64) -> String {
    let s = if db.abs() < 10.0 {
        format!("{db:.2}")
    } else {
        format!("{db:.1}")
    };
    if s == "-0.00" {
        "0.00".into()
    } else {
        s
    }
}
