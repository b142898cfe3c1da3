//! Sustained event rate to a broker: queues N events through the MQTT outbox and waits until
//! the broker acknowledged all of them. Usage: `mqtt_rate mqtt://127.0.0.1:1883 [N] [QOS]`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use soundsentry::config::Config;
use soundsentry::detect::{Event, EventKind, EventState};
use soundsentry::mqtt::{Health, Mqtt};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("mqtt://127.0.0.1:1883");
    let n: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(5000);
    let qos: u8 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let dir = tempfile::tempdir()?;
    let text = format!(
        "sensor_id = \"bench\"\n[model]\npath = \"m\"\n[source]\npath = \"a.wav\"\n\
         [mqtt]\nurl = {url:?}\nqos = {qos}\ndiscovery = false\noutbox = {:?}\n",
        dir.path().join("outbox.redb")
    );
    let cfg = Config::parse(&text, &dir.path().join("bench.toml"))?;
    let mqtt = Mqtt::start(
        &cfg.mqtt,
        "bench",
        "bench",
        Default::default(),
        Arc::new(Health::default()),
    )?;
    let event = |seq: u64| Event {
        v: 1,
        id: ulid::Ulid::new().to_string(),
        sensor: "bench".into(),
        label: "Jackhammer".into(),
        slug: "jackhammer".into(),
        kind: EventKind::Sound,
        state: EventState::Update,
        score: Some(0.9),
        peak_score: Some(0.95),
        start: "2026-11-21T07:02:13.120Z".into(),
        end: None,
        duration_s: None,
        laeq_db: None,
        model: "bench".into(),
        seq,
        start_offset_s: 0.0,
        end_offset_s: None,
        limit: None,
        clip: None,
    };
    let t = Instant::now();
    for seq in 1..=n {
        mqtt.event(&event(seq));
    }
    let queued_s = t.elapsed().as_secs_f64();
    let limit = Instant::now() + Duration::from_secs(120);
    while mqtt.queued() > 0 && Instant::now() < limit {
        std::thread::sleep(Duration::from_millis(5));
    }
    let total_s = t.elapsed().as_secs_f64();
    let left = mqtt.queued();
    mqtt.shutdown();
    println!(
        "{}",
        serde_json::json!({"events": n, "qos": qos, "queued_per_s": n as f64 / queued_s,
            "acknowledged_per_s": (n - left) as f64 / total_s, "left": left})
    );
    Ok(())
}
