//! Audio sources: a file replayed as a stream of mono chunks, at full speed or real-time pace;
//! raw PCM from stdin or a command; the configured source opened and fed (`open_source`,
//! `feed_source`, for `run` and `levels`).

pub(crate) mod config;

pub use crate::stats::SourceHealth;
pub use config::SourceConfig;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::audio::{AudioError, AudioFile};

/// A message from a source: mono samples at the source rate, or the error that ended it.
pub type Chunk = Result<Vec<f32>, AudioError>;

/// Reads `file` to the end (or until `stop`), sending chunks of about `chunk` of audio.
///
/// The channel is bounded and a file source blocks on it: a recording is never dropped,
/// it is only read as fast as the analysis takes it. With `realtime`, chunks are released
/// at the pace they were recorded.
pub fn replay_file(
    mut file: AudioFile,
    chunk: Duration,
    realtime: bool,
    stop: &AtomicBool,
    tx: Sender<Chunk>,
) {
    let rate = file.sample_rate() as f64;
    let target = ((rate * chunk.as_secs_f64()) as usize).max(1);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut buf = Vec::with_capacity(2 * target);
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let more = match file.read_chunk(&mut buf) {
            Ok(more) => more,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        while buf.len() >= target || (!more && !buf.is_empty()) {
            let n = target.min(buf.len());
            let piece: Vec<f32> = buf.drain(..n).collect();
            if realtime {
                let due = Duration::from_secs_f64(sent as f64 / rate);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            sent += n as u64;
            if tx.send(Ok(piece)).is_err() || stop.load(Ordering::Relaxed) {
                return;
            }
        }
        if !more {
            return;
        }
    }
}

/// Sample formats of raw PCM (`stdin` and `command` sources), little-endian, interleaved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFormat {
    /// 16-bit signed integer.
    S16Le,
    /// 32-bit signed integer.
    S32Le,
    /// 32-bit float.
    F32Le,
}

impl std::str::FromStr for RawFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "s16le" => Ok(Self::S16Le),
            "s32le" => Ok(Self::S32Le),
            "f32le" => Ok(Self::F32Le),
            other => Err(format!(
                "unknown sample format {other:?} (use \"s16le\", \"s32le\" or \"f32le\")"
            )),
        }
    }
}

impl RawFormat {
    fn bytes(self) -> usize {
        match self {
            Self::S16Le => 2,
            Self::S32Le | Self::F32Le => 4,
        }
    }

    fn sample(self, b: &[u8]) -> f32 {
        match self {
            Self::S16Le => i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0,
            Self::S32Le => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0,
            Self::F32Le => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        }
    }
}

/// The layout of a raw PCM stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawLayout {
    /// Sample format.
    pub format: RawFormat,
    /// Sample rate, Hz.
    pub rate: u32,
    /// Interleaved channels (averaged to mono).
    pub channels: u16,
}

/// Reads raw PCM from `input` until it ends, an error, or `stop`; sends mono chunks of about
/// `chunk`. A live stream must not wait for the analysis: when the queue is full the chunk is
/// dropped and counted. Returns the number of frames read.
pub fn read_raw(
    mut input: impl std::io::Read,
    layout: RawLayout,
    chunk: Duration,
    stop: &AtomicBool,
    tx: &Sender<Chunk>,
    health: &SourceHealth,
) -> std::io::Result<u64> {
    let frame_bytes = layout.format.bytes() * layout.channels as usize;
    let frames = ((layout.rate as f64 * chunk.as_secs_f64()) as usize).max(1);
    let mut buf = vec![0u8; frames * frame_bytes];
    let mut filled = 0;
    let mut total = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let n = match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        filled += n;
        if filled < buf.len() {
            continue;
        }
        total += frames as u64;
        send_live(mono(&buf[..filled], layout), tx, health);
        filled = 0;
    }
    let whole = filled / frame_bytes * frame_bytes;
    if whole > 0 {
        total += (whole / frame_bytes) as u64;
        send_live(mono(&buf[..whole], layout), tx, health);
    }
    Ok(total)
}

