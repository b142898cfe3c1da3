//! The local history (`[history]`): level reports, events and notes kept in a SQLite file by a
//! writer thread of its own, so that a report can be made of any past day.
//!
//! Data path: the output thread → [`Archive::record`] (a bounded queue) → the writer thread
//! (a transaction per batch) → the file. The output thread waits for a row's commit (at most
//! [`COMMIT_WAIT`]) before it prints the line, so a line on stdout is in the file even if the
//! process is killed the next moment. A disk that fails or stalls never stops the output: the
//! rows wait in memory (up to [`MAX_PENDING`]) and are written when the disk recovers; past
//! that they are dropped, counted and logged.

pub(crate) mod config;
pub mod store;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub use config::HistorySettings;
pub use store::Row;

/// How long the output thread waits for a row's commit before it prints without.
pub const COMMIT_WAIT: Duration = Duration::from_secs(1);

/// Rows held in memory while the file cannot be written.
pub const MAX_PENDING: usize = 100_000;

const QUEUE: usize = 4096;
const RETRY: Duration = Duration::from_secs(10);
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// The history's counters.
#[derive(Debug, Default)]
pub struct ArchiveCounters {
    /// Rows committed.
    pub written_total: AtomicU64,
    /// Rows dropped (queue full, or more than [`MAX_PENDING`] waiting for the disk).
    pub dropped_total: AtomicU64,
    /// Failed write attempts (each retried).
    pub failures_total: AtomicU64,
    /// Rows removed by retention.
    pub removed_total: AtomicU64,
}

#[derive(Debug, Default)]
struct Shared {
    /// The highest row number committed.
    committed: Mutex<u64>,
    cv: Condvar,
    counters: ArchiveCounters,
    /// Set when a wait timed out: no more waits until the writer has caught up.
    behind: AtomicBool,
}

/// The writer's handle.
pub struct Archive {
    tx: Option<crossbeam_channel::Sender<(u64, Row)>>,
    sent: AtomicU64,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Archive {
    /// Opens the history of `settings` (none when `path` is unset), applies retention, and
    /// starts the writer. A file of a newer schema is an error; a file that cannot be opened
    /// now (a full disk, a folder not yet mounted) is logged and tried again every 10 s while
    /// the rows wait in memory, so the daemon measures whatever the disk does.
    pub fn open(settings: &HistorySettings) -> anyhow::Result<Option<Self>> {
        let Some(path) = settings.path.clone() else {
            return Ok(None);
        };
        let shared = Arc::new(Shared::default());
        let db = match open_and_retain(&path, settings, &shared) {
            Ok(db) => Some(db),
            Err(e) if e.to_string().contains("newer soundsentry") => return Err(e),
            Err(e) => {
                shared
                    .counters
                    .failures_total
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %format!("{e:#}"), "history cannot be opened; trying again every 10 s, rows wait in memory");
                None
            }
        };
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let (s, keep) = (Arc::clone(&shared), settings.clone());
        let thread = std::thread::Builder::new()
            .name("history".into())
            .spawn(move || writer(db, rx, s, keep))?;
        tracing::info!(path = %path.display(), "keeping the history");
        Ok(Some(Self {
            tx: Some(tx),
            sent: AtomicU64::new(0),
            shared,
            thread: Some(thread),
        }))
    }

    /// The counters.
    pub fn counters(&self) -> &ArchiveCounters {
        &self.shared.counters
    }

    /// Queues a row and waits (at most [`COMMIT_WAIT`], and not at all while the writer is
    /// behind) until it is committed.
    pub fn record(&self, row: Row) {
        let Some(tx) = &self.tx else { return };
        let n = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        if tx.try_send((n, row)).is_err() {
            self.shared
                .counters
                .dropped_total
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!("history queue full: a row is not kept");
            return;
        }
        let committed = self
            .shared
            .committed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if self.shared.behind.load(Ordering::Relaxed) && *committed + 1 < n {
            return;
        }
        let (committed, wait) = self
            .shared
            .cv
            .wait_timeout_while(committed, COMMIT_WAIT, |c| *c < n)
            .unwrap_or_else(|p| p.into_inner());
        let late = wait.timed_out() && *committed < n;
        self.shared.behind.store(late, Ordering::Relaxed);
        if late {
            tracing::warn!("the history is not keeping up: printing without waiting for it");
        }
    }

