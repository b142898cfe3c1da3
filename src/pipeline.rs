//! Threads and queues of `run`: source → analysis (fbank) → inference (model, detector) → output.
//!
//! Everything that can fail is built before a thread starts. Shutdown goes upstream first:
//! the source stops, the analysis drains its queue, the inference scores what it was given and
//! ends open events, the output flushes.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use crossbeam_channel::bounded;
use serde::Serialize;

use crate::analysis::{Analyzer, Window, WindowScores};
use crate::config::{Config, SourceConfig};
use crate::detect::{Detector, Event, EventStamp, Watch};
use crate::levels::{History, LevelChain, LevelOutput, LevelReport};
use crate::model::{slugify, Model};
use crate::mqtt::{Entities, Mqtt};
use crate::source::{feed_source, open_source, Chunk};
use crate::stats::Health;

/// Chunks (about 100 ms each) between the source and the analysis: a few seconds.
const AUDIO_QUEUE: usize = 64;
/// Windows between the analysis and the inference thread: one being scored, one waiting.
const WINDOW_QUEUE: usize = 1;
/// Lines between the inference and the output thread.
const OUTPUT_QUEUE: usize = 1024;

/// What a run did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RunStats {
    /// Seconds of audio analysed.
    pub audio_s: f64,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// Windows scored.
    pub windows_total: u64,
    /// Windows dropped because the model was still busy (real-time pace only).
    pub windows_skipped_total: u64,
    /// Event messages sent (sound and limit events).
    pub events_total: u64,
}

/// One line of output.
enum Line {
    Event(Box<Event>),
    Scores(String),
    Level(Box<LevelReport>),
}

/// Signals from outside a run.
#[derive(Debug, Default)]
pub struct Control {
    /// Set to stop (SIGINT, SIGTERM).
    pub shutdown: std::sync::Arc<AtomicBool>,
    /// Set to reload the detector settings from `config` (SIGHUP); cleared when done.
    pub reload: std::sync::Arc<AtomicBool>,
    /// The configuration file a reload reads.
    pub config: Option<std::path::PathBuf>,
}

