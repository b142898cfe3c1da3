//! Per-label state machines: on/off thresholds (hysteresis), minimum duration, hold, updates.

use std::time::Duration;

use super::event::{Event, EventKind, EventStamp, EventState};
use crate::analysis::WindowScores;
use crate::format::{rfc3339, round3};
use crate::model::slugify;

/// Thresholds and timings of one watched label or group.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchSettings {
    /// Score at or above which a sound counts as present.
    pub on: f32,
    /// Score below which a present sound counts as gone (≤ on).
    pub off: f32,
    /// How long the score must stay ≥ on before "start" is sent.
    pub min_duration: Duration,
    /// How long the score must stay < off before "end" is sent.
    pub hold: Duration,
    /// Interval of "update" messages while the event is open.
    pub update_interval: Duration,
}

/// A watched label or group: its name and the model outputs whose maximum is its score.
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    /// Event label.
    pub name: String,
    /// Indices of the model outputs in the group.
    pub outputs: Vec<usize>,
    /// Thresholds and timings.
    pub settings: WatchSettings,
    /// When it is watched (local time of day and weekdays); `None`: always. Outside it the
    /// watch's score counts as 0, so an open event ends as it would in silence.
    pub schedule: Option<Schedule>,
}

/// Hours and days a watch applies, like a limit rule's.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// [start, end) in minutes after local midnight; end ≤ start runs past midnight.
    pub hours: Option<(u32, u32)>,
    /// Weekdays, Monday first.
    pub days: [bool; 7],
}

impl Schedule {
    /// Whether the schedule holds at this moment in `tz`.
    pub fn holds(&self, at: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> bool {
        let z = at.to_zoned(tz.clone());
        let minute = u32::from(z.hour().unsigned_abs()) * 60 + u32::from(z.minute().unsigned_abs());
        let weekday = z.weekday().to_monday_zero_offset() as usize;
        crate::levels::in_window(self.hours, &self.days, minute, weekday)
    }
}

#[derive(Debug, Clone)]
enum State {
    Idle,
    /// Above `on` since `since`, not yet long enough.
    Pending {
        since: f64,
        peak: f32,
    },
    Active(Open),
}

#[derive(Debug, Clone)]
struct Open {
    id: String,
    start: f64,
    peak: f32,
    last_update: f64,
    /// When the score first fell below `off` in the current quiet spell.
    quiet_since: Option<f64>,
}

/// The detectors of all watched labels.
pub struct Detector {
    watches: Vec<(Watch, State)>,
    stamp: EventStamp,
}

impl Detector {
    /// One state machine per watch; `stamp` fills sensor, model and times.
    pub fn new(watches: Vec<Watch>, stamp: EventStamp) -> Self {
        Self {
            watches: watches.into_iter().map(|w| (w, State::Idle)).collect(),
            stamp,
        }
    }

    /// Replaces the watch list (settings reload). Open events of labels that are still
    /// watched stay open; those of removed labels are ended at `now_s`.
    pub fn set_watches(&mut self, watches: Vec<Watch>, now_s: f64, out: &mut Vec<Event>) {
        let mut old = std::mem::take(&mut self.watches);
        for w in watches {
            let state = old
                .iter()
                .position(|(o, _)| o.name == w.name)
                .map(|i| old.remove(i).1)
                .unwrap_or(State::Idle);
            self.watches.push((w, state));
        }
        for (w, state) in old {
            if let State::Active(open) = state {
                let ev = self.end_event(&w, &open, now_s, 0.0);
                out.push(ev);
            }
        }
    }

    /// Feeds one window's scores; appends the resulting events to `out`.
    pub fn process(&mut self, window: &WindowScores, out: &mut Vec<Event>) {
        // The audio new in this window is what moved the score: it dates the change.
        let t = window.new_from_s;
        for i in 0..self.watches.len() {
            let score = {
                let w = &self.watches[i].0;
                let watched = w.schedule.as_ref().is_none_or(|s| {
                    let at = self.stamp.stream_start
                        + jiff::SignedDuration::from_secs_f64(window.end_s.max(0.0));
                    s.holds(at, &self.stamp.tz)
                });
                if watched {
                    w.outputs
                        .iter()
                        .filter_map(|&o| window.scores.get(o).copied())
                        .fold(0.0f32, f32::max)
                } else {
                    0.0
                }
            };
            let state = std::mem::replace(&mut self.watches[i].1, State::Idle);
            let next = self.step(i, state, t, window.end_s, score, out);
            self.watches[i].1 = next;
        }
    }

