//! Event clips (`[clips]`): the audio of chosen events, with pre- and post-roll, at the
//! source's rate before resampling, written as 16-bit WAV by a thread of its own, and the
//! privacy rule (`[privacy]`) that withholds or mutes what has speech in it.
//!
//! The analysis thread copies every chunk into a bounded ring (the longest clip, both rolls
//! and 30 s for the detector's latency); the output thread opens a clip when an event starts
//! and closes it when the event ends; the inference thread marks the windows with speech. The
//! writer takes a clip from the ring once the ring holds its end, and never blocks anyone: a
//! clip it cannot write is logged and counted, and the run goes on. Retention (count, size,
//! age) is enforced at start and after every clip written.

pub(crate) mod config;
pub mod retention;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

pub use config::{ClipsSettings, PrivacySettings, SpeechInClips};

/// Clip requests waiting for the writer; more are refused (counted).
const JOB_QUEUE: usize = 256;
/// The ring holds this much beyond the longest clip, for the detector's latency.
const LATENCY_MARGIN: Duration = Duration::from_secs(30);
/// An open event's clip is written (cut at `max_length`) once the ring holds this much past
/// its end: well before the ring overwrites its start.
const FORCE_AFTER: f64 = 20.0;

/// The counters of clips.
#[derive(Debug, Default)]
pub struct ClipCounters {
    /// Clips written.
    pub written_total: AtomicU64,
    /// Clips that could not be written (disk, folder, queue full).
    pub failed_total: AtomicU64,
    /// Clips not stored because someone spoke during them.
    pub withheld_total: AtomicU64,
    /// Clips removed by retention.
    pub removed_total: AtomicU64,
}

enum Job {
    Open {
        id: String,
        name: String,
        from_s: f64,
    },
    Close {
        id: String,
        to_s: f64,
    },
}

struct Ring {
    rate: u32,
    /// Stream sample index of `buf[0]`.
    first: u64,
    buf: VecDeque<i16>,
    cap: usize,
}

impl Ring {
    fn end(&self) -> u64 {
        self.first + self.buf.len() as u64
    }
}

struct Shared {
    ring: Mutex<Ring>,
    /// Stream-time spans (s) of windows with speech, oldest first.
    private: Mutex<VecDeque<(f64, f64)>>,
    counters: Arc<ClipCounters>,
}

/// The clip recorder of one run.
pub struct Recorder {
    shared: Arc<Shared>,
    jobs: Sender<Job>,
    settings: ClipsSettings,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A 16-bit sample of a float in [-1, 1].
fn to_i16(v: f32) -> i16 {
    (v.clamp(-1.0, 1.0) * 32768.0)
        .round()
        .clamp(-32768.0, 32767.0) as i16
}

impl Recorder {
    /// Starts the writer for a stream at `rate` Hz. The folder is made (and trimmed to the
    /// caps) now; when it cannot be, the run goes on and every clip counts as failed.
    pub fn start(settings: &ClipsSettings, privacy: SpeechInClips, rate: u32) -> Option<Self> {
        let dir = settings.dir.clone()?;
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::error!(dir = %dir.display(), error = %e, "the clip folder cannot be made; clips will fail");
        }
        let caps = retention::Caps {
            count: settings.max_count,
            bytes: settings.max_total_bytes,
            age: settings.max_age,
        };
        let span = settings.pre_roll + settings.max_length + settings.post_roll + LATENCY_MARGIN;
        let cap = (span.as_secs_f64() * f64::from(rate)) as usize;
        let shared = Arc::new(Shared {
            ring: Mutex::new(Ring {
                rate,
                first: 0,
                buf: VecDeque::with_capacity(cap),
                cap,
            }),
            private: Mutex::new(VecDeque::new()),
            counters: Arc::default(),
        });
        let removed = retention::enforce(&dir, caps);
        shared
            .counters
            .removed_total
            .fetch_add(removed as u64, Ordering::Relaxed);
        let (jobs, rx) = bounded(JOB_QUEUE);
        let writer = Writer {
            shared: Arc::clone(&shared),
            dir,
            caps,
            max_length: settings.max_length.as_secs_f64(),
            post_roll: settings.post_roll.as_secs_f64(),
            privacy,
            pending: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("clips".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| tracing::error!(error = %e, "the clip writer did not start"))
            .ok()?;
        Some(Self {
            shared,
            jobs,
            settings: settings.clone(),
            thread: Some(thread),
        })
    }

