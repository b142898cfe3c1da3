//! The history's SQLite file: its schema, the rows the writer inserts, retention, and the
//! reads the report makes.
//!
//! The file is in WAL mode with `synchronous = NORMAL`: a committed transaction survives the
//! process being killed (kill -9, an OOM kill) and the file is never left corrupt; a power cut
//! may lose the last second of commits, never the file.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::detect::Event;
use crate::levels::LevelReport;

/// The schema's version (`PRAGMA user_version`).
const VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS levels (
    id INTEGER PRIMARY KEY,
    sensor TEXT NOT NULL,
    start_unix REAL NOT NULL,
    end_unix REAL NOT NULL,
    interval_s REAL NOT NULL,
    laeq REAL, lceq REAL, lzeq REAL, lamax REAL, lamin REAL, lasmax REAL, la10 REAL, la90 REAL,
    calibrated INTEGER NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS levels_by_start ON levels (start_unix);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    label TEXT NOT NULL,
    state TEXT NOT NULL,
    start_unix REAL NOT NULL,
    end_unix REAL,
    line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_start ON events (start_unix);
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY,
    time_unix REAL NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notes_by_time ON notes (time_unix);
";

/// One row to keep.
#[derive(Debug, Clone)]
pub enum Row {
    /// A level report and its JSON line as printed.
    Level(Box<LevelReport>, String),
    /// An event message and its JSON line.
    Event(Box<Event>, String),
    /// A note: the daemon started or stopped, the source restarted (`kind`, `detail`).
    Note(f64, &'static str, String),
}

/// Opens (creating) the history file: WAL, NORMAL sync, incremental vacuum, the schema.
pub fn open(path: &Path) -> anyhow::Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let db = Connection::open(path)?;
    db.busy_timeout(std::time::Duration::from_secs(5))?;
    let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > VERSION {
        anyhow::bail!(
            "{}: written by a newer soundsentry (schema {version}, this one knows {VERSION})",
            path.display()
        );
    }
    if version == 0 {
        // must precede the first table to take effect
        db.execute_batch("PRAGMA auto_vacuum = INCREMENTAL")?;
    }
    db.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
    db.execute_batch(SCHEMA)?;
    db.execute_batch(&format!("PRAGMA user_version = {VERSION}"))?;
    Ok(db)
}

/// A history in memory (for `report --lines`).
pub fn memory() -> anyhow::Result<Connection> {
    let db = Connection::open_in_memory()?;
    db.execute_batch(SCHEMA)?;
    Ok(db)
}

/// Imports JSON lines as the daemon prints them (level reports and events; other lines are
/// skipped) in one transaction. Returns (level reports, event messages) imported; a line that
/// is not JSON is an error naming its number.
pub fn import(db: &mut Connection, text: &str) -> anyhow::Result<(usize, usize)> {
    use serde_json::Value;
    let tx = db.transaction()?;
    let (mut levels, mut events) = (0, 0);
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("line {}: not JSON ({e})", i + 1))?;
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let f = |k: &str| v[k].as_f64();
        let need = |keys: &[&str], what: &str| -> anyhow::Result<()> {
            match keys.iter().find(|k| v[**k].is_null()) {
                Some(k) => anyhow::bail!("line {}: {what} without {k:?}", i + 1),
                None => Ok(()),
            }
        };
        if v["type"] == "level" {
            need(
                &["start", "end", "interval_s", "laeq", "lamax"],
                "a level report",
            )?;
            tx.execute(
                "INSERT INTO levels (sensor, start_unix, end_unix, interval_s, laeq, lceq, lzeq, \
                 lamax, lamin, lasmax, la10, la90, calibrated, line) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    s("sensor"),
                    unix(&s("start")),
                    unix(&s("end")),
                    f("interval_s"),
                    f("laeq"),
                    f("lceq"),
                    f("lzeq"),
                    f("lamax"),
                    f("lamin"),
                    f("lasmax"),
                    f("la10"),
                    f("la90"),
                    v["calibrated"].as_bool().unwrap_or(false),
                    line
                ],
            )?;
            levels += 1;
        } else if v["id"].is_string() && v["state"].is_string() {
            need(&["label", "kind", "start"], "an event")?;
            tx.execute(
                "INSERT INTO events (event_id, kind, label, state, start_unix, end_unix, line) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    s("id"),
                    s("kind"),
                    s("label"),
                    s("state"),
                    unix(&s("start")),
                    v["end"].as_str().map(unix),
                    line
                ],
            )?;
            events += 1;
        }
    }
    tx.commit()?;
    Ok((levels, events))
}