fn send_live(piece: Vec<f32>, tx: &Sender<Chunk>, health: &SourceHealth) {
    if let Err(crossbeam_channel::TrySendError::Full(_)) = tx.try_send(Ok(piece)) {
        health.overruns_total.fetch_add(1, Ordering::Relaxed);
    }
}

fn mono(bytes: &[u8], layout: RawLayout) -> Vec<f32> {
    let w = layout.format.bytes();
    let samples: Vec<f32> = bytes
        .chunks_exact(w)
        .map(|s| layout.format.sample(s))
        .collect();
    let mut out = Vec::with_capacity(samples.len() / layout.channels.max(1) as usize);
    crate::audio::downmix_into(&samples, layout.channels as usize, &mut out);
    out
}

/// Restart delays of a `command` source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restart {
    /// First delay after the command ended.
    pub min: Duration,
    /// Longest delay (doubling from `min`); a run that lasted over a minute resets it.
    pub max: Duration,
}

/// Runs `argv` and reads raw PCM from its stdout; when it ends (exit, crash, closed pipe) it is
/// started again after a delay that doubles from `restart.min` to `restart.max`. Its stderr is
/// logged line by line. Returns when `stop` is set (the command is killed).
pub fn run_command(
    argv: &[String],
    layout: RawLayout,
    chunk: Duration,
    restart: Restart,
    stop: &AtomicBool,
    tx: Sender<Chunk>,
    health: &SourceHealth,
) {
    let mut delay = restart.min;
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        if !first {
            health.restarts_total.fetch_add(1, Ordering::Relaxed);
        }
        first = false;
        let started = Instant::now();
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        die_with_parent(&mut cmd);
        let spawned = cmd.spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(command = %argv[0], error = %e, retry_in = ?delay, "source command cannot start");
                sleep_unless(stop, delay);
                delay = (delay * 2).min(restart.max);
                continue;
            }
        };
        tracing::info!(command = %argv.join(" "), pid = child.id(), "source command started");
        let stderr = child.stderr.take().map(|err| {
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                    tracing::warn!(source = "command", "{line}");
                }
            })
        });
        let out = child.stdout.take();
        // The reader ends at EOF; a watcher kills the command when stop is set, which closes
        // the pipe and ends the reader.
        let pid = child.id();
        let done = AtomicBool::new(false);
        let read = std::thread::scope(|s| {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    if stop.load(Ordering::Relaxed) {
                        let _ = std::process::Command::new("kill")
                            .arg(pid.to_string())
                            .status();
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
            let r = out.map(|o| read_raw(o, layout, chunk, stop, &tx, health));
            done.store(true, Ordering::Relaxed);
            r
        });
        let _ = child.kill();
        let status = child.wait();
        if let Some(t) = stderr {
            let _ = t.join();
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if started.elapsed() > Duration::from_secs(60) {
            delay = restart.min;
        }
        let read = match read {
            Some(Ok(frames)) => format!("{frames} frames"),
            Some(Err(e)) => format!("read error: {e}"),
            None => "no stdout".into(),
        };
        tracing::warn!(
            command = %argv[0],
            status = ?status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
            read,
            restart_in = ?delay,
            "source command ended; restarting"
        );
        sleep_unless(stop, delay);
        delay = (delay * 2).min(restart.max);
    }
}

/// Sleeps `d`, waking early when `stop` is set.
pub(crate) fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
    }
}

