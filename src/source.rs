//! Audio sources: a file replayed as a stream of mono chunks, at full speed or real-time pace.

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
