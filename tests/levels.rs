//! Sound levels: the weighting filters against IEC 61672-1, levels of known sines, F/S decay,
//! L10/L90, limit rules, calibration, and levels in `run` (stdout and MQTT).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use soundsentry::levels::bands::{bands, response_table, BandScale};
use soundsentry::levels::weighting::{
    analytic_db, class1_limits, deviation_table, measure_db, Weighting,
};
use soundsentry::levels::{to_db, Block, Clock, LimitRule, Limits, Meter, Metric};

use crate::mqtt::{retained, wait_for, Broker, Subscriber};
use crate::util::{bin, json_lines, repo, run_ok, sine, write_wav_f32};

const DOC: &str = "docs/levels-weighting.md";
const BANDS_DOC: &str = "docs/levels-bands.md";

#[test]
fn weighting_measured_with_sines_follows_iec_61672_class_1() {
    let rate = 48_000;
    for (n, f) in (10..=43).map(|n| (n, 10f64.powf(f64::from(n) / 10.0))) {
        let (a, c, z) = measure_db(rate, f);
        let (plus, minus) = class1_limits(f);
        for (k, got) in [(Weighting::A, a), (Weighting::C, c)] {
            let dev = got - analytic_db(k, f);
            // ≤ 0.3 dB up to 8 kHz (n = 39), within class 1 limits everywhere.
            if n <= 39 {
                assert!(dev.abs() <= 0.3, "{k:?} at {f:.0} Hz: {dev:+.3} dB");
            }
            assert!(
                dev <= plus && minus.is_none_or(|m| dev >= -m),
                "{k:?} at {f:.0} Hz: {dev:+.3} dB"
            );
        }
        assert!(z.abs() <= 0.1, "Z at {f:.0} Hz: {z:+.3} dB");
    }
    // The documentation shows this very measurement; SOUNDSENTRY_UPDATE_DOCS=1 rewrites it.
    let table = deviation_table(rate);
    let path = repo(DOC);
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    let (head, tail) = doc.split_once("<!-- table -->").unwrap_or((&doc, ""));
    let tail = tail.split_once("<!-- /table -->").map_or("", |t| t.1);
    let fresh = format!("{head}<!-- table -->\n{table}<!-- /table -->{tail}");
    if std::env::var_os("SOUNDSENTRY_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &fresh).expect("write the docs");
    }
    assert_eq!(
        doc, fresh,
        "{DOC} is out of date: run with SOUNDSENTRY_UPDATE_DOCS=1"
    );
}

/// Replaces what is between `<!-- name -->` and `<!-- /name -->` in `doc`.
fn with_table(doc: &str, name: &str, table: &str) -> String {
    let open = format!("<!-- {name} -->");
    let close = format!("<!-- /{name} -->");
    let (head, tail) = doc.split_once(&open).unwrap_or((doc, ""));
    let tail = tail.split_once(&close).map_or("", |t| t.1);
    format!("{head}{open}\n{table}{close}{tail}")
}

#[test]
fn band_filters_measured_with_sines_meet_iec_61260_class_1() {
    let path = repo(BANDS_DOC);
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    let mut fresh = doc.clone();
    for (scale, rate) in [
        (BandScale::Third, 48_000),
        (BandScale::Octave, 48_000),
        (BandScale::Third, 16_000),
    ] {
        let (table, check) = response_table(scale, rate);
        println!("{scale:?} at {rate} Hz: worst margin {check:?}");
        assert!(
            check.worst_margin_db >= 0.0,
            "{scale:?} at {rate} Hz outside class 1: {check:?}\n{table}"
        );
        // a sine at a band's mid-band frequency reads its level within 0.1 dB
        for (band, db) in bands(scale, rate).iter().zip(&check.centre_db) {
            assert!(
                db.abs() <= 0.1,
                "{} Hz at {rate} Hz: {db:+.3} dB",
                band.nominal
            );
        }
        if rate == 48_000 {
            fresh = with_table(&fresh, scale.name(), &table);
        }
    }
    // The documentation shows this very measurement; SOUNDSENTRY_UPDATE_DOCS=1 rewrites it.
    if std::env::var_os("SOUNDSENTRY_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &fresh).expect("write the docs");
    }
    assert_eq!(
        doc, fresh,
        "{BANDS_DOC} is out of date: run with SOUNDSENTRY_UPDATE_DOCS=1"
    );
}

