//! Threads and queues of `run`: source → analysis (fbank) → inference (model, detector) → output.
//!
//! Everything that can fail is built before a thread starts. Shutdown goes upstream first:
//! the source stops, the analysis drains its queue, the inference scores what it was given and
//! ends open events, the output flushes.

mod analyse;
mod infer;
mod output;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use crossbeam_channel::bounded;
use serde::Serialize;

use crate::analysis::{Analyzer, Window};
use crate::archive::{Archive, Row};
use crate::config::{Config, SourceConfig};
use crate::detect::{Detector, EventStamp, Watch};
use crate::levels::LevelChain;
use crate::model::{slugify, Model};
use crate::mqtt::{Entities, Mqtt};
use crate::source::{feed_source, open_source, Chunk};
use crate::stats::Health;
use crate::web::live::{LimitLine, Live};
use analyse::{analyse, Analysis};
use infer::{score_windows, Settings};
use output::{write_lines, Line, Sinks};

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

/// Signals from outside a run.
#[derive(Debug, Default)]
pub struct Control {
    /// Set to stop (SIGINT, SIGTERM).
    pub shutdown: std::sync::Arc<AtomicBool>,
    /// Set to reload the detector settings from `config` (SIGHUP); cleared when done.
    pub reload: std::sync::Arc<AtomicBool>,
    /// The configuration file a reload reads.
    pub config: Option<std::path::PathBuf>,
    /// When the stream began (default: now); `report --file` places a recording in time.
    pub start: Option<jiff::Timestamp>,
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
    let analyzer =
        Analyzer::new(&model.manifest, rate, hop_frames).context("building the analysis")?;
    let stamp = EventStamp {
        sensor: cfg.sensor_id.clone(),
        model: model.name().to_owned(),
        stream_start: control.start.unwrap_or_else(jiff::Timestamp::now),
        tz: cfg.levels.timezone.clone(),
    };
    let levels = match cfg.levels.enabled {
        true => Some(
            LevelChain::new(
                &cfg.levels,
                rate,
                &cfg.sensor_id,
                model.name(),
                stamp.stream_start,
            )
            .context("starting the level meter")?
            .with_triggers(cfg.detect.level.clone()),
        ),
        false => None,
    };
    let history = levels.as_ref().map(LevelChain::history);
    let privacy = Privacy::resolve(cfg, model, &watches)?;
    check_clip_labels(cfg, &watches)?;
    let recorder = crate::recorder::Recorder::start(&cfg.clips, cfg.privacy.clips, rate);
    let archive = Archive::open(&cfg.history)?;
    if let Some(a) = &archive {
        a.record(Row::Note(
            stamp.stream_start.as_millisecond() as f64 / 1000.0,
            "start",
            serde_json::json!({
                "sensor": cfg.sensor_id, "model": model.name(),
                "version": env!("CARGO_PKG_VERSION"),
                "offset_db": cfg.levels.offset_db, "calibrated": cfg.levels.offset_db.is_some(),
                "levels": cfg.levels.enabled,
                "interval_s": cfg.levels.interval.as_secs_f64(),
            })
            .to_string(),
        ));
    }
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
                    .map(|l| [l.limit_names(), l.trigger_names()].concat())
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
    let notify = std::sync::Arc::new(crate::notify::Notifier::from_env());
    let live = cfg.http.listen.map(|_| {
        let mut l = Live::new(
            &cfg.sensor_id,
            model.name(),
            watches.iter().map(|w| w.name.clone()).collect(),
            limit_lines(cfg),
            health.clone(),
            notify.clone(),
        );
        l.mqtt = mqtt.as_ref().map(Mqtt::probe);
        l.clips = recorder
            .as_ref()
            .and_then(|r| Some((r.dir()?.to_owned(), r.counters())));
        std::sync::Arc::new(l)
    });
    let server = match &live {
        Some(l) => crate::web::start(&cfg.http, l.clone()).context("starting the web server")?,
        None => None,
    };
    let detector = Detector::new(watches, stamp);
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
            live: live.as_deref(),
            recorder: recorder.as_ref(),
            suppressed: &privacy.suppressed,
            archive: archive.as_ref(),
            restarts: &health.source.restarts_total,
        };
        // Level reports and limit events come from this (the analysis) thread.
        let level_tx = line_tx.clone();
        let writer = s.spawn(move || write_lines(out, line_rx, sinks));
        let settings = Settings {
            output,
            mqtt_scores: cfg.mqtt.scores,
            health: &health,
            control,
            notify: &notify,
            history,
            live: live.as_deref(),
            privacy: recorder.as_ref().map(|r| (r, &privacy)),
        };
        let inference =
            s.spawn(move || score_windows(model, detector, window_rx, line_tx, settings));
        notify.ready(&format!("analysing with {}", model.name()));
        let analysis = Analysis {
            analyzer,
            levels,
            audio: audio_rx,
            windows: window_tx,
            lines: level_tx,
            skip_when_busy,
            health: &health,
            notify: &notify,
            mqtt: mqtt.as_ref(),
            shutdown,
            // The page's spectrogram is drawn from log-mel frames: none for a waveform model.
            live: live
                .as_deref()
                .zip(model.manifest.fbank.as_ref())
                .map(|(l, f)| (l, f.mel_bins, f.frame_shift_ms)),
            recorder: recorder.as_ref(),
        };
        // The analysis runs on this thread; its senders drop when it returns.
        let analysed = analyse(analysis, || writer.is_finished());
        let audio_s = analysed.samples as f64 / rate as f64;
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
        if analysed.skipped > 0 {
            tracing::warn!(
                windows_skipped_total = analysed.skipped,
                "the model is slower than real time"
            );
        }
        let (windows_total, _, _) = match (analysed.failure, scored, written) {
            (Some(e), _, _) => return Err(e),
            (None, Err(e), _) | (None, Ok(_), Err(e)) => return Err(e),
            (None, Ok(done), Ok(())) => done,
        };
        Ok(RunStats {
            audio_s,
            wall_s: started.elapsed().as_secs_f64(),
            windows_total,
            windows_skipped_total: analysed.skipped,
            // Sound and limit events.
            events_total: health.events_total.load(Ordering::Relaxed),
        })
    });
    if let Some(r) = recorder {
        let c = r.counters();
        r.finish();
        tracing::info!(
            written_total = c.written_total.load(Ordering::Relaxed),
            failed_total = c.failed_total.load(Ordering::Relaxed),
            withheld_total = c.withheld_total.load(Ordering::Relaxed),
            removed_total = c.removed_total.load(Ordering::Relaxed),
            "clips"
        );
    }
    if let Some(a) = archive {
        let restarts = health.source.restarts_total.load(Ordering::Relaxed);
        let detail = serde_json::json!({
            "source_restarts_total": restarts,
            "overruns_total": health.source.overruns_total.load(Ordering::Relaxed),
            "ok": result.is_ok(),
        });
        // a recording placed in time stops where its audio ends
        let at = match (&control.start, &result) {
            (Some(s), Ok(stats)) => s.as_millisecond() as f64 / 1000.0 + stats.audio_s,
            _ => crate::archive::now(),
        };
        a.record(Row::Note(at, "stop", detail.to_string()));
        a.finish();
    }
    if let Some(s) = server {
        s.stop();
    }
    // Everything is in the outbox by now; the publisher flushes it and says offline.
    if let Some(m) = mqtt {
        m.shutdown();
    }
    result
}