    /// Whether events of `label` (kind `limit` or not) keep a clip.
    pub fn wants(&self, label: &str, limit: bool) -> bool {
        if limit {
            return self.settings.limits;
        }
        self.settings.labels.iter().any(|l| l == "*" || l == label)
    }

    /// Copies a chunk of the stream (mono, at the source rate) into the ring.
    pub fn audio(&self, samples: &[f32]) {
        let mut r = self.shared.ring.lock().unwrap_or_else(|p| p.into_inner());
        r.buf.extend(samples.iter().map(|&v| to_i16(v)));
        let over = r.buf.len().saturating_sub(r.cap);
        if over > 0 {
            r.buf.drain(..over);
            r.first += over as u64;
        }
    }

    /// Marks `[from_s, to_s]` (stream seconds) as having speech.
    pub fn private(&self, from_s: f64, to_s: f64) {
        let horizon = to_s - self.ring_seconds();
        let mut p = self
            .shared
            .private
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match p.back_mut() {
            Some(last) if from_s <= last.1 => last.1 = last.1.max(to_s),
            _ => p.push_back((from_s, to_s)),
        }
        // spans older than the ring cannot touch a clip any more
        while p.front().is_some_and(|s| s.1 < horizon) {
            p.pop_front();
        }
    }

    fn ring_seconds(&self) -> f64 {
        let r = self.shared.ring.lock().unwrap_or_else(|p| p.into_inner());
        r.cap as f64 / f64::from(r.rate)
    }

    /// The clip's file name for an event: its start (UTC), label slug and id.
    pub fn name(start: &str, slug: &str, id: &str) -> String {
        let stamp: String = start
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(15)
            .collect();
        format!("{stamp}_{slug}_{id}.wav")
    }

    /// An event started at `start_s`: its clip begins a pre-roll earlier.
    pub fn open(&self, id: &str, name: &str, start_s: f64) {
        let from_s = (start_s - self.settings.pre_roll.as_secs_f64()).max(0.0);
        self.send(Job::Open {
            id: id.to_owned(),
            name: name.to_owned(),
            from_s,
        });
    }

    /// The event ended at `end_s`: its clip ends a post-roll later.
    pub fn close(&self, id: &str, end_s: f64) {
        self.send(Job::Close {
            id: id.to_owned(),
            to_s: end_s + self.settings.post_roll.as_secs_f64(),
        });
    }

    fn send(&self, job: Job) {
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.shared
                    .counters
                    .failed_total
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!("clip request dropped: the clip writer is behind");
            }
        }
    }

    /// The counters.
    pub fn counters(&self) -> Arc<ClipCounters> {
        Arc::clone(&self.shared.counters)
    }

    /// The folder clips are written to.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.settings.dir.as_deref()
    }

    /// The end of the stream: the writer writes what it has (clips cut at the stream's end)
    /// and stops.
    pub fn finish(mut self) {
        // Dropping the sender ends the writer's loop once it has every job queued before;
        // then it writes what is pending with what the ring holds.
        let (dead, _) = bounded(1);
        drop(std::mem::replace(&mut self.jobs, dead));
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the clip writer panicked");
            }
        }
    }
}

struct Pending {
    id: String,
    name: String,
    from_s: f64,
    to_s: Option<f64>,
}