/// Pink noise of exactly 1/f power from 22.4 Hz to 22.4 kHz (the edges of the 25 Hz and
/// 20 kHz third-octave bands), as a random-phase multisine over `seconds`: every bin's
/// magnitude ∝ 1/√f, so each band's power is fixed by the spectrum, not by chance; RMS 0.1.
fn pink(rate: u32, seconds: usize, seed: u64) -> Vec<f32> {
    let n = rate as usize * seconds;
    let mut planner = realfft::RealFftPlanner::<f64>::new();
    let inverse = planner.plan_fft_inverse(n);
    let mut spectrum = inverse.make_input_vec();
    let mut state = seed;
    for (k, bin) in spectrum.iter_mut().enumerate().skip(1) {
        // xorshift64*: a phase per bin
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let u = (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
        let phase = 2.0 * std::f64::consts::PI * u;
        let f = k as f64 / seconds as f64;
        let magnitude = if (22.39..=22_387.0).contains(&f) {
            1.0 / f.sqrt()
        } else {
            0.0
        };
        *bin = realfft::num_complex::Complex::from_polar(magnitude, phase);
    }
    let last = spectrum.len() - 1;
    spectrum[last].im = 0.0;
    let mut out = inverse.make_output_vec();
    inverse.process(&mut spectrum, &mut out).expect("fft");
    let rms = (out.iter().map(|x| x * x).sum::<f64>() / n as f64).sqrt();
    out.iter().map(|x| (0.1 * x / rms) as f32).collect()
}

fn band_leq(report: &Value) -> Vec<(String, f64)> {
    report["bands"]["leq"]
        .as_object()
        .unwrap_or_else(|| panic!("no bands in {report}"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().expect("a level")))
        .collect()
}

#[test]
fn pink_noise_gives_equal_third_octave_bands() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = wav(dir.path(), "pink.wav", 48_000, &pink(48_000, 30, 7));
    let reports = levels_of(&f, &["--interval", "30s", "--bands", "third"]);
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(
        (
            r["bands"]["scale"].as_str(),
            r["bands"]["weighting"].as_str()
        ),
        (Some("third"), Some("Z"))
    );
    let bands = band_leq(r);
    let names: Vec<&str> = bands.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names.len(), 30);
    assert!(
        names.contains(&"25") && names.contains(&"20000"),
        "{names:?}"
    );
    let mean = bands.iter().map(|b| b.1).sum::<f64>() / bands.len() as f64;
    let spread = bands.iter().map(|b| (b.1 - mean).abs()).fold(0.0, f64::max);
    println!("pink noise: 30 bands within ±{spread:.2} dB of their mean {mean:.2} dB");
    for (name, db) in &bands {
        assert!(
            (db - mean).abs() <= 0.5,
            "{name} Hz: {db} dB vs the mean {mean:.2}: {bands:?}"
        );
    }
    // the 30 bands hold the whole power (their skirts overlap a little: class 1 allows the
    // effective bandwidth 0.4 dB over the nominal)
    let total = 10.0
        * bands
            .iter()
            .map(|b| 10f64.powf(b.1 / 10.0))
            .sum::<f64>()
            .log10();
    let lzeq = num(r, "lzeq");
    println!("pink noise: the bands sum to {total:.2} dB, LZeq {lzeq} dB");
    assert!(
        (total - lzeq).abs() <= 0.4,
        "bands {total:.2} dB vs LZeq {lzeq} dB"
    );
}

