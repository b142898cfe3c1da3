//! MQTT publishing: events and label states through a durable outbox, status with a Last Will,
//! stats, scores and Home Assistant discovery, on a thread of its own.
//!
//! The output thread hands events to [`Mqtt::event`], which writes them to the outbox and
//! returns; the publisher thread (`publisher.rs`) sends the outbox in order and removes what
//! the broker acknowledged. A slow or absent broker therefore never holds up the analysis,
//! and neither does a full or failing disk: the queue (`store.rs`) then keeps messages in
//! memory, bounded, until the outbox can be written again.

pub(crate) mod config;
mod outbox;
mod publisher;
mod settings;
mod store;
mod topics;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

pub use outbox::{Caps, Kind, Message, Outbox, OutboxError};
pub use settings::{default_outbox, BrokerUrl, MqttSettings, Secret};
pub use store::{Store, StoreState, MEMORY_BYTES, MEMORY_MESSAGES, RETRY};
pub use topics::Topics;

use crate::detect::Event;
pub use crate::stats::Health;

/// What a sensor announces: its watched labels and limit rules as (name, slug), each with a
/// retained ON/OFF state and, with discovery, a binary_sensor; and whether level reports are
/// published (`Some(calibrated)`), which adds LAeq and LAFmax sensors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entities {
    /// Watched labels and groups.
    pub sounds: Vec<(String, String)>,
    /// Limit rules.
    pub limits: Vec<(String, String)>,
    /// Level reports: `Some(calibrated)` when on.
    pub levels: Option<bool>,
}

/// What the publisher thread and the producers share.
struct Shared {
    outbox: Mutex<Store>,
    /// Signalled when something is queued or shutdown is asked.
    wake: Condvar,
    stop: AtomicBool,
    /// Ephemeral messages (scores): sent only while connected, dropped when the queue is full.
    ephemeral: Mutex<VecDeque<(String, Vec<u8>)>>,
    connects_total: AtomicU64,
    attempts_total: AtomicU64,
    /// Whether a connection is up now.
    connected: AtomicBool,
}

/// Handle of the MQTT publisher.
pub struct Mqtt {
    shared: Arc<Shared>,
    topics: Topics,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Most scores messages waiting for the broker.
const EPHEMERAL_QUEUE: usize = 16;

impl Mqtt {
    /// Opens the outbox and starts the publisher thread. The states of the watched labels and
    /// limit rules of `entities` start OFF (queued behind anything left from an earlier run)
    /// and, with discovery, each becomes a binary_sensor.
    pub fn start(
        settings: &MqttSettings,
        sensor: &str,
        model: &str,
        entities: Entities,
        health: Arc<Health>,
    ) -> anyhow::Result<Self> {
        let url = settings
            .url
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no MQTT broker configured"))?;
        let caps = Caps {
            max_messages: settings.outbox_max_messages,
            max_bytes: settings.outbox_max_bytes,
        };
        let mut outbox = Store::open(&settings.outbox, caps)?;
        let left = outbox.len();
        if left > 0 {
            tracing::info!(
                queued = left,
                "MQTT outbox holds messages from an earlier run; they go first"
            );
        }
        let topics = Topics::new(
            &settings.prefix,
            sensor,
            settings
                .discovery
                .then_some(settings.discovery_prefix.as_str()),
        );
        let initial: Vec<Message> = entities
            .sounds
            .iter()
            .chain(&entities.limits)
            .map(|(_, slug)| topics.state_message(slug, "OFF"))
            .collect();
        note_dropped(&outbox.push(&initial));
        let shared = Arc::new(Shared {
            outbox: Mutex::new(outbox),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            ephemeral: Mutex::new(VecDeque::new()),
            connects_total: AtomicU64::new(0),
            attempts_total: AtomicU64::new(0),
            connected: AtomicBool::new(false),
        });
        let job = publisher::Publisher {
            url,
            settings: settings.clone(),
            topics: topics.clone(),
            shared: Arc::clone(&shared),
            health,
            entities,
            model: model.to_owned(),
        };
        let thread = std::thread::Builder::new()
            .name("mqtt".into())
            .spawn(move || job.run())?;
        Ok(Self {
            shared,
            topics,
            thread: Some(thread),
        })
    }

    /// Queues an event (and the label state it changes); returns once it is on disk, or in
    /// memory when the outbox cannot be written (see [`Store`]). Never fails.
    pub fn event(&self, e: &Event) {
        self.push(&self.topics.event_messages(e))
    }

    fn push(&self, messages: &[Message]) {
        let dropped = self.lock().push(messages);
        note_dropped(&dropped);
        self.shared.wake.notify_all();
    }

    /// Queues a level report (not retained; the first kind dropped when the outbox is full).
    pub fn level(&self, report: &crate::levels::LevelReport) {
        self.push(&[self.topics.level_message(report)])
    }

    /// Queues a day's figures (retained).
    pub fn day(&self, day: &crate::levels::day::DaySummary) {
        self.push(&[self.topics.day_message(day)])
    }

    /// Whether the outbox can be written, what waits in memory, what was lost.
    pub fn outbox_state(&self) -> StoreState {
        self.lock().state()
    }

    /// Offers a scores message; dropped if the publisher is behind or not connected.
    pub fn scores(&self, payload: String) {
        let mut q = self
            .shared
            .ephemeral
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if q.len() < EPHEMERAL_QUEUE {
            q.push_back((self.topics.scores(), payload.into_bytes()));
            self.shared.wake.notify_all();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.shared.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Messages in the outbox (queued or waiting for their acknowledgement).
    pub fn queued(&self) -> u64 {
        self.lock().len()
    }

    /// Connection attempts so far (successful or not).
    pub fn attempts(&self) -> u64 {
        self.shared.attempts_total.load(Ordering::Relaxed)
    }

    /// A handle that reads the publisher's state from another thread (the web server).
    pub fn probe(&self) -> MqttProbe {
        MqttProbe(Arc::clone(&self.shared))
    }

    /// Stops the publisher: it sends what is queued (up to `mqtt.flush_timeout`), publishes
    /// `offline`, and disconnects. What is not acknowledged stays in the outbox for the next
    /// start.
    pub fn shutdown(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the MQTT publisher thread panicked");
            }
        }
    }
}

/// The publisher's state, read from another thread.
#[derive(Clone)]
pub struct MqttProbe(Arc<Shared>);

impl MqttProbe {
    fn outbox(&self) -> std::sync::MutexGuard<'_, Store> {
        self.0.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Messages in the outbox.
    pub fn depth(&self) -> u64 {
        self.outbox().len()
    }

    /// Whether the outbox can be written, what waits in memory, what was lost.
    pub fn state(&self) -> StoreState {
        self.outbox().state()
    }

    /// Messages of `kind` dropped because the outbox was full.
    pub fn dropped(&self, kind: Kind) -> u64 {
        self.outbox().dropped(kind)
    }

    /// Connections made so far.
    pub fn connects_total(&self) -> u64 {
        self.0.connects_total.load(Ordering::Relaxed)
    }

    /// Whether a connection is up now.
    pub fn connected(&self) -> bool {
        self.0.connected.load(Ordering::Relaxed)
    }
}

impl Drop for Mqtt {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

fn note_dropped(dropped: &[(Kind, u64)]) {
    for (kind, n) in dropped {
        tracing::error!(
            kind = ?kind,
            dropped = n,
            "MQTT outbox full: oldest messages dropped (counted in stats)"
        );
    }
}
