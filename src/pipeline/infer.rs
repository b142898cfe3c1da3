//! The inference thread: windows → model scores → detector events, and the SIGHUP reload.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::output::{scores_line, Line};
use super::Control;
use crate::analysis::{Window, WindowScores};
use crate::config::Config;
use crate::detect::{Detector, Event};
use crate::levels::History;
use crate::model::Model;
use crate::notify::Notifier;
use crate::stats::Health;

/// The inference thread: scores each window, runs the detector, sends lines to the output.
/// When the windows stop, it ends every open event at the end of the last window scored.
/// Returns (windows scored, event messages).
pub(super) fn score_windows(
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
        live,
        privacy,
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
        let ms = t.elapsed().as_secs_f32() * 1000.0;
        health.inference(ms);
        notify.inference_beat();
        health.windows_total.fetch_add(1, Ordering::Relaxed);
        let w = WindowScores::new(&w, scores);
        if let Some((r, p)) = privacy {
            if p.outputs.iter().any(|&o| w.scores[o] >= p.threshold) {
                r.private(
                    w.end_s - p.window_s - PRIVACY_MARGIN_S,
                    w.end_s + PRIVACY_MARGIN_S,
                );
            }
        }
        scored += 1;
        last_end = last_end.max(w.end_s);
        detector.process(&w, &mut events);
        add_laeq(history.as_deref(), &mut events, w.end_s);
        if let Some(l) = live {
            l.inference_ms(ms);
            l.scores(serde_json::json!({
                "end_offset_s": crate::format::round3(w.end_s),
                "top": crate::format::top_json(&model.labels, &w.scores, PAGE_TOP_K),
            }));
        }
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
pub(super) struct Settings<'a> {
    pub output: &'a crate::config::OutputConfig,
    pub mqtt_scores: bool,
    pub health: &'a Health,
    pub control: &'a Control,
    pub notify: &'a Notifier,
    /// Recent levels, when measured (the LAeq of sound events).
    pub history: Option<std::sync::Arc<History>>,
    /// The web server's view.
    pub live: Option<&'a crate::web::Live>,
    /// The clip recorder and the privacy rule: windows with speech are marked in its ring.
    pub privacy: Option<(&'a crate::recorder::Recorder, &'a super::Privacy)>,
}

/// Seconds added either side of a window with speech before clips are withheld or muted:
/// speech under loud noise scores in only some of the windows it spans.
const PRIVACY_MARGIN_S: f64 = 0.5;

/// Labels the web page shows for each window.
const PAGE_TOP_K: usize = 8;

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