#[test]
fn a_sine_reads_its_level_in_its_band_and_a_weighting_corrects_at_mid_band() {
    let dir = tempfile::tempdir().expect("tmp");
    // −20 dBFS at exactly the 1 kHz and "125 Hz" octave mid-band frequencies (base 10:
    // 10^3 and 10^2.1 = 125.89 Hz)
    let low_f = 10f64.powf(2.1);
    let mut x = sine(48_000, 1000.0, 0.1, 4.0);
    for (s, l) in x.iter_mut().zip(sine(48_000, low_f, 0.1, 4.0)) {
        *s += l;
    }
    let f = wav(dir.path(), "two.wav", 48_000, &x);
    let a_low = analytic_db(Weighting::A, low_f);
    assert!((a_low + 16.1).abs() < 0.05, "{a_low}");
    for (weighting, low) in [("Z", -20.0), ("A", -20.0 + a_low)] {
        let reports = levels_of(
            &f,
            &[
                "--interval",
                "2s",
                "--bands",
                "octave",
                "--bands-weighting",
                weighting,
            ],
        );
        // the second interval: every filter has settled
        let bands = band_leq(&reports[1]);
        let at = |name: &str| bands.iter().find(|b| b.0 == name).expect("band").1;
        assert!((at("1000") + 20.0).abs() <= 0.1, "{weighting}: {bands:?}");
        assert!((at("125") - low).abs() <= 0.15, "{weighting}: {bands:?}");
        // the octave between them is far below (both tones ≥ 1 octave away)
        assert!(
            at("250") < -35.0 && at("500") < -35.0,
            "{weighting}: {bands:?}"
        );
    }
    let bad = bin()
        .arg("levels")
        .arg(&f)
        .args(["--bands", "fifth"])
        .output()
        .expect("run");
    assert!(!bad.status.success());
}

fn wav(dir: &Path, name: &str, rate: u32, samples: &[f32]) -> std::path::PathBuf {
    let p = dir.join(name);
    write_wav_f32(&p, rate, samples);
    p
}

fn levels_of(file: &Path, args: &[&str]) -> Vec<Value> {
    json_lines(&run_ok(bin().arg("levels").arg(file).args(args)))
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} in {v}"))
}

#[test]
fn a_1_khz_sine_reads_its_dbfs_in_a_c_and_z_with_a_full_scale_sine_at_0_dbfs() {
    let dir = tempfile::tempdir().expect("tmp");
    // Convention: a sine of amplitude 1.0 (full scale) is 0 dBFS; amplitude 0.1 is −20 dBFS.
    for (amplitude, dbfs) in [(1.0, 0.0), (0.1, -20.0), (0.001, -60.0)] {
        let f = wav(
            dir.path(),
            "tone.wav",
            48_000,
            &sine(48_000, 1000.0, amplitude, 3.0),
        );
        let reports = levels_of(&f, &["--interval", "1s"]);
        assert_eq!(reports.len(), 3);
        for r in &reports {
            assert_eq!(
                (
                    r["type"].as_str(),
                    r["calibrated"].as_bool(),
                    r["unit"].as_str()
                ),
                (Some("level"), Some(false), Some("dBFS"))
            );
            for key in ["laeq", "lceq", "lzeq"] {
                assert!(
                    (num(r, key) - dbfs).abs() <= 0.05,
                    "{key} of {amplitude}: {r}"
                );
            }
        }
        let calibrated = levels_of(&f, &["--interval", "3s", "--offset", "94.5"]);
        assert!((num(&calibrated[0], "laeq") - (dbfs + 94.5)).abs() <= 0.05);
        assert_eq!(calibrated[0]["calibrated"], true);
        assert_eq!(calibrated[0]["unit"], "dB");
        assert_eq!(num(&calibrated[0], "interval_s"), 3.0);
    }
}

/// Least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), p| (a + p.0 / n, b + p.1 / n));
    let num: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let den: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    num / den
}

#[test]
fn f_and_s_time_weighting_decay_at_34_7_and_4_3_db_per_second() {
    let rate = 48_000;
    let mut audio = sine(rate, 1000.0, 0.5, 3.0);
    audio.extend(std::iter::repeat_n(0.0, 4 * rate as usize));
    let mut meter = Meter::new(rate);
    let mut blocks = Vec::new();
    meter.process(&audio, &mut blocks);
    // A block's max of a decaying level is its value at the block's start.
    let after = |from: f64, to: f64, pick: fn(&Block) -> f64| -> Vec<(f64, f64)> {
        blocks
            .iter()
            .filter(|b| (3.0 + from..=3.0 + to).contains(&b.start_s))
            .map(|b| (b.start_s, to_db(pick(b), 0.0)))
            .collect()
    };
    let fast = -slope(&after(0.25, 1.0, |b| b.af_max));
    let slow = -slope(&after(0.5, 3.5, |b| b.as_max));
    assert!(
        (fast / 34.7 - 1.0).abs() <= 0.1,
        "F decays at {fast:.2} dB/s"
    );
    assert!(
        (slow / 4.34 - 1.0).abs() <= 0.1,
        "S decays at {slow:.2} dB/s"
    );
}

