//! `soundsentry levels` (the level reports of a recording) and `soundsentry calibrate` (the
//! calibration offset from a 94 dB / 1 kHz calibrator tone).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;

use crate::audio::AudioFile;
use crate::cli::{BandScaleArg, CalibrateArgs, LevelsArgs};
use crate::levels::bands::{BandScale, BandSet};
use crate::levels::{measure_tone, weighting::MIN_RATE, Meter, RateTooLow, Reporter};

/// `soundsentry levels FILE`: one JSON line per interval on stdout.
pub fn levels(args: &LevelsArgs) -> anyhow::Result<()> {
    let (file, interval, offset) = (args.file.as_path(), args.interval, args.offset);
    let sensor = args.sensor.as_deref();
    let ms = interval.as_millis();
    anyhow::ensure!(
        ms >= 125 && ms.is_multiple_of(125),
        "--interval {}: must be a whole number of 125 ms blocks",
        humantime::format_duration(interval)
    );
    if let Some(o) = offset {
        crate::config::plausible_offset(o).map_err(|e| anyhow::anyhow!("--offset: {e}"))?;
    }
    let mut audio = AudioFile::open(file)?;
    let rate = audio.sample_rate();
    if rate < MIN_RATE {
        return Err(RateTooLow { rate }).with_context(|| file.display().to_string());
    }
    let sensor = sensor.map(str::to_owned).unwrap_or_else(|| {
        file.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let weighting = crate::levels::config::parse_band_weighting(&args.bands_weighting)
        .map_err(|e| anyhow::anyhow!("--bands-weighting: {e}"))?;
    let scale = args.bands.map(|b| match b {
        BandScaleArg::Octave => BandScale::Octave,
        BandScaleArg::Third => BandScale::Third,
    });
    let mut meter = Meter::new(rate);
    if let Some(scale) = scale {
        meter = meter.with_bands(scale);
    }
    // A recording's intervals run from its start.
    let clock = crate::levels::Clock {
        stream_start: jiff::Timestamp::now(),
        zone: None,
    };
    let mut reporter = Reporter::new(interval, &sensor, clock, offset)
        .with_bands(scale.map(|s| BandSet::new(s, weighting, rate)));
    let (mut chunk, mut blocks) = (Vec::new(), Vec::new());
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut end_s = 0.0;
    let mut write = |blocks: &mut Vec<crate::levels::Block>, out: &mut dyn Write| {
        for b in blocks.drain(..) {
            end_s = b.end_s();
            if let Some(r) = reporter.push(&b) {
                serde_json::to_writer(&mut *out, &r)?;
                out.write_all(b"\n")?;
            }
        }
        anyhow::Ok(())
    };
    loop {
        chunk.clear();
        let more = audio.read_chunk(&mut chunk)?;
        meter.process(&chunk, &mut blocks);
        write(&mut blocks, &mut out)?;
        if !more {
            break;
        }
    }
    meter.finish(&mut blocks);
    write(&mut blocks, &mut out)?;
    if let Some(r) = reporter.finish(end_s) {
        serde_json::to_writer(&mut out, &r)?;
        out.write_all(b"\n")?;
    }
    Ok(out.flush()?)
}

/// `soundsentry calibrate`: measures the calibrator tone in `file`, or listens to the source
/// of `config` for `seconds`, and prints the offset that makes it read `reference_db`.
pub fn calibrate(args: &CalibrateArgs) -> anyhow::Result<()> {
    let (file, config) = (args.file.as_deref(), args.config.as_deref());
    let (seconds, reference_db) = (args.seconds, args.reference_db);
    let (samples, rate, what) = match (file, config) {
        (Some(f), _) => {
            let mut audio = AudioFile::open(f)?;
            (
                audio.read_all()?,
                audio.sample_rate(),
                f.display().to_string(),
            )
        }
        (None, Some(c)) => {
            let cfg = crate::config::Config::load(c)?;
            let (samples, rate) = listen(&cfg.source, seconds)?;
            (samples, rate, format!("the source of {}", c.display()))
        }
        (None, None) => anyhow::bail!("give a recording of the calibrator, or --config to listen"),
    };
    if rate < MIN_RATE {
        return Err(RateTooLow { rate }).context(what);
    }
    let tone = measure_tone(&samples, rate).with_context(|| format!("calibrating from {what}"))?;
    let offset = reference_db - tone.dbfs;
    println!(
        "calibrator tone: {:.1} Hz at {:.2} dBFS, steady within {:.2} dB over {:.0} s",
        tone.frequency_hz, tone.dbfs, tone.spread_db, tone.seconds
    );
    println!("offset_db = {offset:.2}");
    eprintln!(
        "Put `offset_db = {offset:.2}` in the [levels] table of the configuration: levels are \
         then reported in dB SPL (a {reference_db} dB calibrator reads {reference_db} dB)."
    );
    Ok(())
}

/// Reads `seconds` of audio from a configured source (file, stdin, command or capture).
fn listen(source: &crate::config::SourceConfig, seconds: f64) -> anyhow::Result<(Vec<f32>, u32)> {
    let (file, rate) = crate::source::open_source(source)?;
    let want = (seconds.max(0.0) * f64::from(rate)) as usize;
    let shutdown = AtomicBool::new(false);
    let health = crate::stats::SourceHealth::default();
    let (tx, rx) = crossbeam_channel::bounded(64);
    eprintln!("listening for {seconds} s…");
    std::thread::scope(|s| {
        s.spawn(|| crate::source::feed_source(source, file, rate, &shutdown, tx, &health));
        let mut samples = Vec::with_capacity(want);
        // Bounded: the source ends by itself, or is stopped once enough audio arrived, or
        // after twice the time asked for plus 10 s.
        let deadline = std::time::Instant::now() + Duration::from_secs_f64(2.0 * seconds + 10.0);
        while samples.len() < want && std::time::Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(chunk) => samples.extend_from_slice(&chunk?),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
        }
        shutdown.store(true, Ordering::SeqCst);
        while rx.recv_timeout(Duration::from_secs(5)).is_ok() {}
        samples.truncate(want);
        Ok((samples, rate))
    })
}