struct Writer {
    shared: Arc<Shared>,
    dir: PathBuf,
    caps: retention::Caps,
    max_length: f64,
    post_roll: f64,
    privacy: SpeechInClips,
    pending: Vec<Pending>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Job>) {
        let mut open = true;
        while open || !self.pending.is_empty() {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(Job::Open { id, name, from_s }) => self.pending.push(Pending {
                    id,
                    name,
                    from_s,
                    to_s: None,
                }),
                Ok(Job::Close { id, to_s }) => {
                    if let Some(p) = self.pending.iter_mut().find(|p| p.id == id) {
                        p.to_s = Some(to_s);
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => open = false,
            }
            self.write_ready(!open);
        }
    }

    /// Writes every clip whose end the ring holds (all of them at the stream's end).
    fn write_ready(&mut self, ended: bool) {
        let (rate, have_to) = {
            let r = self.shared.ring.lock().unwrap_or_else(|p| p.into_inner());
            (r.rate, r.end() as f64 / f64::from(r.rate))
        };
        let mut i = 0;
        while i < self.pending.len() {
            let p = &self.pending[i];
            let to = p
                .to_s
                .unwrap_or(f64::INFINITY)
                .min(p.from_s + self.max_length);
            // An open event is cut at max_length only when the ring is about to lose the
            // clip's start: the ring may run ahead of the events (a file replayed fast).
            let closed = p.to_s.is_some() && to <= have_to;
            let losing = have_to >= p.from_s + self.max_length + self.post_roll + FORCE_AFTER;
            if closed || losing || ended {
                let p = self.pending.swap_remove(i);
                self.write(&p, to.min(have_to), rate);
            } else {
                i += 1;
            }
        }
    }

    fn write(&self, p: &Pending, to_s: f64, rate: u32) {
        let c = &self.shared.counters;
        let speech: Vec<(f64, f64)> = self
            .shared
            .private
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .filter(|s| s.0 < to_s && s.1 > p.from_s)
            .collect();
        if !speech.is_empty() && self.privacy == SpeechInClips::Withhold {
            c.withheld_total.fetch_add(1, Ordering::Relaxed);
            tracing::info!(clip = %p.name, "clip withheld: speech during it ([privacy])");
            return;
        }
        let (first, mut samples) = {
            let r = self.shared.ring.lock().unwrap_or_else(|p| p.into_inner());
            let a = ((p.from_s * f64::from(rate)).round() as u64).max(r.first);
            let b = ((to_s * f64::from(rate)).round() as u64).min(r.end());
            let (lo, hi) = ((a - r.first) as usize, (b.max(a) - r.first) as usize);
            (a, r.buf.range(lo..hi).copied().collect::<Vec<i16>>())
        };
        for (s0, s1) in speech {
            let lo = ((s0 * f64::from(rate)) as u64).saturating_sub(first) as usize;
            let hi = ((s1 * f64::from(rate)).ceil() as u64).saturating_sub(first) as usize;
            let hi = hi.min(samples.len());
            if lo < hi {
                samples[lo..hi].fill(0);
            }
        }
        match write_wav(&self.dir, &p.name, rate, &samples) {
            Ok(()) => {
                c.written_total.fetch_add(1, Ordering::Relaxed);
                let removed = retention::enforce(&self.dir, self.caps);
                c.removed_total.fetch_add(removed as u64, Ordering::Relaxed);
            }
            Err(e) => {
                c.failed_total.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(clip = %p.name, dir = %self.dir.display(), error = %e, "clip not written");
            }
        }
    }
}