#[test]
fn la10_and_la90_of_a_signal_alternating_between_two_levels() {
    let dir = tempfile::tempdir().expect("tmp");
    let rate = 48_000;
    // Each second: 0.25 s at −20 dBFS, then 0.75 s at −40 dBFS.
    let loud = sine(rate, 1000.0, 0.1, 20.0);
    let audio: Vec<f32> = loud
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if i % (rate as usize) < (rate as usize) / 4 {
                x
            } else {
                x * 0.1
            }
        })
        .collect();
    let f = wav(dir.path(), "alternating.wav", rate, &audio);
    let reports = levels_of(&f, &["--interval", "10s"]);
    assert_eq!(reports.len(), 2);
    for r in &reports {
        assert!((num(r, "la10") + 20.0).abs() <= 0.2, "{r}");
        assert!((num(r, "la90") + 40.0).abs() <= 0.2, "{r}");
        // Energy mean: 10·log10(0.25·10^−2 + 0.75·10^−4) = −25.89 dB.
        assert!((num(r, "laeq") + 25.89).abs() <= 0.1, "{r}");
        assert!(num(r, "lamax") <= -19.9 && num(r, "lamax") >= -21.0, "{r}");
        // F decays 34.7 dB/s: after 0.75 s quiet it is at 10·log10(10^−4 + 10^−2·e^−6) = −39.04.
        assert!((num(r, "lamin") + 39.04).abs() <= 0.15, "{r}");
    }
}

/// A block of `db` (with calibration offset 100 dB) at block number `index`.
fn block(index: u64, db: f64) -> Block {
    let ms = 10f64.powf((db - 100.0) / 10.0) / 2.0;
    Block {
        index,
        start_s: index as f64 / 8.0,
        seconds: 0.125,
        a: ms,
        c: ms,
        z: ms,
        af_max: ms,
        af_min: Some(ms),
        as_max: ms,
        bands: None,
    }
}

/// Runs a rule over a level sequence starting at `start` (UTC): (seconds, dB) steps.
fn limit_events(
    rule: LimitRule,
    start: &str,
    steps: &[(f64, f64)],
) -> Vec<soundsentry::detect::Event> {
    let start: jiff::Timestamp = start.parse().expect("time");
    let clock = Clock {
        stream_start: start,
        zone: Some(jiff::tz::TimeZone::UTC),
    };
    let mut limits = Limits::new(vec![rule], clock, Some(100.0), "s", "m");
    let mut out = Vec::new();
    let mut index = 0u64;
    for &(seconds, db) in steps {
        for _ in 0..(seconds * 8.0) as u64 {
            limits.push(&block(index, db), &mut out);
            index += 1;
        }
    }
    limits.finish(&mut out);
    out
}

fn working_hours_rule() -> LimitRule {
    LimitRule {
        name: "LAeq 15m > 75 dB".into(),
        metric: Metric::Laeq,
        period: Duration::from_secs(900),
        threshold_db: 75.0,
        hours: Some((7 * 60, 19 * 60)),
        days: [true, true, true, true, true, false, false],
    }
}

