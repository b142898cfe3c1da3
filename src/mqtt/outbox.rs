//! The durable outbox: every message that must reach the broker is written here (redb, fsync
//! on commit) before it is published, and removed only when the broker acknowledged it.
//!
//! Keys are increasing sequence numbers, so reading in key order is publishing order. When the
//! outbox is full, the oldest level reports go first, then the oldest other messages; every
//! message dropped is counted (per kind, kept in the file) and logged.

use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

/// What a message is, for the drop policy and the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A sound or limit event.
    Event,
    /// A retained ON/OFF label state.
    State,
    /// A level report (dropped first when the outbox is full).
    Level,
    /// A retained Home Assistant discovery config.
    Discovery,
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// What it is.
    pub kind: Kind,
    /// Full topic.
    pub topic: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// Retain flag.
    pub retain: bool,
}

/// Why the outbox failed.
#[derive(Debug, thiserror::Error)]
#[error("MQTT outbox {path}: {msg}")]
pub struct OutboxError {
    /// The outbox file.
    pub path: PathBuf,
    /// What went wrong.
    pub msg: String,
}

/// Size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Most messages kept.
    pub max_messages: u64,
    /// Most payload + topic bytes kept.
    pub max_bytes: u64,
}

/// The queue on disk.
pub struct Outbox {
    db: Database,
    path: PathBuf,
    caps: Caps,
    next: u64,
    len: u64,
    bytes: u64,
}