/// Writes `name` in `dir` under a temporary name first, so a clip is whole or absent.
fn write_wav(dir: &std::path::Path, name: &str, rate: u32, samples: &[i16]) -> anyhow::Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.partial"));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let result = (|| -> anyhow::Result<()> {
        let mut w = hound::WavWriter::create(&tmp, spec)?;
        for &s in samples {
            w.write_sample(s)?;
        }
        w.finalize()?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &std::path::Path) -> ClipsSettings {
        ClipsSettings {
            dir: Some(dir.to_owned()),
            labels: vec!["*".into()],
            limits: true,
            pre_roll: Duration::from_secs(1),
            post_roll: Duration::from_secs(1),
            // longer than any clip here, so none is cut before its close arrives
            max_length: Duration::from_secs(10),
            max_count: 50,
            max_total_bytes: 1 << 30,
            max_age: Duration::from_secs(3600),
        }
    }

    fn read(path: &std::path::Path) -> Vec<i16> {
        hound::WavReader::open(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .samples::<i16>()
            .map(|s| s.expect("sample"))
            .collect()
    }

    #[test]
    fn a_clip_is_the_event_with_its_rolls_and_speech_withholds_or_mutes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rate = 1000;
        let ramp: Vec<f32> = (0..20_000).map(|i| (i % 1000) as f32 / 1000.0).collect();
        for mode in [SpeechInClips::Withhold, SpeechInClips::Mute] {
            let sub = dir.path().join(format!("{mode:?}"));
            let r = Recorder::start(&settings(&sub), mode, rate).expect("recorder");
            r.open("a", "a.wav", 3.0);
            r.open("b", "b.wav", 10.0);
            r.audio(&ramp[..8000]);
            r.close("a", 5.0);
            r.private(11.0, 12.0);
            r.audio(&ramp[8000..]);
            r.close("b", 12.5);
            let c = r.counters();
            r.finish();
            let withheld = c.withheld_total.load(Ordering::Relaxed);
            assert_eq!(withheld, u64::from(mode == SpeechInClips::Withhold));
            // a: 2.0 to 6.0 s, exactly the stream's samples
            let a = read(&sub.join("a.wav"));
            assert_eq!(a.len(), 4000);
            assert_eq!(a[0], to_i16(ramp[2000]));
            assert_eq!(a[3999], to_i16(ramp[5999]));
            let b = sub.join("b.wav");
            match mode {
                SpeechInClips::Withhold => assert!(!b.exists()),
                SpeechInClips::Mute => {
                    // 9.0 to 13.5 s, 11 to 12 s silent
                    let b = read(&b);
                    assert_eq!(b.len(), 4500);
                    assert!(b[2000..3000].iter().all(|&s| s == 0));
                    assert_eq!(b[3100], to_i16(ramp[12_100 % 1000]));
                }
            }
        }
    }

    #[test]
    fn retention_holds_when_200_events_arrive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r =
            Recorder::start(&settings(dir.path()), SpeechInClips::Withhold, 100).expect("recorder");
        let second = [0.1f32; 100];
        for i in 0..200 {
            let t = f64::from(i) * 3.0 + 2.0;
            r.open(&format!("e{i}"), &format!("c{i:03}.wav"), t);
            r.audio(&second);
            r.audio(&second);
            r.audio(&second);
            r.close(&format!("e{i}"), t + 0.5);
            // events come seconds apart in life; a burst past the queue is refused, counted
            std::thread::sleep(Duration::from_millis(2));
        }
        r.audio(&[0.1; 500]);
        let c = r.counters();
        r.finish();
        let written = c.written_total.load(Ordering::Relaxed);
        let failed = c.failed_total.load(Ordering::Relaxed);
        // (a dropped close still writes its clip, cut at max_length: both counted)
        assert!(written + failed >= 200, "every clip written or counted");
        assert!(written >= 100, "{written} written");
        assert_eq!(c.removed_total.load(Ordering::Relaxed), written - 50);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left.len(), 50);
        if failed == 0 {
            assert_eq!(left[0], "c150.wav");
        }
    }

    #[test]
    fn an_unwritable_folder_counts_failures_and_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, b"x").expect("write");
        let r = Recorder::start(
            &settings(&file.join("clips")),
            SpeechInClips::Withhold,
            1000,
        )
        .expect("recorder");
        r.open("a", "a.wav", 1.0);
        r.audio(&[0.0; 5000]);
        r.close("a", 2.0);
        let counters = Arc::clone(&r.shared);
        r.finish();
        assert_eq!(counters.counters.failed_total.load(Ordering::Relaxed), 1);
        assert_eq!(counters.counters.written_total.load(Ordering::Relaxed), 0);
    }
}