#[test]
fn a_limit_rule_fires_and_ends_at_the_right_times_inside_its_hours() {
    let summary =
        |events: &[soundsentry::detect::Event]| -> Vec<(String, String, Option<String>, f64)> {
            events
                .iter()
                .map(|e| {
                    let l = e.limit.as_ref().expect("limit figures");
                    (
                        format!("{:?}", e.state),
                        e.start.clone(),
                        e.end.clone(),
                        l.value_db,
                    )
                })
                .collect()
        };
    // Monday 23 Nov 2026, 06:45 UTC: 80 dB until 07:30, then 60 dB until 08:00. The 06:45
    // quarter is before the hours; 07:00 and 07:15 exceed; 07:30 is under: the event ends at
    // the end of the last quarter above.
    let e = limit_events(
        working_hours_rule(),
        "2026-11-23T06:45:00Z",
        &[(2700.0, 80.0), (1800.0, 60.0)],
    );
    assert_eq!(
        summary(&e),
        [
            (
                "Start".into(),
                "2026-11-23T07:00:00.000Z".into(),
                None,
                80.0
            ),
            (
                "Update".into(),
                "2026-11-23T07:00:00.000Z".into(),
                None,
                80.0
            ),
            (
                "End".into(),
                "2026-11-23T07:00:00.000Z".into(),
                Some("2026-11-23T07:30:00.000Z".into()),
                60.0
            ),
        ]
    );
    assert!(e
        .iter()
        .all(|x| x.kind == soundsentry::detect::EventKind::Limit && x.id == e[0].id));
    // 18:45–19:15 at 80 dB: the 18:45 quarter exceeds; 19:00 is outside the hours and ends it.
    let e = limit_events(
        working_hours_rule(),
        "2026-11-23T18:45:00Z",
        &[(1800.0, 80.0)],
    );
    let s = summary(&e);
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(
        (s[0].0.as_str(), s[0].1.as_str()),
        ("Start", "2026-11-23T18:45:00.000Z")
    );
    assert_eq!(
        (s[1].0.as_str(), s[1].2.as_deref()),
        ("End", Some("2026-11-23T19:00:00.000Z"))
    );
    // Saturday: not a working day, nothing fires.
    assert!(limit_events(
        working_hours_rule(),
        "2026-11-28T09:00:00Z",
        &[(1800.0, 90.0)]
    )
    .is_empty());
    // 74.9 dB is not above 75.
    assert!(limit_events(
        working_hours_rule(),
        "2026-11-23T09:00:00Z",
        &[(1800.0, 74.9)]
    )
    .is_empty());
    // A stream that stops while above ends the event at the end of the last full quarter.
    let e = limit_events(
        working_hours_rule(),
        "2026-11-23T09:00:00Z",
        &[(1000.0, 80.0)],
    );
    let s = summary(&e);
    assert_eq!(
        (s[0].0.as_str(), s.last().map(|x| x.0.as_str())),
        ("Start", Some("End"))
    );
    assert_eq!(
        s.last().and_then(|x| x.2.clone()).as_deref(),
        Some("2026-11-23T09:15:00.000Z")
    );
}

#[test]
fn calibrate_prints_the_offset_of_a_94_db_tone_and_refuses_what_is_not_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let rate = 48_000;
    // 0.05 amplitude = −26.02 dBFS: a 94 dB calibrator then needs +120.02 dB.
    let f = wav(dir.path(), "cal.wav", rate, &sine(rate, 1000.0, 0.05, 6.0));
    let out = run_ok(bin().arg("calibrate").arg(&f));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("offset_db = 120.02"), "{text}");
    // Listening through a configured source gives the same.
    let cfg = dir.path().join("cal.toml");
    std::fs::write(
        &cfg,
        format!("[model]\npath = \"x\"\n[source]\npath = {f:?}\n"),
    )
    .expect("cfg");
    let out = run_ok(
        bin()
            .args(["calibrate", "--seconds", "5", "--config"])
            .arg(&cfg),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("offset_db = 120.02"));
    // And the offset calibrates: the tone then reads 94.0 dB.
    let r = levels_of(&f, &["--interval", "5s", "--offset", "120.02"]);
    assert!((num(&r[0], "laeq") - 94.0).abs() <= 0.05, "{}", r[0]);
    let bad = wav(dir.path(), "hum.wav", rate, &sine(rate, 250.0, 0.05, 6.0));
    let out = bin().arg("calibrate").arg(&bad).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("a sound calibrator gives 1000 Hz"));
}