/// Runs the configured source through the model and detector until the source ends or
/// `control.shutdown` is set, writing JSON lines to `out`. Open events are ended before it
/// returns.
pub fn run(
    cfg: &Config,
    model: &Model,
    watches: Vec<Watch>,
    control: &Control,
    out: impl Write + Send,
) -> anyhow::Result<RunStats> {
    let shutdown: &AtomicBool = &control.shutdown;
    let (file, rate) = open_source(&cfg.source)?;
    let hop_frames = model.manifest.frames_in(cfg.hop);
    let mut analyzer =
        Analyzer::new(&model.manifest, rate, hop_frames).context("building the analysis")?;
    let stamp = EventStamp {
        sensor: cfg.sensor_id.clone(),
        model: model.name().to_owned(),
        stream_start: jiff::Timestamp::now(),
    };
    let mut levels = match cfg.levels.enabled {
        true => Some(
            LevelChain::new(
                &cfg.levels,
                rate,
                &cfg.sensor_id,
                model.name(),
                stamp.stream_start,
            )
            .context("starting the level meter")?,
        ),
        false => None,
    };
    let history = levels.as_ref().map(LevelChain::history);
    let health = std::sync::Arc::new(Health::default());
    let mqtt = match &cfg.mqtt.url {
        Some(_) => {
            let entities = Entities {
                sounds: watches
                    .iter()
                    .map(|w| (w.name.clone(), slugify(&w.name)))
                    .collect(),
                limits: levels
                    .as_ref()
                    .map(LevelChain::limit_names)
                    .unwrap_or_default(),
                levels: levels.as_ref().map(|_| cfg.levels.offset_db.is_some()),
            };
            Some(
                Mqtt::start(
                    &cfg.mqtt,
                    &cfg.sensor_id,
                    model.name(),
                    entities,
                    health.clone(),
                )
                .context("starting MQTT")?,
            )
        }
        None => None,
    };
    let detector = Detector::new(watches, stamp);
    let notify = crate::notify::Notifier::from_env();
    let (audio_tx, audio_rx) = bounded::<Chunk>(AUDIO_QUEUE);
    let (window_tx, window_rx) = bounded::<Window>(WINDOW_QUEUE);
    let (line_tx, line_rx) = bounded::<Line>(OUTPUT_QUEUE);
    let started = Instant::now();
    let output = &cfg.output;
    // At real-time pace a window that finds the model busy is dropped and counted, so the
    // fbank (and, live, the capture) never waits; replaying as fast as possible, it waits.
    let skip_when_busy = match &cfg.source {
        SourceConfig::File { realtime, .. } => *realtime,
        _ => true,
    };
    let source_health = &health.source;

    let result = std::thread::scope(|s| {
        s.spawn(move || feed_source(&cfg.source, file, rate, shutdown, audio_tx, source_health));
        let sinks = Sinks {
            events: output.stdout,
            scores: output.scores,
            levels: cfg.levels.stdout,
            mqtt: mqtt.as_ref(),
            mqtt_scores: cfg.mqtt.scores,
        };
        // Level reports and limit events come from this (the analysis) thread.
        let level_tx = line_tx.clone();
        let writer = s.spawn(move || write_lines(out, line_rx, sinks));
        let health_ref = &*health;
        let settings = Settings {
            output,
            mqtt_scores: cfg.mqtt.scores,
            health: health_ref,
            control,
            notify: &notify,
            history,
        };
        let inference =
            s.spawn(move || score_windows(model, detector, window_rx, line_tx, settings));

        let mut samples = 0u64;
        let mut skipped = 0u64;
        let mut failure = None;
        let limit_health = &*health;
        let mut on_level = move |out: LevelOutput| {
            // The writer only stops when every sender is dropped, so sends cannot fail.
            let _ = level_tx.send(match out {
                LevelOutput::Report(r) => Line::Level(Box::new(r)),
                LevelOutput::Event(e) => {
                    limit_health.events_total.fetch_add(1, Ordering::Relaxed);
                    Line::Event(Box::new(e))
                }
            });
        };
        let mut on_window = |w: Window| {
            if skip_when_busy {
                if let Err(crossbeam_channel::TrySendError::Full(_)) = window_tx.try_send(w) {
                    skipped += 1;
                    health.windows_skipped_total.fetch_add(1, Ordering::Relaxed);
                }
            } else {
                // The inference thread only stops when this sender is dropped.
                let _ = window_tx.send(w);
            }
        };
        notify.ready(&format!("analysing with {}", model.name()));
        let mut next_status = Instant::now();
        // A stats line a minute in the log (the first one after a minute of running).
        let mut next_stats_log = Instant::now() + std::time::Duration::from_secs(60);
        loop {
            // Wake at least once a second, audio or not, to feed the watchdog.
            let chunk = match audio_rx.recv_timeout(std::time::Duration::from_secs(1)) {
                Ok(c) => Some(c),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            };
            if let Some(chunk) = chunk {
                let result = chunk.map_err(anyhow::Error::from).and_then(|c| {
                    samples += c.len() as u64;
                    // Levels first, at the source rate: the history then covers every window.
                    if let Some(l) = levels.as_mut() {
                        l.process(&c, &mut on_level);
                    }
                    analyzer.process(&c, &mut on_window).map_err(Into::into)
                });
                if let Err(e) = result {
                    failure = Some(e);
                    shutdown.store(true, Ordering::Relaxed);
                    break;
                }
            }
            notify.analysis_tick(window_tx.is_empty());
            // The output thread ends early only on an error (stdout closed): then the run ends
            // with it, rather than analyse on with nowhere to say what it hears.
            if writer.is_finished() {
                shutdown.store(true, Ordering::Relaxed);
                break;
            }
            if Instant::now() >= next_stats_log {
                next_stats_log = Instant::now() + std::time::Duration::from_secs(60);
                let (p50, p95) = health.inference_percentiles();
                tracing::info!(
                    windows_total = health.windows_total.load(Ordering::Relaxed),
                    windows_skipped_total = health.windows_skipped_total.load(Ordering::Relaxed),
                    events_total = health.events_total.load(Ordering::Relaxed),
                    overruns_total = health.source.overruns_total.load(Ordering::Relaxed),
                    source_restarts_total = health.source.restarts_total.load(Ordering::Relaxed),
                    nonfinite_samples_total = crate::audio::nonfinite_total(),
                    inference_ms_p50 = p50.map(|v| format!("{v:.1}")).unwrap_or_default(),
                    inference_ms_p95 = p95.map(|v| format!("{v:.1}")).unwrap_or_default(),
                    outbox = mqtt
                        .as_ref()
                        .map(|m| outbox_status(&m.outbox_state()))
                        .unwrap_or_default(),
                    "stats"
                );
            }
            if Instant::now() >= next_status {
                next_status = Instant::now() + std::time::Duration::from_secs(10);
                let outbox = mqtt.as_ref().map(Mqtt::outbox_state);
                notify.status(&format!(
                    "windows {} (skipped {}), events {}, overruns {}{}",
                    health.windows_total.load(Ordering::Relaxed),
                    health.windows_skipped_total.load(Ordering::Relaxed),
                    health.events_total.load(Ordering::Relaxed),
                    health.source.overruns_total.load(Ordering::Relaxed),
                    outbox.as_ref().map(outbox_status).unwrap_or_default(),
                ));
            }
        }
        notify.stopping();
        if let Err(e) = analyzer.finish(&mut on_window) {
            failure.get_or_insert(e.into());
        }
        if let Some(l) = levels.as_mut() {
            l.finish(&mut on_level);
        }
        drop(on_level);
        drop(window_tx);
        let audio_s = samples as f64 / rate as f64;
        let scored = inference
            .join()
            .map_err(|_| anyhow::anyhow!("inference thread panicked"))
            .and_then(|r| r.map(|(windows, events)| (windows, events, audio_s)));
        let written = writer
            .join()
            .map_err(|_| anyhow::anyhow!("output thread panicked"))
            .and_then(|r| r.context("writing output"));
        let overruns = health.source.overruns_total.load(Ordering::Relaxed);
        if overruns > 0 {
            tracing::warn!(
                overruns_total = overruns,
                "audio dropped: the analysis fell behind the source"
            );
        }
        if skipped > 0 {
            tracing::warn!(
                windows_skipped_total = skipped,
                "the model is slower than real time"
            );
        }
        let (windows_total, _, _) = match (failure, scored, written) {
            (Some(e), _, _) => return Err(e),
            (None, Err(e), _) | (None, Ok(_), Err(e)) => return Err(e),
            (None, Ok(done), Ok(())) => done,
        };
        Ok(RunStats {
            audio_s,
            wall_s: started.elapsed().as_secs_f64(),
            windows_total,
            windows_skipped_total: skipped,
            // Sound and limit events.
            events_total: health.events_total.load(Ordering::Relaxed),
        })
    });
    // Everything is in the outbox by now; the publisher flushes it and says offline.
    if let Some(m) = mqtt {
        m.shutdown();
    }
    result
}