/// Has the kernel kill the child when the thread that started it dies, so a `command`
/// source does not outlive a daemon killed with SIGKILL (outside systemd, whose cgroup would
/// catch it anyway). Linux only; elsewhere the child is killed on every clean stop.
fn die_with_parent(cmd: &mut std::process::Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        #[allow(unsafe_code)]
        // SAFETY: the closure runs in the forked child before exec and makes one
        // async-signal-safe system call (prctl); it allocates nothing and touches no memory
        // shared with the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// Opens the configured source: the file (if any) and the sample rate audio will arrive at.
/// A capture device that is missing at start is assumed at its configured rate (or 48 kHz)
/// and retried in the background.
pub fn open_source(source: &SourceConfig) -> anyhow::Result<(Option<AudioFile>, u32)> {
    Ok(match source {
        SourceConfig::File { path, .. } => {
            let file = AudioFile::open(path)?;
            let rate = file.sample_rate();
            (Some(file), rate)
        }
        SourceConfig::Stdin { layout, .. } | SourceConfig::Command { layout, .. } => {
            (None, layout.rate)
        }
        SourceConfig::Capture(c) => {
            let rate = crate::capture::probe_rate(c).unwrap_or_else(|e| {
                let guess = c.rate.unwrap_or(48_000);
                tracing::warn!(reason = %e, rate = guess, "capture device not available yet; retrying in the background");
                guess
            });
            (None, rate)
        }
    })
}

/// The source thread's work: sends the source's audio as chunks until it ends or `shutdown`
/// is set.
pub fn feed_source(
    source: &SourceConfig,
    file: Option<AudioFile>,
    rate: u32,
    shutdown: &AtomicBool,
    audio_tx: Sender<Chunk>,
    health: &SourceHealth,
) {
    match (source, file) {
        (
            SourceConfig::File {
                chunk, realtime, ..
            },
            Some(file),
        ) => replay_file(file, *chunk, *realtime, shutdown, audio_tx),
        (SourceConfig::Stdin { layout, chunk }, _) => {
            let stdin = std::io::stdin().lock();
            if let Err(e) = read_raw(stdin, *layout, *chunk, shutdown, &audio_tx, health) {
                tracing::error!(error = %e, "reading standard input failed; the stream ends");
            }
        }
        (
            SourceConfig::Command {
                argv,
                layout,
                chunk,
                restart,
            },
            _,
        ) => run_command(argv, *layout, *chunk, *restart, shutdown, audio_tx, health),
        (SourceConfig::Capture(c), _) => {
            crate::capture::capture(c, rate, shutdown, audio_tx, health)
        }
        (SourceConfig::File { .. }, None) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `bytes` in 1 s chunks into a queue of `queue` chunks: (frames read, the chunks
    /// the queue holds, the counters).
    fn read_all(
        bytes: &[u8],
        layout: RawLayout,
        queue: usize,
    ) -> (u64, Vec<Vec<f32>>, SourceHealth) {
        let (tx, rx) = crossbeam_channel::bounded(queue);
        let stop = AtomicBool::new(false);
        let health = SourceHealth::default();
        let n = read_raw(bytes, layout, Duration::from_secs(1), &stop, &tx, &health).expect("read");
        let chunks = rx.try_iter().map(|c| c.expect("chunk")).collect();
        (n, chunks, health)
    }

    #[test]
    fn raw_pcm_is_decoded_downmixed_and_chunked() {
        let layout = RawLayout {
            format: RawFormat::S16Le,
            rate: 10,
            channels: 2,
        };
        // 25 stereo frames: left = i * 1000, right = -i * 1000 + 2000 → mono (2000)/2 = 1000.
        let bytes: Vec<u8> = (0..25i16)
            .flat_map(|i| [i * 1000, 2000 - i * 1000])
            .flat_map(|s| s.to_le_bytes())
            .chain([7u8]) // a torn last byte is ignored
            .collect();
        let (n, chunks, _) = read_all(&bytes, layout, 16);
        assert_eq!(n, 25);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
        assert!(chunks
            .iter()
            .flatten()
            .all(|&x| (x - 1000.0 / 32768.0).abs() < 1e-6));
        let f: f32 = RawFormat::F32Le.sample(&0.25f32.to_le_bytes());
        assert_eq!(f, 0.25);
        assert_eq!(RawFormat::S32Le.sample(&i32::MIN.to_le_bytes()), -1.0);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let layout = RawLayout {
            format: RawFormat::F32Le,
            rate: 4,
            channels: 1,
        };
        let bytes: Vec<u8> = (0..40).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let (_, _, health) = read_all(&bytes, layout, 2);
        assert_eq!(health.overruns_total.load(Ordering::Relaxed), 8);
    }
}