#[test]
fn levels_of_bad_input_say_why() {
    let dir = tempfile::tempdir().expect("tmp");
    let low = wav(dir.path(), "low.wav", 4_000, &sine(4_000, 500.0, 0.1, 1.0));
    for (args, says) in [
        (vec![low.to_str().unwrap_or_default()], "8000 Hz or more"),
        (
            vec![low.to_str().unwrap_or_default(), "--interval", "100ms"],
            "125 ms",
        ),
        (vec!["/nonexistent.wav"], "nonexistent.wav"),
        // Issue 25 (10): these ran with every figure null and `"calibrated": true`.
        (
            vec![low.to_str().unwrap_or_default(), "--offset", "nan"],
            "--offset: NaN is not a plausible calibration offset",
        ),
        (
            vec![low.to_str().unwrap_or_default(), "--offset", "inf"],
            "--offset: inf is not a plausible calibration offset",
        ),
    ] {
        let out = bin().arg("levels").args(&args).output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{args:?}: {err}"
        );
    }
}

/// A config on the default model and the demo scene with `[levels]` on and `mqtt` appended.
fn levels_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let cfg = dir.join("levels.toml");
    let text = format!(
        "sensor_id = \"test-site\"\n[model]\npath = {:?}\n[source]\npath = {:?}\n\
         [detect]\non = 0.4\noff = 0.25\nmin_duration = \"1s\"\nhold = \"2500ms\"\n\
         [levels]\nenabled = true\ninterval = \"10s\"\noffset_db = 100.0\ntimezone = \"UTC\"\n\
         bands = \"third\"\n\
         [[levels.limit]]\nname = \"Loud second\"\nmetric = \"laeq\"\nperiod = \"1s\"\nthreshold_db = 0\n\
         {extra}",
        repo("models/sitehome-tiny-ast"),
        repo("samples/demo-scene.wav"),
    );
    std::fs::write(&cfg, text).expect("config");
    cfg
}

#[test]
fn run_reports_levels_and_limit_events_and_sound_events_carry_their_laeq() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = run_ok(
        bin()
            .args(["run", "--config"])
            .arg(levels_config(dir.path(), "")),
    );
    let lines = json_lines(&out);
    let reports: Vec<_> = lines.iter().filter(|l| l["type"] == "level").collect();
    // 64 s scene, a report every 10 s of the clock (:00, :10, …): the first and last are
    // partial, the others full and on the clock's 10 s marks; together they cover the scene.
    let total: f64 = reports.iter().map(|r| num(r, "interval_s")).sum();
    assert!((total - 63.95).abs() < 0.06, "{total}");
    let inner = &reports[1..reports.len() - 1];
    assert!(inner.len() >= 5);
    for r in inner {
        assert_eq!(num(r, "interval_s"), 10.0, "{r}");
        let start = r["start"].as_str().expect("start");
        assert!(start.ends_with("0.000Z"), "{r}");
    }
    assert!(reports
        .iter()
        .all(|r| r["calibrated"] == true && num(r, "laeq") > 0.0));
    let events: Vec<_> = lines.iter().filter(|l| l["type"].is_null()).collect();
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["seq"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(
        seqs,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "numbered in output order"
    );
    let sounds: Vec<_> = events.iter().filter(|e| e["kind"] == "sound").collect();
    assert!(!sounds.is_empty());
    assert!(
        sounds.iter().all(|e| e["laeq_db"].as_f64().is_some()),
        "sound events carry LAeq"
    );
    // Every second of the scene is above 0 dB: one limit event, started at 0 and ended at the end.
    let limit: Vec<_> = events.iter().filter(|e| e["kind"] == "limit").collect();
    assert_eq!(
        limit.first().map(|e| e["state"].clone()),
        Some("start".into())
    );
    assert_eq!(limit.last().map(|e| e["state"].clone()), Some("end".into()));
    // Periods are aligned to the clock: the last one ends on a whole second after the scene.
    let end = limit.last().expect("end");
    assert!((63.0..65.0).contains(&num(end, "end_offset_s")), "{end}");
    assert!(
        end["end"].as_str().is_some_and(|s| s.ends_with(".000Z")),
        "{end}"
    );
    assert_eq!(limit[0]["limit"]["threshold_db"], 0.0);
    assert!(limit[0]["score"].is_null());
}