/// The inference thread: scores each window, runs the detector, sends lines to the output.
/// When the windows stop, it ends every open event at the end of the last window scored.
/// Returns (windows scored, event messages).
fn score_windows(
    model: &Model,
    mut detector: Detector,
    windows: crossbeam_channel::Receiver<Window>,
    lines: crossbeam_channel::Sender<Line>,
    settings: Settings,
) -> anyhow::Result<(u64, u64)> {
    let Settings {
        output,
        mqtt_scores,
        health,
        control,
        notify,
        history,
    } = settings;
    let (mut scored, mut sent) = (0u64, 0u64);
    let mut events = Vec::new();
    let mut last_end = 0.0f64;
    let send = |line: Line| {
        // The writer only stops when this sender is dropped, so sends cannot fail.
        let _ = lines.send(line);
    };
    let mut result = Ok(());
    for w in windows.iter() {
        if control.reload.swap(false, Ordering::SeqCst) {
            reload(model, control, &mut detector, last_end, &mut events);
        }
        let t = Instant::now();
        let scores = match model.score_prepared(&w.input) {
            Ok(s) => s,
            Err(e) => {
                result = Err(anyhow::Error::from(e));
                break;
            }
        };
        health.inference(t.elapsed().as_secs_f32() * 1000.0);
        notify.inference_beat();
        health.windows_total.fetch_add(1, Ordering::Relaxed);
        let w = WindowScores::new(&w, scores);
        scored += 1;
        last_end = last_end.max(w.end_s);
        detector.process(&w, &mut events);
        add_laeq(history.as_deref(), &mut events, w.end_s);
        if output.scores || mqtt_scores {
            send(Line::Scores(scores_line(model, &w, output.top_k)));
        }
        for e in events.drain(..) {
            sent += 1;
            health.events_total.fetch_add(1, Ordering::Relaxed);
            send(Line::Event(Box::new(e)));
        }
    }
    detector.finish(last_end, &mut events);
    add_laeq(history.as_deref(), &mut events, last_end);
    for e in events.drain(..) {
        sent += 1;
        health.events_total.fetch_add(1, Ordering::Relaxed);
        send(Line::Event(Box::new(e)));
    }
    result.map(|()| (scored, sent))
}

