//! The analysis thread: audio chunks → level meter and fbank windows, plus the status and stats.

use crate::web::live::spectrogram_columns;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use super::output::Line;
use crate::analysis::{Analyzer, Window};
use crate::levels::{LevelChain, LevelOutput};
use crate::mqtt::Mqtt;
use crate::notify::Notifier;
use crate::source::Chunk;
use crate::stats::Health;

/// What the analysis thread owns and reads.
pub(super) struct Analysis<'a> {
    pub analyzer: Analyzer,
    /// The level meter, when `levels.enabled`.
    pub levels: Option<LevelChain>,
    pub audio: Receiver<Chunk>,
    /// To the inference thread.
    pub windows: Sender<Window>,
    /// To the output thread: level reports and limit events.
    pub lines: Sender<Line>,
    /// At real-time pace a window that finds the model busy is dropped and counted.
    pub skip_when_busy: bool,
    pub health: &'a Health,
    pub notify: &'a Notifier,
    pub mqtt: Option<&'a Mqtt>,
    pub shutdown: &'a AtomicBool,
    /// The web server's view, with the mel bins and frame shift (ms) of a window's input:
    /// each window's new frames become spectrogram columns.
    pub live: Option<(&'a crate::web::Live, usize, f32)>,
    /// The event clips' ring, fed every chunk at the source rate.
    pub recorder: Option<&'a crate::recorder::Recorder>,
}

/// What the analysis thread did.
pub(super) struct Analysed {
    /// Source samples analysed.
    pub samples: u64,
    /// Windows dropped because the model was busy.
    pub skipped: u64,
    /// The first error (a source failure, a bad chunk); the run ends with it.
    pub failure: Option<anyhow::Error>,
}

/// Analyses chunks until the source ends (its sender is dropped) or fails, or `output_ended`
/// says the output thread stopped (then it sets `shutdown`). Wakes at least once a second to
/// feed the watchdog, logs a stats line a minute and updates the service status every 10 s.
/// At the end it flushes the fbank and the level meter; the senders drop when it returns.
pub(super) fn analyse(a: Analysis, output_ended: impl Fn() -> bool) -> Analysed {
    let Analysis {
        mut analyzer,
        mut levels,
        audio,
        windows,
        lines,
        skip_when_busy,
        health,
        notify,
        mqtt,
        shutdown,
        live,
        recorder,
    } = a;
    let mut samples = 0u64;
    let mut skipped = 0u64;
    let mut failure = None;
    let mut on_level = |out: LevelOutput| {
        // The writer only stops when every sender is dropped, so sends cannot fail.
        let _ = lines.send(match out {
            LevelOutput::Report(r) => Line::Level(Box::new(r)),
            LevelOutput::Day(d) => Line::Day(Box::new(d)),
            LevelOutput::Event(e) => {
                health.events_total.fetch_add(1, Ordering::Relaxed);
                Line::Event(Box::new(e))
            }
        });
    };
    let mut on_window = |w: Window| {
        if let Some((l, bins, shift_ms)) = live.filter(|(l, _, _)| l.watched()) {
            let new = ((w.end_s - w.new_from_s) * 1000.0 / f64::from(shift_ms)).round() as usize;
            let columns = spectrogram_columns(&w.input, bins, w.frames, new.min(w.frames));
            l.frames(w.end_s, bins / 2, &columns);
        }
        if skip_when_busy {
            if let Err(TrySendError::Full(_)) = windows.try_send(w) {
                skipped += 1;
                health.windows_skipped_total.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            // The inference thread only stops when this sender is dropped.
            let _ = windows.send(w);
        }
    };
    let mut next_status = Instant::now();
    // A stats line a minute in the log (the first one after a minute of running).
    let mut next_stats_log = Instant::now() + Duration::from_secs(60);
    loop {
        // Wake at least once a second, audio or not, to feed the watchdog.
        let chunk = match audio.recv_timeout(Duration::from_secs(1)) {
            Ok(c) => Some(c),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if let Some(chunk) = chunk {
            let result = chunk.map_err(anyhow::Error::from).and_then(|c| {
                samples += c.len() as u64;
                if let Some(r) = recorder {
                    r.audio(&c);
                }
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
        notify.analysis_tick(windows.is_empty());
        // The output thread ends early only on an error (stdout closed): then the run ends
        // with it, rather than analyse on with nowhere to say what it hears.
        if output_ended() {
            shutdown.store(true, Ordering::Relaxed);
            break;
        }
        if Instant::now() >= next_stats_log {
            next_stats_log = Instant::now() + Duration::from_secs(60);
            log_stats(health, mqtt);
        }
        if Instant::now() >= next_status {
            next_status = Instant::now() + Duration::from_secs(10);
            let outbox = mqtt.map(Mqtt::outbox_state);
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
    Analysed {
        samples,
        skipped,
        failure,
    }
}

/// The stats line of the log, once a minute.
fn log_stats(health: &Health, mqtt: Option<&Mqtt>) {
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
            .map(|m| outbox_status(&m.outbox_state()))
            .unwrap_or_default(),
        "stats"
    );
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
