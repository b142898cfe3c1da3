//! systemd notifications (sd_notify): READY, STATUS, WATCHDOG and STOPPING datagrams to
//! `$NOTIFY_SOCKET`; nothing happens when the daemon does not run under systemd.
//!
//! The watchdog is fed from the analysis loop, and only while the inference thread is alive
//! (it finished a window recently, or has none waiting), so a stuck pipeline stops feeding it
//! and systemd restarts the service (`WatchdogSec=` in the unit).

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The connection to systemd's notification socket, if any.
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    /// Half the watchdog timeout systemd asked for (`WATCHDOG_USEC`).
    watchdog_every: Option<Duration>,
    last_ping: Mutex<Option<Instant>>,
    started: Instant,
    /// Milliseconds since start when the inference thread last finished a window.
    inference_beat_ms: AtomicU64,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET` and `$WATCHDOG_USEC` (both absent outside systemd).
    pub fn from_env() -> Self {
        let socket = std::env::var("NOTIFY_SOCKET").ok().and_then(|path| {
            let addr = if let Some(name) = path.strip_prefix('@') {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?
            } else {
                std::os::unix::net::SocketAddr::from_pathname(&path).ok()?
            };
            let sock = UnixDatagram::unbound().ok()?;
            Some((sock, addr))
        });
        let watchdog_every = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0)
            .map(|u| Duration::from_micros(u) / 2);
        Self {
            socket,
            watchdog_every,
            last_ping: Mutex::new(None),
            started: Instant::now(),
            inference_beat_ms: AtomicU64::new(0),
        }
    }

    fn send(&self, msg: &str) {
        if let Some((sock, addr)) = &self.socket {
            if let Err(e) = sock.send_to_addr(msg.as_bytes(), addr) {
                tracing::debug!(error = %e, "sd_notify failed");
            }
        }
    }

    /// READY=1 with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// A one-line STATUS.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={status}"));
    }

    /// STOPPING=1.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    /// Called by the inference thread after each window.
    pub fn inference_beat(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.inference_beat_ms.store(ms, Ordering::Relaxed);
    }

    /// Called by the analysis loop at least once a second. Sends WATCHDOG=1 (at most every
    /// half timeout) when `inference_idle` (no window waiting) or the inference finished a
    /// window within the watchdog timeout.
    pub fn analysis_tick(&self, inference_idle: bool) {
        let Some(every) = self.watchdog_every else {
            return;
        };
        let now_ms = self.started.elapsed().as_millis() as u64;
        let beat = self.inference_beat_ms.load(Ordering::Relaxed);
        let alive = inference_idle || now_ms.saturating_sub(beat) < 2 * every.as_millis() as u64;
        if !alive {
            return;
        }
        let mut last = self.last_ping.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= every) {
            *last = Some(Instant::now());
            self.send("WATCHDOG=1");
        }
    }
}