impl Outbox {
    /// Opens (or creates) the outbox file; messages left by an earlier run stay queued.
    pub fn open(path: &Path, caps: Caps) -> Result<Self, OutboxError> {
        let fail = |msg: String| OutboxError {
            path: path.to_owned(),
            msg,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| fail(format!("creating its folder: {e}")))?;
        }
        let db = Database::create(path).map_err(|e| fail(e.to_string()))?;
        let mut me = Self {
            db,
            path: path.to_owned(),
            caps,
            next: 1,
            len: 0,
            bytes: 0,
        };
        let txn = me.db.begin_write().map_err(|e| me.fail(e))?;
        {
            let table = txn.open_table(MESSAGES).map_err(|e| me.fail(e))?;
            txn.open_table(COUNTERS).map_err(|e| me.fail(e))?;
            txn.open_table(NOTES).map_err(|e| me.fail(e))?;
            for item in table.iter().map_err(|e| me.fail(e))? {
                let (k, v) = item.map_err(|e| me.fail(e))?;
                me.next = me.next.max(k.value() + 1);
                me.len += 1;
                me.bytes += v.value().len() as u64;
            }
        }
        txn.commit().map_err(|e| me.fail(e))?;
        Ok(me)
    }

    fn fail(&self, e: impl std::fmt::Display) -> OutboxError {
        OutboxError {
            path: self.path.clone(),
            msg: e.to_string(),
        }
    }

    /// Messages queued.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends messages in one durable transaction (on disk when this returns), dropping the
    /// oldest ones first if the caps are exceeded. Returns the messages dropped, by kind.
    pub fn push(&mut self, messages: &[Message]) -> Result<Vec<(Kind, u64)>, OutboxError> {
        let keyed: Vec<(u64, Message)> = (self.next..).zip(messages.iter().cloned()).collect();
        self.push_keyed(&keyed)
    }

    /// The key the next [`Outbox::push`] gives its first message.
    pub fn next_key(&self) -> u64 {
        self.next
    }

    /// [`Outbox::push`] with the keys given: each at least [`Outbox::next_key`], increasing
    /// (messages first kept elsewhere keep their place in the order). On an error nothing is
    /// written and the outbox's counts are as they were.
    pub fn push_keyed(
        &mut self,
        messages: &[(u64, Message)],
    ) -> Result<Vec<(Kind, u64)>, OutboxError> {
        let txn = self.db.begin_write().map_err(|e| self.fail(e))?;
        let mut dropped: Vec<(Kind, u64)> = Vec::new();
        let (mut len, mut bytes, mut next) = (self.len, self.bytes, self.next);
        {
            let mut table = txn.open_table(MESSAGES).map_err(|e| self.fail(e))?;
            for (key, m) in messages {
                let data = serde_json::to_vec(m).map_err(|e| self.fail(e))?;
                bytes += data.len() as u64;
                len += 1;
                table
                    .insert(*key, data.as_slice())
                    .map_err(|e| self.fail(e))?;
                next = next.max(key + 1);
            }
            // Over the caps: level reports first, then anything, oldest first.
            let over =
                |len: u64, bytes: u64| len > self.caps.max_messages || bytes > self.caps.max_bytes;
            for only_levels in [true, false] {
                if !over(len, bytes) {
                    break;
                }
                let mut victims = Vec::new();
                let (mut l, mut b) = (len, bytes);
                for item in table.iter().map_err(|e| self.fail(e))? {
                    if !over(l, b) {
                        break;
                    }
                    let (k, v) = item.map_err(|e| self.fail(e))?;
                    let m: Message = serde_json::from_slice(v.value()).map_err(|e| self.fail(e))?;
                    if only_levels && m.kind != Kind::Level {
                        continue;
                    }
                    l -= 1;
                    b -= v.value().len() as u64;
                    victims.push((k.value(), m.kind, v.value().len() as u64));
                }
                for (k, kind, size) in victims {
                    table.remove(k).map_err(|e| self.fail(e))?;
                    len -= 1;
                    bytes -= size;
                    count(&mut dropped, kind, 1);
                }
            }
            let mut counters = txn.open_table(COUNTERS).map_err(|e| self.fail(e))?;
            for (kind, n) in &dropped {
                let key = counter_key(*kind);
                let old = counters
                    .get(key)
                    .map_err(|e| self.fail(e))?
                    .map(|v| v.value())
                    .unwrap_or(0);
                counters.insert(key, old + n).map_err(|e| self.fail(e))?;
            }
        }
        txn.commit().map_err(|e| self.fail(e))?;
        (self.len, self.bytes, self.next) = (len, bytes, next);
        Ok(dropped)
    }

    /// Up to `n` messages with keys above `after`, in order.
    pub fn after(&self, after: u64, n: usize) -> Result<Vec<(u64, Message)>, OutboxError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = txn.open_table(MESSAGES).map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for item in table.range(after + 1..).map_err(|e| self.fail(e))?.take(n) {
            let (k, v) = item.map_err(|e| self.fail(e))?;
            let m = serde_json::from_slice(v.value()).map_err(|e| self.fail(e))?;
            out.push((k.value(), m));
        }
        Ok(out)
    }

    /// Removes acknowledged messages. Not synced to disk by itself (the next push is): after
    /// a crash an acknowledged message may be sent once more, never lost.
    pub fn remove(&mut self, keys: &[u64]) -> Result<(), OutboxError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut txn = self.db.begin_write().map_err(|e| self.fail(e))?;
        txn.set_durability(Durability::None)
            .map_err(|e| self.fail(e))?;
        let (mut len, mut bytes) = (self.len, self.bytes);
        {
            let mut table = txn.open_table(MESSAGES).map_err(|e| self.fail(e))?;
            for k in keys {
                if let Some(v) = table.remove(*k).map_err(|e| self.fail(e))? {
                    len -= 1;
                    bytes -= v.value().len() as u64;
                }
            }
        }
        txn.commit().map_err(|e| self.fail(e))?;
        (self.len, self.bytes) = (len, bytes);
        Ok(())
    }

    /// Messages dropped because the outbox was full, since the file was created, by kind.
    pub fn dropped(&self, kind: Kind) -> Result<u64, OutboxError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = txn.open_table(COUNTERS).map_err(|e| self.fail(e))?;
        Ok(table
            .get(counter_key(kind))
            .map_err(|e| self.fail(e))?
            .map(|v| v.value())
            .unwrap_or(0))
    }

    /// A stored string (e.g. the discovery topics announced last time).
    pub fn note(&self, key: &str) -> Result<Option<String>, OutboxError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let notes = txn.open_table(NOTES).map_err(|e| self.fail(e))?;
        Ok(notes
            .get(key)
            .map_err(|e| self.fail(e))?
            .map(|v| v.value().to_owned()))
    }

    /// Stores a string durably.
    pub fn set_note(&mut self, key: &str, value: &str) -> Result<(), OutboxError> {
        let txn = self.db.begin_write().map_err(|e| self.fail(e))?;
        txn.open_table(NOTES)
            .map_err(|e| self.fail(e))?
            .insert(key, value)
            .map_err(|e| self.fail(e))?;
        txn.commit().map_err(|e| self.fail(e))
    }
}

