//! The publisher thread: connects (TLS, login, Last Will), sends the outbox in order with a
//! bounded number in flight, removes what the broker acknowledged, and reconnects with capped
//! exponential backoff and jitter.
//!
//! Each connection is a fresh clean session; on (re)connect everything still in the outbox is
//! sent again from the oldest message, so a message whose acknowledgement was lost arrives
//! twice (identical bytes), never zero times.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{
    Client, ConnectReturnCode, ConnectionError, Event, LastWill, MqttOptions, Outgoing, Packet,
    QoS, RecvTimeoutError, TlsConfiguration, Transport,
};
use serde_json::json;

use super::{BrokerUrl, MqttSettings, Shared, Topics};
use crate::stats::Health;

/// Most outbox messages published and not yet acknowledged.
const IN_FLIGHT: usize = 64;
/// How long one wait on the connection lasts before the queues are looked at again.
const POLL: Duration = Duration::from_millis(100);

/// Everything the thread needs.
pub(super) struct Publisher {
    pub url: BrokerUrl,
    pub settings: MqttSettings,
    pub topics: Topics,
    pub shared: Arc<Shared>,
    pub health: Arc<Health>,
    pub entities: super::Entities,
    pub model: String,
}

/// How a connection ended.
enum End {
    /// Shutdown finished (flushed or out of time).
    Done,
    /// The connection was lost after it was up.
    Lost(String),
}

impl Publisher {
    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    fn queued(&self) -> u64 {
        self.shared
            .outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// The thread: connections until shutdown, then what waits in memory is saved if the
    /// outbox can take it (and the loss said if not).
    pub fn run(self) {
        self.connections();
        self.shared
            .outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .close();
    }

    fn connections(&self) {
        let mut failures = 0u32;
        let mut rng = Jitter::seeded();
        // When the broker was last known up (start, or a connection lost): young outages are
        // retried more often, so delivery resumes soon after a short broker restart.
        let mut outage = Instant::now();
        loop {
            if self.stopping() {
                // Not connected at shutdown: what is queued waits in the outbox.
                if self.queued() > 0 {
                    tracing::warn!(
                        queued = self.queued(),
                        "MQTT broker not reachable at shutdown; messages stay in the outbox"
                    );
                }
                return;
            }
            let attempt = self.shared.attempts_total.fetch_add(1, Ordering::SeqCst) + 1;
            let ended = self.session();
            self.shared.connected.store(false, Ordering::SeqCst);
            match ended {
                Ok(End::Done) => return,
                Ok(End::Lost(why)) => {
                    failures = 1;
                    outage = Instant::now();
                    tracing::warn!(broker = %self.url, reason = %why, "MQTT connection lost");
                }
                Err(why) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(
                        broker = %self.url,
                        attempt,
                        reason = %why,
                        "MQTT connection failed"
                    );
                }
            }
            let delay = backoff(
                self.settings.reconnect_min,
                retry_cap(self.settings.reconnect_max, outage.elapsed()),
                failures,
                &mut rng,
            );
            self.sleep(delay);
        }
    }

    /// Sleeps `d`, waking early for shutdown.
    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut guard = self.shared.outbox.lock().unwrap_or_else(|p| p.into_inner());
        while !self.stopping() {
            let now = Instant::now();
            if now >= until {
                break;
            }
            guard = match self.shared.wake.wait_timeout(guard, until - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    fn options(&self) -> Result<MqttOptions, String> {
        let s = &self.settings;
        let mut o = MqttOptions::new(&s.client_id, &self.url.host, self.url.port);
        o.set_keep_alive(s.keep_alive);
        o.set_clean_session(true);
        o.set_max_packet_size(1 << 20, 1 << 20);
        o.set_last_will(LastWill::new(
            self.topics.status(),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        if let Some(user) = &s.username {
            let pass = s.password.as_ref().map(|p| p.0.clone()).unwrap_or_default();
            o.set_credentials(user, pass);
        }
        if self.url.tls {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::new(tls_config(s)?),
            )));
        }
        Ok(o)
    }

    fn qos(&self) -> QoS {
        match self.settings.qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        }
    }