/// The limit rules as the web page draws them.
fn limit_lines(cfg: &Config) -> Vec<LimitLine> {
    if !cfg.levels.enabled {
        return Vec::new();
    }
    cfg.levels
        .limits
        .iter()
        .map(|r| LimitLine {
            name: r.name.clone(),
            metric: r.metric.name(),
            threshold_db: r.threshold_db,
        })
        .collect()
}

/// What `[privacy]` resolves to for this model and these watches.
pub(crate) struct Privacy {
    /// Model outputs that mean someone speaks.
    pub outputs: Vec<usize>,
    /// A window scoring this on one of them has speech.
    pub threshold: f32,
    /// Watches whose events are not published (`publish = false`).
    pub suppressed: std::collections::HashSet<String>,
    /// Seconds of audio one window covers.
    pub window_s: f64,
}

impl Privacy {
    fn resolve(cfg: &Config, model: &Model, watches: &[Watch]) -> anyhow::Result<Self> {
        let find = |name: &str| {
            model
                .labels
                .iter()
                .position(|l| l.name.eq_ignore_ascii_case(name) || l.slug == slugify(name))
        };
        let outputs: Vec<usize> = match &cfg.privacy.labels {
            None => crate::recorder::config::SPEECH_FAMILY
                .iter()
                .filter_map(|n| find(n))
                .collect(),
            Some(names) => {
                let unknown: Vec<&String> = names.iter().filter(|n| find(n).is_none()).collect();
                if !unknown.is_empty() {
                    anyhow::bail!(
                        "privacy.labels: {unknown:?} not labels of model {:?}",
                        model.name()
                    );
                }
                names.iter().filter_map(|n| find(n)).collect()
            }
        };
        let suppressed = if cfg.privacy.publish {
            Default::default()
        } else {
            watches
                .iter()
                .filter(|w| w.outputs.iter().any(|o| outputs.contains(o)))
                .map(|w| w.name.clone())
                .collect()
        };
        let m = &model.manifest;
        let frame_s = m
            .fbank
            .as_ref()
            .map_or(0.0, |f| f64::from(f.frame_length_ms) / 1000.0);
        let window_s = m.window_s() + frame_s;
        Ok(Self {
            outputs,
            threshold: cfg.privacy.threshold,
            suppressed,
            window_s,
        })
    }
}

/// `[clips] labels` must name watches (or be `*`).
fn check_clip_labels(cfg: &Config, watches: &[Watch]) -> anyhow::Result<()> {
    let unknown: Vec<&String> = cfg
        .clips
        .labels
        .iter()
        .filter(|l| {
            *l != "*"
                && !watches.iter().any(|w| &w.name == *l)
                && !cfg.detect.level.iter().any(|t| &t.name == *l)
        })
        .collect();
    if !unknown.is_empty() {
        anyhow::bail!(
            "clips.labels: {unknown:?} not watched (watched: {}; and the [[detect.level]] names)",
            watches
                .iter()
                .map(|w| w.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}