#[test]
fn levels_reach_mqtt_with_home_assistant_sensors_and_the_limit_state() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = Broker::start(dir.path(), "allow_anonymous true\n");
    let sub = Subscriber::start(broker.port, dir.path(), None, &[]);
    let cfg = levels_config(
        dir.path(),
        &format!("[mqtt]\noutbox = {:?}\n", dir.path().join("outbox.redb")),
    );
    let out = run_ok(
        bin()
            .args(["run", "--config"])
            .arg(&cfg)
            .args(["--mqtt", &broker.url()]),
    );
    let lines = json_lines(&out);
    let printed: Vec<Value> = lines
        .iter()
        .filter(|l| l["type"] == "level")
        .cloned()
        .collect();
    // the stream ends before its day does: the day's figures, marked incomplete
    let days: Vec<&Value> = lines.iter().filter(|l| l["type"] == "day").collect();
    assert_eq!(days.len(), 1, "{lines:?}");
    assert_eq!(days[0]["complete"], false);
    assert!(num(days[0], "measured_s") > 60.0);
    let base = "soundsentry/test_site";
    let levels = || -> Vec<Value> {
        sub.lines()
            .into_iter()
            .filter(|(t, _)| *t == format!("{base}/level"))
            .map(|(_, p)| serde_json::from_str(&p).expect("level JSON"))
            .collect()
    };
    assert!(wait_for(Duration::from_secs(10), || levels().len() >= printed.len()));
    assert_eq!(levels(), printed);
    // third-octave bands travel in the reports (the scene is 16 kHz: 25 Hz to 6.3 kHz)
    let bands = printed[0]["bands"]["leq"].as_object().expect("bands");
    assert_eq!(bands.len(), 25, "{bands:?}");
    assert!(bands.contains_key("6300") && !bands.contains_key("8000"));
    let state = retained(broker.port, &format!("{base}/label/loud_second/state"), &[]);
    assert_eq!(state.values().next().map(String::as_str), Some("OFF"));
    let disc = retained(broker.port, "homeassistant/#", &[]);
    let laeq: Value =
        serde_json::from_str(&disc["homeassistant/sensor/test_site/laeq/config"]).expect("JSON");
    assert_eq!(laeq["state_topic"], format!("{base}/level"));
    assert_eq!(laeq["device_class"], "sound_pressure");
    // the day's figures: retained, with Lden/Ldn/loud-night sensors reading them
    let day = retained(broker.port, &format!("{base}/day"), &[]);
    let day: Value = serde_json::from_str(day.values().next().expect("day message")).expect("JSON");
    assert_eq!(&day, days[0]);
    for key in ["lden", "ldn", "night_lamax_events"] {
        let s: Value =
            serde_json::from_str(&disc[&format!("homeassistant/sensor/test_site/{key}/config")])
                .expect("JSON");
        assert_eq!(s["state_topic"], format!("{base}/day"));
        assert_eq!(s["value_template"], format!("{{{{ value_json.{key} }}}}"));
    }
    let limit: Value =
        serde_json::from_str(&disc["homeassistant/binary_sensor/test_site/loud_second/config"])
            .expect("JSON");
    assert_eq!(limit["device_class"], "problem");
}