    /// Writes what is queued, stops the writer and logs the counters.
    pub fn finish(mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let c = &self.shared.counters;
        tracing::info!(
            written_total = c.written_total.load(Ordering::Relaxed),
            dropped_total = c.dropped_total.load(Ordering::Relaxed),
            failures_total = c.failures_total.load(Ordering::Relaxed),
            removed_total = c.removed_total.load(Ordering::Relaxed),
            "history"
        );
    }
}

impl Drop for Archive {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Opens the file and applies retention.
fn open_and_retain(
    path: &std::path::Path,
    settings: &HistorySettings,
    shared: &Shared,
) -> anyhow::Result<rusqlite::Connection> {
    let mut db =
        store::open(path).map_err(|e| anyhow::anyhow!("history {}: {e:#}", path.display()))?;
    let removed = store::retain(&mut db, now(), settings.retention_days, settings.max_bytes)
        .map_err(|e| anyhow::anyhow!("history {}: {e}", path.display()))?;
    shared
        .counters
        .removed_total
        .fetch_add(removed, Ordering::Relaxed);
    Ok(db)
}

/// Seconds since 1970, now.
pub fn now() -> f64 {
    jiff::Timestamp::now().as_millisecond() as f64 / 1000.0
}

/// The writer thread: batches what is queued into one transaction; keeps rows that could not
/// be written and tries again every 10 s; applies retention every hour.
fn writer(
    mut db: Option<rusqlite::Connection>,
    rx: crossbeam_channel::Receiver<(u64, Row)>,
    shared: Arc<Shared>,
    settings: HistorySettings,
) {
    let counters = &shared.counters;
    let mut pending: Vec<(u64, Row)> = Vec::new();
    let mut retained = Instant::now();
    let mut open = true;
    // failures are logged once a minute, not at every try
    let mut logged: Option<Instant> = None;
    while open || !pending.is_empty() {
        let wait = if pending.is_empty() {
            RETENTION_EVERY
        } else {
            RETRY
        };
        match rx.recv_timeout(wait) {
            Ok(row) => pending.push(row),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => open = false,
        }
        pending.extend(rx.try_iter());
        if pending.len() > MAX_PENDING {
            let over = pending.len() - MAX_PENDING;
            pending.drain(..over);
            counters
                .dropped_total
                .fetch_add(over as u64, Ordering::Relaxed);
            tracing::error!(
                rows = over,
                "history: the disk has refused rows for too long; the oldest are dropped"
            );
        }
        if pending.is_empty() {
            continue;
        }
        if db.is_none() {
            if let Some(path) = &settings.path {
                match open_and_retain(path, &settings, &shared) {
                    Ok(opened) => {
                        tracing::info!(path = %path.display(), "history opened");
                        db = Some(opened);
                    }
                    Err(e) => {
                        tracing::debug!(error = %format!("{e:#}"), "history still cannot be opened")
                    }
                }
            }
        }
        let rows: Vec<Row> = pending.iter().map(|(_, r)| r.clone()).collect();
        let inserted = match db.as_mut() {
            Some(db) => store::insert(db, &rows).map_err(anyhow::Error::from),
            None => Err(anyhow::anyhow!("the file is not open")),
        };
        match inserted {
            Ok(()) => {
                if logged.take().is_some() {
                    tracing::info!(rows = rows.len(), "history written again");
                }
                let last = pending.last().map_or(0, |(n, _)| *n);
                counters
                    .written_total
                    .fetch_add(rows.len() as u64, Ordering::Relaxed);
                pending.clear();
                *shared.committed.lock().unwrap_or_else(|p| p.into_inner()) = last;
                shared.cv.notify_all();
            }
            Err(e) => {
                counters.failures_total.fetch_add(1, Ordering::Relaxed);
                if logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    logged = Some(Instant::now());
                    tracing::error!(error = %format!("{e:#}"), rows = rows.len(), "history not written; the rows wait in memory and are tried again");
                }
                if !open {
                    // stopping: one more try after a pause, then the rows are counted lost
                    std::thread::sleep(Duration::from_millis(500));
                    let again = db.as_mut().map(|db| store::insert(db, &rows));
                    if !matches!(again, Some(Ok(()))) {
                        counters
                            .dropped_total
                            .fetch_add(rows.len() as u64, Ordering::Relaxed);
                        tracing::error!(rows = rows.len(), "history: rows lost at stop");
                    }
                    pending.clear();
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        if let (true, Some(db)) = (retained.elapsed() >= RETENTION_EVERY, db.as_mut()) {
            retained = Instant::now();
            match store::retain(db, now(), settings.retention_days, settings.max_bytes) {
                Ok(n) => {
                    counters.removed_total.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(error = %e, "history retention failed"),
            }
        }
    }
}
