//! Criterion benches of the pipeline stages at production shapes (16 kHz, 400/160/512,
//! 128 mels, 1024-frame windows). Set SOUNDSENTRY_BENCH_MODELS to a colon-separated list
//! of model folders (e.g. full-size exports from tools/export_ast.py) to bench them too.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use soundsentry::audio::Resampler;
use soundsentry::features::{Fbank, FbankConfig};
use soundsentry::model::{Model, ModelConfig};

fn noise(n: usize) -> Vec<f32> {
    soundsentry::noise::Noise::new(1).samples(n, 0.2)
}

fn fbank(c: &mut Criterion) {
    let audio = noise(160_000); // 10 s at 16 kHz → 998 frames
    let mut g = c.benchmark_group("fbank");
    for (name, cfg) in [("ast", FbankConfig::ast()), ("beats", FbankConfig::beats())] {
        g.throughput(Throughput::Elements(cfg.frames_for(audio.len()) as u64));
        g.bench_function(BenchmarkId::new("10s", name), |b| {
            let mut fb = Fbank::new(&cfg).expect("config");
            let mut out = Vec::with_capacity(998 * 128);
            b.iter(|| {
                out.clear();
                fb.reset();
                fb.process(&audio, &mut out)
            })
        });
    }
    g.finish();
}

fn resample(c: &mut Criterion) {
    let audio = noise(48_000);
    let mut g = c.benchmark_group("resample");
    g.throughput(Throughput::Elements(audio.len() as u64));
    g.bench_function("48k_to_16k_1s", |b| {
        let mut r = Resampler::new(48_000, 16_000).expect("resampler");
        let mut out = Vec::with_capacity(20_000);
        b.iter(|| {
            out.clear();
            r.process(&audio, &mut out).expect("resample")
        })
    });
    g.finish();
}

/// The level meter on 1 s of 48 kHz audio with everything `run` does with it: A/C/Z weighting,
/// F/S time weighting, 125 ms blocks, a report every second, one limit rule, the history.
/// Time per iteration ÷ 1 s is the share of one core the meter costs.
fn levels(c: &mut Criterion) {
    use soundsentry::levels::bands::{BandBank, BandScale};
    use soundsentry::levels::weighting::Weighting;
    let audio = noise(48_000);
    let mut cfg = soundsentry::levels::LevelsConfig {
        enabled: true,
        interval: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    cfg.limits.push(soundsentry::levels::LimitRule {
        name: "LAeq 15m > 75 dB".into(),
        metric: soundsentry::levels::Metric::Laeq,
        period: std::time::Duration::from_secs(900),
        threshold_db: 75.0,
        hours: Some((420, 1140)),
        days: [true; 7],
    });
    let mut g = c.benchmark_group("levels");
    g.throughput(Throughput::Elements(audio.len() as u64));
    g.bench_function("meter_48k_1s", |b| {
        let mut chain = soundsentry::levels::LevelChain::new(
            &cfg,
            48_000,
            "bench",
            "m",
            jiff::Timestamp::now(),
        )
        .expect("rate");
        b.iter(|| chain.process(&audio, &mut |o| drop(std::hint::black_box(o))))
    });
    // the same chain with band levels; and the band filters alone
    for scale in [BandScale::Octave, BandScale::Third] {
        let mut with = cfg.clone();
        with.bands = Some((scale, Weighting::Z));
        // built once: designing the filters is benchmarked on its own below
        let mut chain = soundsentry::levels::LevelChain::new(
            &with,
            48_000,
            "bench",
            "m",
            jiff::Timestamp::now(),
        )
        .expect("rate");
        g.bench_function(format!("meter_48k_1s_{}", scale.name()), |b| {
            b.iter(|| chain.process(&audio, &mut |o| drop(std::hint::black_box(o))))
        });
        let mut bank = BandBank::new(scale, 48_000);
        g.bench_function(format!("bands_48k_1s_{}", scale.name()), |b| {
            b.iter(|| {
                bank.process(&audio);
                std::hint::black_box(bank.take())
            })
        });
    }
    g.finish();
    // designing the filters (once, when a stream starts)
    let mut g = c.benchmark_group("levels_design");
    g.sample_size(10);
    for scale in [BandScale::Octave, BandScale::Third] {
        g.bench_function(format!("bands_48k_{}", scale.name()), |b| {
            b.iter(|| BandBank::new(scale, 48_000))
        });
    }
    g.finish();
}

fn models(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![
        root.join("tests/fixtures/models/tiny-ast"),
        root.join("tests/fixtures/models/tiny-beats"),
        // the bundled default model, at its production window
        root.join("models/sitehome-tiny-ast"),
        root.join("models/sitehome-tiny-ast-int8"),
    ];
    if let Ok(extra) = std::env::var("SOUNDSENTRY_BENCH_MODELS") {
        dirs.extend(
            extra
                .split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
        );
    }
    let mut g = c.benchmark_group("model");
    g.sample_size(10);
    for dir in dirs {
        let model = Model::load(&ModelConfig::new(&dir)).expect("model");
        let m = &model.manifest;
        let input = vec![0.1f32; m.window_frames * m.frame_bins()];
        g.bench_function(BenchmarkId::new("window", model.name()), |b| {
            b.iter(|| model.score_prepared(&input).expect("inference"))
        });
    }
    g.finish();
}

criterion_group!(benches, fbank, resample, levels, models);
criterion_main!(benches);