    /// One connection: Err when it never came up, Ok(Lost) when it broke, Ok(Done) at the end
    /// of a shutdown.
    fn session(&self) -> Result<End, String> {
        let plan = self.discovery_plan()?;
        // Room for everything one turn can queue without polling the connection: the window
        // of outbox messages, status, stats, scores, and the discovery configs (an AudioSet
        // model watches 527 labels) with their removals.
        let capacity = IN_FLIGHT + plan.0.len() + plan.1.len() + super::EPHEMERAL_QUEUE + 16;
        let (client, mut conn) = Client::new(self.options()?, capacity);
        loop {
            match conn.recv() {
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(describe(&e)),
                Err(_) => return Err("connection closed".into()),
            }
        }
        self.shared.connects_total.fetch_add(1, Ordering::SeqCst);
        self.shared.connected.store(true, Ordering::SeqCst);
        tracing::info!(broker = %self.url, base = %self.topics.base, "MQTT connected");
        let mut session = Session {
            client,
            qos: self.qos(),
            submitted: VecDeque::new(),
            in_flight: HashMap::new(),
            last_key: 0,
        };
        session.publish(
            self.topics.status(),
            true,
            QoS::AtLeastOnce,
            b"online".to_vec(),
            None,
        )?;
        self.announce(&mut session, plan)?;
        let mut next_stats = Instant::now();
        let mut flush_until: Option<Instant> = None;
        loop {
            self.top_up(&mut session)?;
            if Instant::now() >= next_stats {
                let stats = self.stats_payload();
                session.publish(self.topics.stats(), true, QoS::AtMostOnce, stats, None)?;
                next_stats = Instant::now() + self.settings.stats_interval;
            }
            let ephemeral: Vec<_> = self
                .shared
                .ephemeral
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain(..)
                .collect();
            for (topic, payload) in ephemeral {
                session.publish(topic, false, QoS::AtMostOnce, payload, None)?;
            }
            if self.stopping() {
                let until =
                    *flush_until.get_or_insert(Instant::now() + self.settings.flush_timeout);
                let drained = self.queued() == 0 && session.in_flight.is_empty();
                if drained || Instant::now() >= until {
                    if !drained {
                        tracing::warn!(
                            queued = self.queued(),
                            "MQTT flush timed out at shutdown; messages stay in the outbox"
                        );
                    }
                    self.say_goodbye(session, conn);
                    return Ok(End::Done);
                }
            }
            let mut acked = Vec::new();
            match conn.recv_timeout(POLL) {
                Ok(Ok(event)) => session.on_event(&event, &mut acked),
                Ok(Err(e)) => return Ok(End::Lost(describe(&e))),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(End::Lost("closed".into())),
            }
            // Drain what else is ready without waiting.
            while let Ok(r) = conn.try_recv() {
                match r {
                    Ok(event) => session.on_event(&event, &mut acked),
                    Err(e) => return Ok(End::Lost(describe(&e))),
                }
            }
            let mut store = self.shared.outbox.lock().unwrap_or_else(|p| p.into_inner());
            store.remove(&acked);
            // A quiet sensor's unwritable outbox is tried again here too.
            store.recover();
        }
    }

    /// Publishes more of the outbox while fewer than [`IN_FLIGHT`] wait for their ack.
    fn top_up(&self, s: &mut Session) -> Result<(), String> {
        let room = IN_FLIGHT.saturating_sub(s.pending());
        if room == 0 {
            return Ok(());
        }
        let batch = self
            .shared
            .outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .after(s.last_key, room)
            .map_err(|e| e.to_string())?;
        for (key, m) in batch {
            let qos = s.qos;
            s.publish(m.topic, m.retain, qos, m.payload, Some(key))?;
            s.last_key = key;
        }
        Ok(())
    }

    /// Home Assistant discovery: (topics announced last time and no longer configured, the
    /// current configs).
    #[allow(clippy::type_complexity)]
    fn discovery_plan(&self) -> Result<(Vec<String>, Vec<(String, String)>), String> {
        if self.topics.discovery.is_none() {
            return Ok((Vec::new(), Vec::new()));
        }
        let configs = self.topics.discovery(&self.entities, &self.model);
        let before = self
            .shared
            .outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .note("discovery")
            .unwrap_or_default();
        let removed = before
            .lines()
            .filter(|t| !t.is_empty() && !configs.iter().any(|(c, _)| c == t))
            .map(str::to_owned)
            .collect();
        Ok((removed, configs))
    }

