//! `/metrics`: the daemon's counters and gauges in the Prometheus text format, through the
//! prometheus-client crate. Counters end in `_total`; each scrape reads the live values.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::prometheus_text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use super::live::Live;
use crate::mqtt::Kind;

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    model: String,
    sensor: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

/// The text of one scrape.
pub fn render(live: &Live) -> String {
    let mut r = Registry::with_prefix("soundsentry");
    let h = &live.health;
    let counter = |r: &mut Registry, name: &str, help: &str, v: u64| {
        r.register(name, help, ConstCounter::new(v));
    };
    counter(
        &mut r,
        "windows",
        "Windows scored by the model",
        h.windows_total.load(Ordering::Relaxed),
    );
    counter(
        &mut r,
        "windows_skipped",
        "Windows dropped because the model was still busy",
        h.windows_skipped_total.load(Ordering::Relaxed),
    );
    counter(
        &mut r,
        "event_messages",
        "Event messages produced (sound and limit events, every state; the closing line's events_total)",
        h.events_total.load(Ordering::Relaxed),
    );
    r.register(
        "events",
        "Event messages by label, state and kind",
        live.events_by_label.clone(),
    );
    counter(
        &mut r,
        "overruns",
        "Audio chunks dropped because the analysis was behind the source",
        h.source.overruns_total.load(Ordering::Relaxed),
    );
    counter(
        &mut r,
        "source_restarts",
        "Restarts of the audio source (command or capture device)",
        h.source.restarts_total.load(Ordering::Relaxed),
    );
    counter(
        &mut r,
        "nonfinite_samples",
        "Audio samples that were NaN or infinite (replaced by silence)",
        crate::audio::nonfinite_total(),
    );
    r.register(
        "inference_seconds",
        "Time the model took per window",
        live.inference.clone(),
    );
    counter(
        &mut r,
        "stream_dropped",
        "Live-stream messages lost by web clients that fell behind",
        live.stream_dropped.load(Ordering::Relaxed),
    );
    r.register(
        "stream_clients",
        "Live-stream clients connected",
        ConstGauge::new(live.streams_open.load(Ordering::Relaxed) as i64),
    );
    r.register(
        "uptime_seconds",
        "Seconds since the daemon started",
        ConstGauge::new(h.uptime().as_secs_f64()),
    );
    let alive = live.notifier.liveness().is_ok();
    r.register(
        "healthy",
        "1 while the pipeline is alive (the condition that feeds the systemd watchdog)",
        ConstGauge::new(i64::from(alive)),
    );
    if let Some(m) = &live.mqtt {
        r.register(
            "outbox_depth",
            "Messages in the MQTT outbox (queued or awaiting acknowledgement)",
            ConstGauge::new(m.depth() as i64),
        );
        let dropped = Family::<KindLabel, Counter>::default();
        let state = m.state();
        counter(
            &mut r,
            "messages_lost",
            "MQTT messages lost while the outbox could not be written and memory was full",
            state.lost_total,
        );
        for (name, kind) in [("event", Kind::Event), ("level", Kind::Level)] {
            dropped
                .get_or_create(&KindLabel { kind: name.into() })
                .inc_by(m.dropped(kind));
        }
        r.register(
            "messages_dropped",
            "MQTT messages dropped because the outbox was full, by kind",
            dropped,
        );
        counter(
            &mut r,
            "mqtt_connects",
            "MQTT connections made",
            m.connects_total(),
        );
        r.register(
            "mqtt_connected",
            "1 while connected to the MQTT broker",
            ConstGauge::new(i64::from(m.connected())),
        );
    }
    if let Some((_, c)) = &live.clips {
        for (name, help, v) in [
            ("clips_written", "Event clips written", &c.written_total),
            (
                "clips_failed",
                "Event clips that could not be written",
                &c.failed_total,
            ),
            (
                "clips_withheld",
                "Event clips not stored because of speech ([privacy])",
                &c.withheld_total,
            ),
            (
                "clips_removed",
                "Event clips removed by retention",
                &c.removed_total,
            ),
        ] {
            counter(&mut r, name, help, v.load(Ordering::Relaxed));
        }
    }
    if let Some(level) = live.latest_level() {
        let l = &*level;
        for (name, key, help) in [
            ("laeq_db", "laeq", "LAeq of the latest level report, dB"),
            (
                "lafmax_db",
                "lamax",
                "LAFmax of the latest level report, dB",
            ),
            ("lceq_db", "lceq", "LCeq of the latest level report, dB"),
        ] {
            if let Some(v) = l[key].as_f64() {
                r.register(name, help, ConstGauge::new(v));
            }
        }
    }
    let build = Family::<BuildLabels, Gauge>::default();
    build
        .get_or_create(&BuildLabels {
            version: env!("CARGO_PKG_VERSION").into(),
            model: live.model.clone(),
            sensor: live.sensor.clone(),
        })
        .set(1);
    r.register(
        "build_info",
        "The daemon's version, model and sensor",
        build,
    );
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut text, &r);
    text
}