/// Issue 25 (2): one NaN or infinite sample used to poison the weighting filters, and every
/// later interval read -297 dB. Now such samples are silence, counted and logged once.
#[test]
fn issue_25_one_nan_sample_does_not_poison_the_level_meter() {
    let dir = tempfile::tempdir().expect("tmp");
    let rate = 48_000;
    let clean = sine(rate, 1000.0, 0.1, 6.0);
    let mut bad = clean.clone();
    bad[rate as usize / 2] = f32::NAN;
    bad[rate as usize + 7] = f32::INFINITY;
    let clean = levels_of(
        &wav(dir.path(), "clean.wav", rate, &clean),
        &["--interval", "1s"],
    );
    let bad_file = wav(dir.path(), "nan.wav", rate, &bad);
    let out = run_ok(
        bin()
            .arg("levels")
            .arg(&bad_file)
            .args(["--interval", "1s"]),
    );
    let poisoned = json_lines(&out);
    assert_eq!(poisoned.len(), clean.len());
    // The seconds after the bad samples read what the clean signal reads.
    for (c, p) in clean.iter().zip(&poisoned).skip(2) {
        assert!((num(c, "laeq") - num(p, "laeq")).abs() < 0.01, "{c} vs {p}");
    }
    assert!(poisoned.iter().all(|r| num(r, "laeq").is_finite()));
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(log.matches("non-finite audio samples").count(), 1, "{log}");

    // The same through a live f32le stream on stdin into `run` with levels on.
    let cfg = dir.path().join("stdin.toml");
    std::fs::write(
        &cfg,
        format!(
            "[model]\npath = {:?}\n[source]\nkind = \"stdin\"\nformat = \"f32le\"\nrate = {rate}\n\
             channels = 1\n[levels]\nenabled = true\ninterval = \"1s\"\n",
            repo("models/sitehome-tiny-ast")
        ),
    )
    .expect("config");
    let mut daemon = bin()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let bytes: Vec<u8> = bad.iter().flat_map(|x| x.to_le_bytes()).collect();
    {
        use std::io::Write;
        let mut stdin = daemon.stdin.take().expect("stdin");
        for piece in bytes.chunks(rate as usize / 10 * 4) {
            stdin.write_all(piece).expect("feed");
            // A live stream: the source drops what the analysis cannot take, so pace it.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let out = daemon.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live: Vec<_> = json_lines(&out)
        .into_iter()
        .filter(|l| l["type"] == "level")
        .collect();
    assert!(live.len() >= 5, "{live:?}");
    let tail = &live[2..];
    let want = num(&clean[3], "laeq");
    for r in tail.iter().filter(|r| num(r, "interval_s") == 1.0) {
        assert!((num(r, "laeq") - want).abs() < 0.05, "{r} vs {want}");
    }
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("nonfinite_samples_total=2"), "{log}");
}

#[test]
fn issue_29_a_loud_noise_held_long_enough_is_a_level_event() {
    // 10 s: quiet noise floor, a 1 kHz sine at -6 dBFS from 3 to 5 s, a 0.3 s burst at 8 s
    // (its LAF stays above -20 dB for about 0.7 s with the F decay: shorter than min_duration)
    let dir = tempfile::tempdir().expect("tempdir");
    let rate = 16_000;
    let mut x: Vec<f32> = (0..10 * rate as usize)
        .map(|i| 0.001 * ((i * 7919 % 1000) as f32 / 500.0 - 1.0))
        .collect();
    let tone = sine(rate, 1000.0, 0.5, 2.0);
    for (i, v) in tone.iter().enumerate() {
        x[3 * rate as usize + i] += v;
    }
    let burst = sine(rate, 1000.0, 0.5, 0.3);
    for (i, v) in burst.iter().enumerate() {
        x[8 * rate as usize + i] += v;
    }
    let file = wav(dir.path(), "loud.wav", rate, &x);
    let cfg = dir.path().join("loud.toml");
    std::fs::write(
        &cfg,
        format!(
            "[model]\npath = {:?}\n[source]\npath = {:?}\n[detect]\nmin_duration = \"1s\"\n\
             [[detect.watch]]\nlabels = [\"Siren\"]\non = 0.99\n\
             [[detect.level]]\nmetric = \"laf\"\nthreshold_db = -20\nmin_duration = \"1s\"\nhold = \"1s\"\n\
             [levels]\nenabled = true\nstdout = false\n[output]\nstdout = true\n",
            repo("models/sitehome-tiny-ast"),
            file
        ),
    )
    .expect("config");
    let out = run_ok(bin().args(["run", "--config"]).arg(&cfg));
    let events: Vec<Value> = json_lines(&out)
        .into_iter()
        .filter(|e| e["kind"] == "level")
        .collect();
    println!("{events:?}");
    let states: Vec<&str> = events.iter().filter_map(|e| e["state"].as_str()).collect();
    assert_eq!(
        states,
        ["start", "end"],
        "one event, the burst too short: {events:?}"
    );
    let (start, end) = (&events[0], &events[1]);
    assert_eq!(start["label"], "LAF > -20 dB");
    assert_eq!(start["limit"]["metric"], "laf");
    let s = num(start, "start_offset_s");
    let e = num(end, "end_offset_s");
    assert!((s - 3.0).abs() <= 0.25, "start {s}");
    assert!((e - 5.0).abs() <= 0.6, "end {e}");
    let peak = end["limit"]["peak_db"].as_f64().expect("peak");
    assert!((peak - (-6.02)).abs() <= 0.5, "peak {peak}");
    assert!(start["seq"].as_u64().is_some() && end["id"] == start["id"]);
}