/// Sets each event's LAeq, from its start to its end (or to `now_s` while it lasts).
fn add_laeq(history: Option<&History>, events: &mut [Event], now_s: f64) {
    if let Some(h) = history {
        for e in events {
            e.laeq_db = h.laeq(e.start_offset_s, e.end_offset_s.unwrap_or(now_s));
        }
    }
}

/// What the inference thread reads besides the windows.
struct Settings<'a> {
    output: &'a crate::config::OutputConfig,
    mqtt_scores: bool,
    health: &'a Health,
    control: &'a Control,
    notify: &'a crate::notify::Notifier,
    /// Recent levels, when measured (the LAeq of sound events).
    history: Option<std::sync::Arc<History>>,
}

/// SIGHUP: re-reads the configuration and gives the detector its new watches and settings.
/// An invalid file keeps the old settings; every error is logged. Open events of labels that
/// stay watched stay open; those of labels no longer watched end now.
fn reload(
    model: &Model,
    control: &Control,
    detector: &mut Detector,
    now_s: f64,
    events: &mut Vec<Event>,
) {
    let Some(path) = &control.config else {
        return;
    };
    let loaded = Config::load(path)
        .map_err(anyhow::Error::from)
        .and_then(|cfg| {
            crate::config::resolve_watches(&cfg.detect, &model.labels)
                .map_err(|errors| crate::config::ConfigError {
                    file: path.clone(),
                    errors,
                })
                .map_err(anyhow::Error::from)
        });
    match loaded {
        Ok(watches) => {
            let n = watches.len();
            detector.set_watches(watches, now_s, events);
            tracing::info!(
                config = %path.display(),
                watched = n,
                from_s = format_args!("{now_s:.3}"),
                "detector settings reloaded"
            );
        }
        Err(e) => tracing::error!("reload refused, the old settings stay: {e:#}"),
    }
}

/// Where the output thread sends lines.
struct Sinks<'a> {
    /// Events on stdout.
    events: bool,
    /// Scores lines on stdout.
    scores: bool,
    /// Level reports on stdout.
    levels: bool,
    /// The MQTT publisher.
    mqtt: Option<&'a Mqtt>,
    /// Scores on MQTT too.
    mqtt_scores: bool,
}

/// The output thread. It numbers the events (`seq`) in output order; an event goes to the MQTT
/// queue (the outbox on disk, or memory while the outbox cannot be written) before it is
/// printed. Nothing the queue does stops this thread or stdout.
fn write_lines(
    out: impl Write,
    rx: crossbeam_channel::Receiver<Line>,
    sinks: Sinks,
) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(out);
    let mut seq = 0;
    for line in rx.iter() {
        match line {
            Line::Event(mut e) => {
                seq += 1;
                e.seq = seq;
                if let Some(m) = sinks.mqtt {
                    m.event(&e);
                }
                if sinks.events {
                    serde_json::to_writer(&mut out, &e)?;
                    out.write_all(b"\n")?;
                }
            }
            Line::Level(r) => {
                if let Some(m) = sinks.mqtt {
                    m.level(&r);
                }
                if sinks.levels {
                    serde_json::to_writer(&mut out, &r)?;
                    out.write_all(b"\n")?;
                }
            }
            Line::Scores(s) => {
                if let (Some(m), true) = (sinks.mqtt, sinks.mqtt_scores) {
                    m.scores(s.clone());
                }
                if sinks.scores {
                    writeln!(out, "{s}")?;
                }
            }
        }
        // Flush per line so a reader downstream sees each event as it happens.
        if rx.is_empty() {
            out.flush()?;
        }
    }
    Ok(out.flush()?)
}

/// The outbox's part of the service status: empty while it is fine.
fn outbox_status(s: &crate::mqtt::StoreState) -> String {
    match &s.problem {
        None => String::new(),
        Some(why) => format!(
            "; MQTT outbox full/unwritable ({why}): {} in memory, {} lost",
            s.in_memory, s.lost_total
        ),
    }
}

fn scores_line(model: &Model, w: &WindowScores, k: usize) -> String {
    let top = crate::format::top_json(&model.labels, &w.scores, k);
    serde_json::json!({
        "v": 1, "type": "scores", "end_offset_s": crate::format::round3(w.end_s),
        "frames": w.frames, "top": top,
    })
    .to_string()
}
