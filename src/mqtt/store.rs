//! The MQTT queue as producers and the publisher see it: the durable outbox while its disk
//! takes writes, a bounded queue in memory while it does not (a full or failing disk), and the
//! way back to the outbox when the disk takes writes again.
//!
//! Keys are one sequence across both: messages kept in memory take the keys the outbox would
//! have given them, and move into the outbox with those keys once it can be written, so the
//! publishing order never changes. While anything waits in memory, new messages queue behind
//! it there. Writing never fails for a caller: what can be kept nowhere (the memory queue is
//! full too) is dropped oldest first, counted and logged at most once a minute.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::outbox::count;
use super::{Caps, Kind, Message, Outbox, OutboxError};

/// Most messages kept in memory while the outbox cannot be written.
pub const MEMORY_MESSAGES: u64 = 10_000;
/// Most topic + payload bytes kept in memory while the outbox cannot be written.
pub const MEMORY_BYTES: u64 = 16 << 20;
/// How often an unwritable outbox is tried again.
pub const RETRY: Duration = Duration::from_secs(5);
/// Least time between two log lines about dropped messages.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The queue: the outbox file and, while it cannot be written, memory.
pub struct Store {
    path: PathBuf,
    caps: Caps,
    /// The outbox, open; None when it could not be opened again.
    disk: Option<Outbox>,
    /// Why the outbox cannot be written now; None while it can.
    problem: Option<String>,
    retry_at: Instant,
    /// Messages waiting in memory, in key order.
    memory: VecDeque<(u64, Message)>,
    memory_bytes: u64,
    /// Key of the next message.
    next: u64,
    /// Messages dropped because neither the outbox nor memory could keep them, by kind.
    lost: Vec<(Kind, u64)>,
    lost_logged: Option<Instant>,
}

/// What the outbox is doing, for stats and the service status.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreState {
    /// Why the outbox cannot be written (e.g. "No space left on device"); None when fine.
    pub problem: Option<String>,
    /// Messages held in memory meanwhile.
    pub in_memory: u64,
    /// Messages dropped since start because nothing could keep them.
    pub lost_total: u64,
}

impl Store {
    /// Opens the outbox file; a failure here is a start-up error (the daemon does not start
    /// with an outbox it could never write).
    pub fn open(path: &Path, caps: Caps) -> Result<Self, OutboxError> {
        let disk = Outbox::open(path, caps)?;
        Ok(Self {
            path: path.to_owned(),
            caps,
            next: disk.next_key(),
            disk: Some(disk),
            problem: None,
            retry_at: Instant::now(),
            memory: VecDeque::new(),
            memory_bytes: 0,
            lost: Vec::new(),
            lost_logged: None,
        })
    }

    /// Queues messages: into the outbox (on disk when this returns) if it can be written,
    /// otherwise into memory. Returns the messages dropped by the outbox's own caps, by kind.
    pub fn push(&mut self, messages: &[Message]) -> Vec<(Kind, u64)> {
        let keyed: Vec<(u64, Message)> = (self.next..).zip(messages.iter().cloned()).collect();
        self.next += messages.len() as u64;
        self.recover();
        if self.writable() {
            if let Some(disk) = self.disk.as_mut() {
                match disk.push_keyed(&keyed) {
                    Ok(dropped) => return dropped,
                    Err(e) => self.broke(e),
                }
            }
        }
        for (key, m) in keyed {
            self.memory_bytes += size(&m);
            self.memory.push_back((key, m));
        }
        self.trim_memory();
        Vec::new()
    }

    /// Whether the outbox takes writes now.
    fn writable(&self) -> bool {
        self.problem.is_none() && self.disk.is_some()
    }

    fn broke(&mut self, e: OutboxError) {
        let why = e.msg.clone();
        if self.problem.is_none() {
            tracing::error!(
                outbox = %self.path.display(),
                reason = %why,
                "MQTT outbox unwritable: messages are kept in memory (at most {MEMORY_MESSAGES}) \
                 until it can be written again"
            );
        }
        self.problem = Some(why);
        self.retry_at = Instant::now() + RETRY;
    }

    /// When the outbox is unwritable and a retry is due: opens it again and moves what waits
    /// in memory into it, in order. Also called by the publisher, so a quiet sensor recovers.
    pub fn recover(&mut self) {
        if self.problem.is_none() || Instant::now() < self.retry_at {
            return;
        }
        self.retry_at = Instant::now() + RETRY;
        // redb refuses every write after an I/O error: the file is opened afresh.
        self.disk = None;
        let mut disk = match Outbox::open(&self.path, self.caps) {
            Ok(d) => d,
            Err(e) => {
                self.problem = Some(e.msg);
                return;
            }
        };
        let waiting: Vec<(u64, Message)> = self.memory.iter().cloned().collect();
        match disk.push_keyed(&waiting) {
            Ok(dropped) => {
                super::note_dropped(&dropped);
                tracing::info!(
                    outbox = %self.path.display(),
                    moved = waiting.len(),
                    "MQTT outbox writable again; messages kept in memory are on disk now"
                );
                self.memory.clear();
                self.memory_bytes = 0;
                self.problem = None;
            }
            Err(e) => self.problem = Some(e.msg),
        }
        self.disk = Some(disk);
    }

