//! The output thread: numbered events, level reports and scores lines to stdout and MQTT.

use std::io::Write;

use crate::analysis::WindowScores;
use crate::archive::{Archive, Row};
use crate::detect::Event;
use crate::levels::LevelReport;
use crate::model::Model;
use crate::mqtt::Mqtt;

/// One line of output.
pub(super) enum Line {
    Event(Box<Event>),
    Scores(String),
    Level(Box<LevelReport>),
    Day(Box<crate::levels::day::DaySummary>),
}

/// Where the output thread sends lines.
pub(super) struct Sinks<'a> {
    /// Events on stdout.
    pub events: bool,
    /// Scores lines on stdout.
    pub scores: bool,
    /// Level reports on stdout.
    pub levels: bool,
    /// The MQTT publisher.
    pub mqtt: Option<&'a Mqtt>,
    /// Scores on MQTT too.
    pub mqtt_scores: bool,
    /// The web server's view.
    pub live: Option<&'a crate::web::Live>,
    /// Event clips.
    pub recorder: Option<&'a crate::recorder::Recorder>,
    /// Watches whose events are not published (`[privacy] publish = false`).
    pub suppressed: &'a std::collections::HashSet<String>,
    /// The local history.
    pub archive: Option<&'a Archive>,
    /// The source's restart counter (each restart is noted in the history).
    pub restarts: &'a std::sync::atomic::AtomicU64,
}

/// The output thread. It numbers the events (`seq`) in output order; an event goes to the MQTT
/// queue (the outbox on disk, or memory while the outbox cannot be written) before it is
/// printed. Nothing the queue does stops this thread or stdout.
pub(super) fn write_lines(
    out: impl Write,
    rx: crossbeam_channel::Receiver<Line>,
    sinks: Sinks,
) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(out);
    let mut seq = 0;
    let mut clips = std::collections::HashMap::new();
    let mut restarts = 0;
    for line in rx.iter() {
        // a restart of the source (a capture device or command) is noted in the history, at
        // the next line (a level report at least every interval)
        let now = sinks.restarts.load(std::sync::atomic::Ordering::Relaxed);
        if let (Some(a), true) = (sinks.archive, now > restarts) {
            let detail = serde_json::json!({ "restarts_total": now }).to_string();
            a.record(Row::Note(crate::archive::now(), "source restart", detail));
        }
        restarts = now;
        match line {
            Line::Event(_) if matches!(&line, Line::Event(e) if sinks.suppressed.contains(&e.label)) =>
                {}
            Line::Event(mut e) => {
                if let Some(r) = sinks.recorder {
                    clip(r, &mut e, &mut clips);
                }
                seq += 1;
                e.seq = seq;
                emit(&*e, sinks.events, &sinks, &mut out)?;
                if let Some(l) = sinks.live {
                    l.event(&e);
                }
            }
            Line::Level(r) => {
                emit(&*r, sinks.levels, &sinks, &mut out)?;
                if let Some(l) = sinks.live {
                    l.level(&r);
                }
            }
            Line::Day(d) => {
                if let Some(m) = sinks.mqtt {
                    m.day(&d);
                }
                if sinks.levels {
                    serde_json::to_writer(&mut out, &*d)?;
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

/// An event or a level report: into the history first, then to MQTT, then on stdout when
/// `print` says so.
trait Published: serde::Serialize {
    fn to_mqtt(&self, mqtt: &Mqtt);
    fn row(&self, line: String) -> Row;
}

impl Published for Event {
    fn to_mqtt(&self, mqtt: &Mqtt) {
        mqtt.event(self);
    }
    fn row(&self, line: String) -> Row {
        Row::Event(Box::new(self.clone()), line)
    }
}

impl Published for LevelReport {
    fn to_mqtt(&self, mqtt: &Mqtt) {
        mqtt.level(self);
    }
    fn row(&self, line: String) -> Row {
        Row::Level(Box::new(self.clone()), line)
    }
}

fn emit(
    msg: &impl Published,
    print: bool,
    sinks: &Sinks,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let line = match (print, sinks.archive) {
        (false, None) => String::new(),
        _ => serde_json::to_string(msg)?,
    };
    if let Some(a) = sinks.archive {
        a.record(msg.row(line.clone()));
    }
    if let Some(m) = sinks.mqtt {
        msg.to_mqtt(m);
    }
    if print {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// The JSON line of a window's top scores.
pub(super) fn scores_line(model: &Model, w: &WindowScores, k: usize) -> String {
    let top = crate::format::top_json(&model.labels, &w.scores, k);
    serde_json::json!({
        "v": 1, "type": "scores", "end_offset_s": crate::format::round3(w.end_s),
        "frames": w.frames, "top": top,
    })
    .to_string()
}

/// Names the clip of an event that keeps one, and opens or closes it.
fn clip(
    r: &crate::recorder::Recorder,
    e: &mut Event,
    open: &mut std::collections::HashMap<String, String>,
) {
    use crate::detect::{EventKind, EventState};
    if !r.wants(&e.label, e.kind == EventKind::Limit) {
        return;
    }
    match e.state {
        EventState::Start => {
            let name = crate::recorder::Recorder::name(&e.start, &e.slug, &e.id);
            r.open(&e.id, &name, e.start_offset_s);
            open.insert(e.id.clone(), name.clone());
            e.clip = Some(name);
        }
        EventState::Update => e.clip = open.get(&e.id).cloned(),
        EventState::End => {
            e.clip = open.remove(&e.id);
            if e.clip.is_some() {
                r.close(&e.id, e.end_offset_s.unwrap_or(e.start_offset_s));
            }
        }
    }
}
