//! systemd notifications (sd_notify): READY, STATUS, WATCHDOG and STOPPING datagrams to
//! `$NOTIFY_SOCKET`; nothing happens when the daemon does not run under systemd.
//!
//! The watchdog is fed from the analysis loop, and only while the inference thread is alive
//! (it finished a window recently, or has none waiting), so a stuck pipeline stops feeding it
//! and systemd restarts the service (`WatchdogSec=` in the unit).

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// Milliseconds since start when the analysis loop last ticked.
    analysis_tick_ms: AtomicU64,
    /// Whether no window was waiting for the model at that tick.
    inference_idle: AtomicBool,
    /// Set when the run is ending.
    stopping: AtomicBool,
}

/// How long the model may go without finishing a waiting window before the health check
/// says so, when systemd asks for no watchdog (with one: the watchdog's own timeout).
const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the analysis loop may go without a tick (it ticks at least once a second).
const ANALYSIS_TIMEOUT: Duration = Duration::from_secs(5);

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
            analysis_tick_ms: AtomicU64::new(0),
            inference_idle: AtomicBool::new(true),
            stopping: AtomicBool::new(false),
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
        self.stopping.store(true, Ordering::Relaxed);
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The inference thread is alive: no window waits for it, or it finished one within
    /// `timeout`.
    fn inference_alive(&self, now_ms: u64, idle: bool, timeout: Duration) -> bool {
        let beat = self.inference_beat_ms.load(Ordering::Relaxed);
        idle || now_ms.saturating_sub(beat) < timeout.as_millis() as u64
    }

    /// The condition that feeds the watchdog, for a health check: Ok while the analysis loop
    /// ticks and the inference keeps up; else why not.
    pub fn liveness(&self) -> Result<(), String> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err("stopping".into());
        }
        let now_ms = self.now_ms();
        let tick = self.analysis_tick_ms.load(Ordering::Relaxed);
        let since = Duration::from_millis(now_ms.saturating_sub(tick));
        if since > ANALYSIS_TIMEOUT {
            return Err(format!(
                "the analysis loop has not run for {:.0} s",
                since.as_secs_f64()
            ));
        }
        let timeout = self.watchdog_every.map_or(HEALTH_TIMEOUT, |e| 2 * e);
        let idle = self.inference_idle.load(Ordering::Relaxed);
        if !self.inference_alive(now_ms, idle, timeout) {
            let beat = self.inference_beat_ms.load(Ordering::Relaxed);
            return Err(format!(
                "the model has not finished a window for {:.0} s (one is waiting)",
                now_ms.saturating_sub(beat) as f64 / 1000.0
            ));
        }
        Ok(())
    }

    /// Called by the inference thread after each window.
    pub fn inference_beat(&self) {
        let ms = self.now_ms();
        self.inference_beat_ms.store(ms, Ordering::Relaxed);
    }

    /// Called by the analysis loop at least once a second. Sends WATCHDOG=1 (at most every
    /// half timeout) when `inference_idle` (no window waiting) or the inference finished a
    /// window within the watchdog timeout.
    pub fn analysis_tick(&self, inference_idle: bool) {
        let now_ms = self.now_ms();
        self.analysis_tick_ms.store(now_ms, Ordering::Relaxed);
        self.inference_idle.store(inference_idle, Ordering::Relaxed);
        let Some(every) = self.watchdog_every else {
            return;
        };
        if !self.inference_alive(now_ms, inference_idle, 2 * every) {
            return;
        }
        let mut last = self.last_ping.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= every) {
            *last = Some(Instant::now());
            self.send("WATCHDOG=1");
        }
    }
}