    /// At shutdown: one last try to move what waits in memory into the outbox; what cannot
    /// be kept is counted and logged (memory does not outlive the process).
    pub fn close(&mut self) {
        if self.problem.is_none() {
            return;
        }
        self.retry_at = Instant::now();
        self.recover();
        if self.memory.is_empty() {
            return;
        }
        for (_, m) in std::mem::take(&mut self.memory) {
            count(&mut self.lost, m.kind, 1);
        }
        tracing::error!(
            outbox = %self.path.display(),
            reason = self.problem.as_deref().unwrap_or(""),
            lost_total = self.lost_total(),
            "MQTT messages kept in memory lost at shutdown: the outbox could not be written"
        );
    }

    /// Over the memory caps: level reports go first, then the oldest messages.
    fn trim_memory(&mut self) {
        let max_n = MEMORY_MESSAGES.min(self.caps.max_messages);
        let max_b = MEMORY_BYTES.min(self.caps.max_bytes);
        let over = |s: &Self| s.memory.len() as u64 > max_n || s.memory_bytes > max_b;
        let mut dropped = Vec::new();
        while over(self) {
            let at = self
                .memory
                .iter()
                .position(|(_, m)| m.kind == Kind::Level)
                .unwrap_or(0);
            let Some((_, m)) = self.memory.remove(at) else {
                break;
            };
            self.memory_bytes -= size(&m);
            count(&mut dropped, m.kind, 1);
        }
        if dropped.is_empty() {
            return;
        }
        for (kind, n) in &dropped {
            count(&mut self.lost, *kind, *n);
        }
        let due = self.lost_logged.is_none_or(|t| t.elapsed() >= LOG_EVERY);
        if due {
            self.lost_logged = Some(Instant::now());
            tracing::error!(
                outbox = %self.path.display(),
                reason = self.problem.as_deref().unwrap_or(""),
                lost_total = self.lost_total(),
                "MQTT outbox unwritable and the memory queue full: oldest messages dropped \
                 (counted in stats; logged at most once a minute)"
            );
        }
    }

    /// Messages waiting (outbox and memory), acknowledged or not.
    pub fn len(&self) -> u64 {
        self.disk.as_ref().map_or(0, Outbox::len) + self.memory.len() as u64
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `n` messages with keys above `after`, in order: the outbox's, then memory's.
    /// The one exception to the order: while the outbox file cannot even be opened again
    /// (not just written), what it holds is out of reach and memory's messages go first; a
    /// full disk does not do that (the file still opens and reads).
    pub fn after(&self, after: u64, n: usize) -> Result<Vec<(u64, Message)>, OutboxError> {
        let mut out = match &self.disk {
            Some(d) => d.after(after, n)?,
            None => Vec::new(),
        };
        let room = n - out.len();
        out.extend(
            self.memory
                .iter()
                .filter(|(k, _)| *k > after)
                .take(room)
                .cloned(),
        );
        Ok(out)
    }

    /// Removes acknowledged messages, wherever they wait. A failing outbox keeps its copies
    /// (sent again after a reconnect: a duplicate, never a loss) and is marked unwritable.
    pub fn remove(&mut self, keys: &[u64]) {
        let before = self.memory.len();
        self.memory.retain(|(k, _)| !keys.contains(k));
        if self.memory.len() != before {
            self.memory_bytes = self.memory.iter().map(|(_, m)| size(m)).sum();
        }
        if !self.writable() {
            return;
        }
        if let Some(disk) = self.disk.as_mut() {
            if let Err(e) = disk.remove(keys) {
                self.broke(e);
            }
        }
    }

    /// Messages dropped by the outbox's caps since the file was created, plus those kept
    /// nowhere since start, of `kind`.
    pub fn dropped(&self, kind: Kind) -> u64 {
        let file = self
            .disk
            .as_ref()
            .and_then(|d| d.dropped(kind).ok())
            .unwrap_or(0);
        let lost = self
            .lost
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |x| x.1);
        file + lost
    }

    fn lost_total(&self) -> u64 {
        self.lost.iter().map(|(_, n)| n).sum()
    }

    /// The state for stats and the service status.
    pub fn state(&self) -> StoreState {
        StoreState {
            problem: self.problem.clone(),
            in_memory: self.memory.len() as u64,
            lost_total: self.lost_total(),
        }
    }

    /// A stored string (e.g. the discovery topics announced last time); None if unreadable.
    pub fn note(&self, key: &str) -> Option<String> {
        self.disk.as_ref().and_then(|d| d.note(key).ok().flatten())
    }

    /// Stores a string if the outbox can be written (a lost note only means a removed
    /// discovery entity is not cleared at the next start).
    pub fn set_note(&mut self, key: &str, value: &str) {
        if !self.writable() {
            return;
        }
        if let Some(disk) = self.disk.as_mut() {
            if let Err(e) = disk.set_note(key, value) {
                self.broke(e);
            }
        }
    }
}

fn size(m: &Message) -> u64 {
    (m.topic.len() + m.payload.len()) as u64
}