    fn step(
        &mut self,
        i: usize,
        state: State,
        t: f64,
        now: f64,
        score: f32,
        out: &mut Vec<Event>,
    ) -> State {
        let s = self.watches[i].0.settings.clone();
        match state {
            State::Idle if score >= s.on => self.pending_or_start(i, t, now, score, score, out),
            State::Idle => State::Idle,
            State::Pending { since, peak } if score >= s.on => {
                self.pending_or_start(i, since, now, score, peak.max(score), out)
            }
            State::Pending { .. } => State::Idle,
            State::Active(mut open) => {
                open.peak = open.peak.max(score);
                if score < s.off {
                    let quiet = *open.quiet_since.get_or_insert(t);
                    if now - quiet >= s.hold.as_secs_f64() {
                        let w = self.watches[i].0.clone();
                        let ev = self.end_event(&w, &open, quiet, score);
                        out.push(ev);
                        return State::Idle;
                    }
                } else {
                    open.quiet_since = None;
                }
                if now - open.last_update >= s.update_interval.as_secs_f64() {
                    open.last_update = now;
                    let w = self.watches[i].0.clone();
                    let ev = self.event(&w, &open, EventState::Update, score, None);
                    out.push(ev);
                }
                State::Active(open)
            }
        }
    }

    fn pending_or_start(
        &mut self,
        i: usize,
        since: f64,
        now: f64,
        score: f32,
        peak: f32,
        out: &mut Vec<Event>,
    ) -> State {
        let w = self.watches[i].0.clone();
        if now - since < w.settings.min_duration.as_secs_f64() {
            return State::Pending { since, peak };
        }
        let open = Open {
            id: ulid::Ulid::new().to_string(),
            start: since,
            peak,
            last_update: now,
            quiet_since: None,
        };
        let ev = self.event(&w, &open, EventState::Start, score, None);
        out.push(ev);
        State::Active(open)
    }

    /// Ends every open event at `end_s` (stream end or shutdown) and resets all states.
    pub fn finish(&mut self, end_s: f64, out: &mut Vec<Event>) {
        for i in 0..self.watches.len() {
            let state = std::mem::replace(&mut self.watches[i].1, State::Idle);
            if let State::Active(open) = state {
                let w = self.watches[i].0.clone();
                let ev = self.end_event(&w, &open, end_s, 0.0);
                out.push(ev);
            }
        }
    }

    fn end_event(&mut self, w: &Watch, open: &Open, end_s: f64, score: f32) -> Event {
        let end_s = end_s.max(open.start);
        self.event(w, open, EventState::End, score, Some(end_s))
    }

    fn event(
        &mut self,
        w: &Watch,
        open: &Open,
        state: EventState,
        score: f32,
        end_s: Option<f64>,
    ) -> Event {
        let base = self.stamp.stream_start;
        Event {
            v: 1,
            id: open.id.clone(),
            sensor: self.stamp.sensor.clone(),
            label: w.name.clone(),
            slug: slugify(&w.name),
            kind: EventKind::Sound,
            state,
            score: Some(round4(score)),
            peak_score: Some(round4(open.peak)),
            start: rfc3339(base, open.start),
            end: end_s.map(|e| rfc3339(base, e)),
            duration_s: end_s.map(|e| round3(e - open.start)),
            laeq_db: None,
            model: self.stamp.model.clone(),
            seq: 0,
            start_offset_s: round3(open.start),
            end_offset_s: end_s.map(round3),
            limit: None,
            clip: None,
        }
    }
}

fn round4(x: f32) -> f32 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector(settings: WatchSettings) -> Detector {
        let stamp = EventStamp {
            sensor: "test".into(),
            model: "m".into(),
            stream_start: jiff::Timestamp::UNIX_EPOCH,
            tz: jiff::tz::TimeZone::UTC,
        };
        let watch = Watch {
            name: "Siren".into(),
            outputs: vec![0, 1],
            settings,
            schedule: None,
        };
        Detector::new(vec![watch], stamp)
    }