    /// Publishes the discovery plan: an empty retained config for each removed entity (Home
    /// Assistant deletes it), then the current configs; remembers what was announced.
    #[allow(clippy::type_complexity)]
    fn announce(
        &self,
        s: &mut Session,
        (removed, configs): (Vec<String>, Vec<(String, String)>),
    ) -> Result<(), String> {
        if self.topics.discovery.is_none() {
            return Ok(());
        }
        for old in removed {
            s.publish(old, true, QoS::AtLeastOnce, Vec::new(), None)?;
        }
        for (topic, payload) in &configs {
            s.publish(
                topic.clone(),
                true,
                QoS::AtLeastOnce,
                payload.clone().into_bytes(),
                None,
            )?;
        }
        let now: Vec<&str> = configs.iter().map(|(t, _)| t.as_str()).collect();
        self.shared
            .outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set_note("discovery", &now.join("\n"));
        Ok(())
    }

    fn stats_payload(&self) -> Vec<u8> {
        let h = &self.health;
        let (p50, p95) = h.inference_percentiles();
        let outbox = self.shared.outbox.lock().unwrap_or_else(|p| p.into_inner());
        let dropped = |k| outbox.dropped(k);
        let state = outbox.state();
        json!({
            "v": 1,
            "sensor": self.topics.sensor,
            "uptime_s": h.uptime().as_secs(),
            "windows_total": h.windows_total.load(Ordering::Relaxed),
            "windows_skipped_total": h.windows_skipped_total.load(Ordering::Relaxed),
            "events_total": h.events_total.load(Ordering::Relaxed),
            "overruns_total": h.source.overruns_total.load(Ordering::Relaxed),
            "source_restarts_total": h.source.restarts_total.load(Ordering::Relaxed),
            "nonfinite_samples_total": crate::audio::nonfinite_total(),
            "inference_ms_p50": p50,
            "inference_ms_p95": p95,
            "outbox_depth": outbox.len(),
            "outbox_state": if state.problem.is_some() { "unwritable" } else { "ok" },
            "outbox_error": state.problem,
            "outbox_in_memory": state.in_memory,
            "outbox_lost_total": state.lost_total,
            "events_dropped_total": dropped(super::Kind::Event),
            "levels_dropped_total": dropped(super::Kind::Level),
            "mqtt_connects_total": self.shared.connects_total.load(Ordering::Relaxed),
        })
        .to_string()
        .into_bytes()
    }

    /// Clean shutdown: `offline` (retained), then DISCONNECT, waiting briefly for both to go.
    fn say_goodbye(&self, mut s: Session, mut conn: rumqttc::Connection) {
        let _ = s.publish(
            self.topics.stats(),
            true,
            QoS::AtMostOnce,
            self.stats_payload(),
            None,
        );
        let _ = s.publish(
            self.topics.status(),
            true,
            QoS::AtLeastOnce,
            b"offline".to_vec(),
            None,
        );
        let _ = s.client.disconnect();
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            match conn.recv_timeout(POLL) {
                Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) | Ok(Err(_)) => break,
                Err(RecvTimeoutError::Disconnected) => break,
                _ => {}
            }
        }
        tracing::info!(broker = %self.url, "MQTT disconnected");
    }
}

/// One connection's bookkeeping: which outbox key each publish carries.
struct Session {
    client: Client,
    qos: QoS,
    /// Publishes handed to the client, in order: the outbox key, or None for others.
    submitted: VecDeque<Option<u64>>,
    /// Packet id → outbox key, for publishes sent and not yet acknowledged.
    in_flight: HashMap<u16, u64>,
    /// Newest outbox key handed to the client.
    last_key: u64,
}

impl Session {
    fn pending(&self) -> usize {
        self.submitted.iter().filter(|k| k.is_some()).count() + self.in_flight.len()
    }

    fn publish(
        &mut self,
        topic: String,
        retain: bool,
        qos: QoS,
        payload: Vec<u8>,
        key: Option<u64>,
    ) -> Result<(), String> {
        self.client
            .try_publish(topic, qos, retain, payload)
            .map_err(|e| format!("queueing a publish: {e}"))?;
        // A QoS 0 key is marked: no ack will come, it is done once written.
        let tag = key.map(|k| {
            if qos == QoS::AtMostOnce {
                k | QOS0_FLAG
            } else {
                k
            }
        });
        self.submitted.push_back(tag);
        Ok(())
    }

    fn on_event(&mut self, event: &Event, acked: &mut Vec<u64>) {
        match event {
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(Some(key)) = self.submitted.pop_front() {
                    if key & QOS0_FLAG != 0 {
                        acked.push(key & !QOS0_FLAG);
                    } else {
                        self.in_flight.insert(*pkid, key);
                    }
                }
            }
            Event::Incoming(Packet::PubAck(a)) => {
                if let Some(k) = self.in_flight.remove(&a.pkid) {
                    acked.push(k);
                }
            }
            Event::Incoming(Packet::PubComp(c)) => {
                if let Some(k) = self.in_flight.remove(&c.pkid) {
                    acked.push(k);
                }
            }
            _ => {}
        }
    }
}