const NOTES: TableDefinition<&str, &str> = TableDefinition::new("notes");

/// Adds `n` to the count of `kind` in a per-kind tally.
pub(super) fn count(tally: &mut Vec<(Kind, u64)>, kind: Kind, n: u64) {
    match tally.iter_mut().find(|(k, _)| *k == kind) {
        Some((_, c)) => *c += n,
        None => tally.push((kind, n)),
    }
}

fn counter_key(kind: Kind) -> &'static str {
    match kind {
        Kind::Event => "dropped_event",
        Kind::State => "dropped_state",
        Kind::Level => "dropped_level",
        Kind::Discovery => "dropped_discovery",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: Kind, i: u32) -> Message {
        Message {
            kind,
            topic: format!("t/{i}"),
            payload: format!("payload {i}").into_bytes(),
            retain: false,
        }
    }

    const BIG: Caps = Caps {
        max_messages: 1000,
        max_bytes: 1 << 20,
    };

    #[test]
    fn messages_survive_a_reopen_in_order_until_removed() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("sub/outbox.redb");
        {
            let mut o = Outbox::open(&path, BIG).expect("open");
            o.push(&[msg(Kind::Event, 1), msg(Kind::State, 2)])
                .expect("push");
            o.push(&[msg(Kind::Event, 3)]).expect("push");
        }
        let mut o = Outbox::open(&path, BIG).expect("reopen");
        assert_eq!(o.len(), 3);
        let all = o.after(0, 10).expect("read");
        let topics: Vec<_> = all.iter().map(|(_, m)| m.topic.as_str()).collect();
        assert_eq!(topics, ["t/1", "t/2", "t/3"]);
        o.remove(&[all[0].0, all[2].0]).expect("remove");
        o.push(&[msg(Kind::Event, 4)]).expect("push");
        let rest: Vec<_> = o
            .after(0, 10)
            .expect("read")
            .into_iter()
            .map(|(_, m)| m.topic)
            .collect();
        assert_eq!(rest, ["t/2", "t/4"]);
        assert_eq!(o.after(all[1].0, 10).expect("read").len(), 1);
    }

    #[test]
    fn a_full_outbox_drops_levels_first_then_the_oldest_and_counts_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let caps = Caps {
            max_messages: 3,
            max_bytes: 1 << 20,
        };
        let mut o = Outbox::open(&dir.path().join("o.redb"), caps).expect("open");
        o.push(&[
            msg(Kind::Event, 1),
            msg(Kind::Level, 2),
            msg(Kind::Event, 3),
        ])
        .expect("push");
        let dropped = o.push(&[msg(Kind::Event, 4)]).expect("push");
        assert_eq!(dropped, [(Kind::Level, 1)]);
        let dropped = o.push(&[msg(Kind::Event, 5)]).expect("push");
        assert_eq!(dropped, [(Kind::Event, 1)]);
        let left: Vec<_> = o
            .after(0, 10)
            .expect("read")
            .into_iter()
            .map(|(_, m)| m.topic)
            .collect();
        assert_eq!(left, ["t/3", "t/4", "t/5"]);
        assert_eq!(o.dropped(Kind::Event).expect("count"), 1);
        assert_eq!(o.dropped(Kind::Level).expect("count"), 1);
    }
}