    fn settings() -> WatchSettings {
        WatchSettings {
            on: 0.5,
            off: 0.3,
            min_duration: Duration::from_secs(2),
            hold: Duration::from_secs(2),
            update_interval: Duration::from_secs(5),
        }
    }

    /// Feeds one score per second (hop 1 s) for the group's two outputs.
    fn run(d: &mut Detector, scores: &[f32]) -> Vec<Event> {
        let mut out = Vec::new();
        for (i, &s) in scores.iter().enumerate() {
            let w = WindowScores {
                end_s: i as f64 + 1.0,
                new_from_s: i as f64,
                frames: 100,
                scores: vec![0.0, s],
            };
            d.process(&w, &mut out);
        }
        out
    }

    #[test]
    fn a_schedule_watches_only_in_its_hours_and_days() {
        // the stream starts on Monday 1970-01-05 at 06:59:50 UTC; watched 07:00-07:00:20 is
        // not expressible, so hours 07:00-08:00 on Mondays, in a zone 0 h from UTC
        let mut d = detector(settings());
        d.stamp.stream_start = "1970-01-05T06:59:50Z".parse().expect("time");
        d.watches[0].0.schedule = Some(Schedule {
            hours: Some((7 * 60, 8 * 60)),
            days: [true, false, false, false, false, false, false],
        });
        let ev = run(&mut d, &[0.9; 20]);
        // windows ending before 07:00 count as silence: the event starts at the first one
        // inside (ending 10 s in, its new audio from 9 s)
        assert_eq!(ev[0].state, EventState::Start);
        assert_eq!(ev[0].start_offset_s, 9.0);
        // on a Tuesday nothing is watched
        let mut d = detector(settings());
        d.stamp.stream_start = "1970-01-06T07:10:00Z".parse().expect("time");
        d.watches[0].0.schedule = Some(Schedule {
            hours: Some((7 * 60, 8 * 60)),
            days: [true, false, false, false, false, false, false],
        });
        assert!(run(&mut d, &[0.9; 20]).is_empty());
    }

    #[test]
    fn short_blips_do_not_start_an_event() {
        let mut d = detector(settings());
        assert!(run(&mut d, &[0.9, 0.1, 0.9, 0.2, 0.1]).is_empty());
    }

    #[test]
    fn start_and_end_follow_min_duration_hysteresis_and_hold() {
        let mut d = detector(settings());
        // on at t=1; 0.4 is between off and on, so the event stays open; ends after 2 s quiet.
        let ev = run(&mut d, &[0.1, 0.8, 0.9, 0.95, 0.4, 0.6, 0.2, 0.1, 0.1, 0.1]);
        let states: Vec<_> = ev.iter().map(|e| e.state).collect();
        assert_eq!(states, [EventState::Start, EventState::End]);
        assert_eq!(ev[0].start_offset_s, 1.0);
        assert_eq!(ev[1].end_offset_s, Some(6.0));
        assert_eq!(ev[1].peak_score, Some(0.95));
        assert_eq!(ev[0].id, ev[1].id);
        assert_eq!(ev[1].start, "1970-01-01T00:00:01.000Z");
    }

    #[test]
    fn long_events_send_updates_and_stream_end_closes_them() {
        let mut d = detector(settings());
        let mut ev = run(&mut d, &[0.9; 14]);
        d.finish(14.0, &mut ev);
        let states: Vec<_> = ev.iter().map(|e| e.state).collect();
        assert_eq!(
            states,
            [
                EventState::Start,
                EventState::Update,
                EventState::Update,
                EventState::End
            ]
        );
        assert_eq!(ev[3].duration_s, Some(14.0));
    }

    #[test]
    fn reload_keeps_open_events_of_kept_labels_and_ends_removed_ones() {
        let mut d = detector(settings());
        let _ = run(&mut d, &[0.9; 4]);
        let mut out = Vec::new();
        d.set_watches(vec![], 4.0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].state, EventState::End);
    }
}