/// Opens an existing history file for reading only.
pub fn open_read_only(path: &Path) -> anyhow::Result<Connection> {
    use rusqlite::OpenFlags;
    anyhow::ensure!(path.exists(), "{}: no such history file", path.display());
    let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    db.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(db)
}

/// Seconds since 1970 of an RFC 3339 time (0 when it does not parse).
pub fn unix(rfc3339: &str) -> f64 {
    rfc3339
        .parse::<jiff::Timestamp>()
        .map_or(0.0, |t| t.as_millisecond() as f64 / 1000.0)
}

/// Inserts `rows` in one transaction.
pub fn insert(db: &mut Connection, rows: &[Row]) -> rusqlite::Result<()> {
    let tx = db.transaction()?;
    {
        let mut level = tx.prepare_cached(
            "INSERT INTO levels (sensor, start_unix, end_unix, interval_s, laeq, lceq, lzeq, \
             lamax, lamin, lasmax, la10, la90, calibrated, line) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        let mut event = tx.prepare_cached(
            "INSERT INTO events (event_id, kind, label, state, start_unix, end_unix, line) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut note =
            tx.prepare_cached("INSERT INTO notes (time_unix, kind, detail) VALUES (?1, ?2, ?3)")?;
        for row in rows {
            match row {
                Row::Level(r, line) => {
                    let l = &r.levels;
                    level.execute(params![
                        r.sensor,
                        unix(&r.start),
                        unix(&r.end),
                        r.interval_s,
                        l.laeq,
                        l.lceq,
                        l.lzeq,
                        l.lamax,
                        l.lamin,
                        l.lasmax,
                        l.la10,
                        l.la90,
                        r.calibrated,
                        line
                    ])?;
                }
                Row::Event(e, line) => {
                    event.execute(params![
                        e.id,
                        e.kind.as_str(),
                        e.label,
                        e.state.as_str(),
                        unix(&e.start),
                        e.end.as_deref().map(unix),
                        line
                    ])?;
                }
                Row::Note(t, kind, detail) => {
                    note.execute(params![t, kind, detail])?;
                }
            }
        }
    }
    tx.commit()
}

/// Deletes rows older than `days` before `now_unix`, then whole oldest days while the file is
/// over `max_bytes`, and gives the freed pages back. Returns the rows deleted.
pub fn retain(
    db: &mut Connection,
    now_unix: f64,
    days: u32,
    max_bytes: u64,
) -> rusqlite::Result<u64> {
    let cut = now_unix - f64::from(days) * 86_400.0;
    let mut deleted = delete_before(db, cut)?;
    for _ in 0..10_000 {
        if size(db)? <= max_bytes {
            break;
        }
        let oldest: Option<f64> = db
            .query_row(
                "SELECT MIN(t) FROM (SELECT MIN(start_unix) AS t FROM levels \
                 UNION ALL SELECT MIN(start_unix) FROM events \
                 UNION ALL SELECT MIN(time_unix) FROM notes)",
                [],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let Some(oldest) = oldest else { break };
        let n = delete_before(db, oldest + 86_400.0)?;
        deleted += n;
        if n == 0 {
            break;
        }
    }
    Ok(deleted)
}

fn delete_before(db: &mut Connection, cut: f64) -> rusqlite::Result<u64> {
    let tx = db.transaction()?;
    let mut n = tx.execute("DELETE FROM levels WHERE start_unix < ?1", [cut])?;
    n += tx.execute("DELETE FROM events WHERE start_unix < ?1", [cut])?;
    n += tx.execute("DELETE FROM notes WHERE time_unix < ?1", [cut])?;
    tx.commit()?;
    if n > 0 {
        // the pragma frees a page per step: step it to the end
        let mut vacuum = db.prepare("PRAGMA incremental_vacuum")?;
        let mut rows = vacuum.query([])?;
        while rows.next()?.is_some() {}
        drop(rows);
        drop(vacuum);
        db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    Ok(n as u64)
}

/// Bytes the database's pages take.
pub fn size(db: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = db.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let page: i64 = db.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let free: i64 = db.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * page) as u64)
}