/// Set on a submitted key published at QoS 0 (removed from the outbox once written).
const QOS0_FLAG: u64 = 1 << 63;

/// A clear reason for a connection failure.
fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => match code {
            ConnectReturnCode::BadUserNamePassword => {
                "the broker refused the login: bad user name or password".into()
            }
            ConnectReturnCode::NotAuthorized => {
                "the broker refused the login: not authorised".into()
            }
            other => format!("the broker refused the connection: {other:?}"),
        },
        ConnectionError::Tls(t) => format!("TLS: {t}"),
        ConnectionError::Io(io) => format!("{io}"),
        ConnectionError::NetworkTimeout => "no answer from the broker (timeout)".into(),
        other => other.to_string(),
    }
}

/// rustls client configuration: the configured CA as the only trust anchor, server name
/// checked, optional client certificate.
fn tls_config(s: &MqttSettings) -> Result<rustls::ClientConfig, String> {
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let ca = s.ca_file.as_deref().ok_or("mqtts:// needs mqtt.ca_file")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut read(ca)?.as_slice()) {
        let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no PEM certificate in it", ca.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match (&s.client_cert, &s.client_key) {
        (Some(c), Some(k)) => {
            let certs = rustls_pemfile::certs(&mut read(c)?.as_slice())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {e}", c.display()))?;
            let key = rustls_pemfile::private_key(&mut read(k)?.as_slice())
                .map_err(|e| format!("{}: {e}", k.display()))?
                .ok_or_else(|| format!("{}: no private key in it", k.display()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("client certificate: {e}"))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// Capped exponential backoff with jitter: `min · 2^(failures−1)`, at most `max`, then a
/// random point in its upper half (so a fleet of sensors does not retry in step).
fn backoff(min: Duration, max: Duration, failures: u32, rng: &mut Jitter) -> Duration {
    let exp = min.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let d = exp.min(max);
    d / 2 + d.mul_f64(rng.next() / 2.0)
}

/// Longest delay between attempts in an outage's first minute.
const YOUNG_OUTAGE_MAX: Duration = Duration::from_secs(8);
/// How long an outage counts as young.
const YOUNG_OUTAGE: Duration = Duration::from_secs(60);

/// The backoff's cap after `outage` without a broker: at most 8 s in the first minute (so a
/// broker back within a minute is reached within ~8 s, at most ~15 attempts that minute),
/// `max` after that.
fn retry_cap(max: Duration, outage: Duration) -> Duration {
    match outage < YOUNG_OUTAGE {
        true => max.min(YOUNG_OUTAGE_MAX),
        false => max,
    }
}

/// A small xorshift generator for the jitter (no need for cryptographic randomness).
struct Jitter(u64);

impl Jitter {
    fn seeded() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Self(t ^ (std::process::id() as u64) << 32 | 1)
    }

    /// Uniform in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let mut rng = Jitter(42);
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(60));
        for (failures, full) in [(1, 1), (2, 2), (3, 4), (7, 60), (40, 60)] {
            for _ in 0..50 {
                let d = backoff(min, max, failures, &mut rng);
                let full = Duration::from_secs(full);
                assert!(d >= full / 2 && d <= full, "{failures}: {d:?}");
            }
        }
    }

    /// Issue 25 (13): after a 25 s outage delivery resumed 25-29 s after the broker was back
    /// (the delay had doubled to 16-32 s). In an outage's first minute no delay exceeds 8 s.
    #[test]
    fn issue_25_a_short_outage_is_retried_within_8_s_and_attempts_stay_bounded() {
        let mut rng = Jitter(7);
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(60));
        // Simulate one outage: attempt, wait the delay, attempt again.
        let (mut t, mut failures, mut attempts) = (Duration::ZERO, 0u32, 0u32);
        while t < YOUNG_OUTAGE {
            failures += 1;
            attempts += 1;
            let d = backoff(min, retry_cap(max, t), failures, &mut rng);
            assert!(d <= YOUNG_OUTAGE_MAX, "{t:?}: {d:?}");
            t += d;
        }
        assert!(
            (8..=20).contains(&attempts),
            "{attempts} attempts in the first minute"
        );
        // Later the full backoff applies again.
        let d = backoff(min, retry_cap(max, Duration::from_secs(120)), 10, &mut rng);
        assert!(d >= Duration::from_secs(30), "{d:?}");
    }
}
