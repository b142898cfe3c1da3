//! Topic names and payloads of the MQTT schema (`"v": 1`), including Home Assistant discovery.

use serde_json::json;

use super::outbox::{Kind, Message};
use crate::detect::{Event, EventState};

/// The topics of one sensor.
#[derive(Debug, Clone)]
pub struct Topics {
    /// `<prefix>/<sensor slug>`.
    pub base: String,
    /// Sensor id as configured (payloads).
    pub sensor: String,
    /// Sensor slug (topics, Home Assistant ids).
    pub sensor_slug: String,
    /// Home Assistant discovery prefix, when discovery is on.
    pub discovery: Option<String>,
}

impl Topics {
    /// Topics under `prefix` for `sensor`.
    pub fn new(prefix: &str, sensor: &str, discovery: Option<&str>) -> Self {
        let sensor_slug = crate::model::slugify(sensor);
        let sensor_slug = if sensor_slug.is_empty() {
            "sensor".to_owned()
        } else {
            sensor_slug
        };
        Self {
            base: format!("{prefix}/{sensor_slug}"),
            sensor: sensor.to_owned(),
            sensor_slug,
            discovery: discovery.map(str::to_owned),
        }
    }

    /// `<base>/status`.
    pub fn status(&self) -> String {
        format!("{}/status", self.base)
    }

    /// `<base>/stats`.
    pub fn stats(&self) -> String {
        format!("{}/stats", self.base)
    }

    /// `<base>/scores`.
    pub fn scores(&self) -> String {
        format!("{}/scores", self.base)
    }

    /// `<base>/label/<slug>/state`.
    pub fn state(&self, slug: &str) -> String {
        format!("{}/label/{slug}/state", self.base)
    }

    /// The outbox messages of one event: the event itself, and the label's retained state on
    /// start and end.
    pub fn event_messages(&self, e: &Event) -> Vec<Message> {
        let mut out = vec![Message {
            kind: Kind::Event,
            topic: format!("{}/event", self.base),
            payload: serde_json::to_vec(e).unwrap_or_default(),
            retain: false,
        }];
        let state = match e.state {
            EventState::Start => Some("ON"),
            EventState::End => Some("OFF"),
            EventState::Update => None,
        };
        if let Some(s) = state {
            out.push(self.state_message(&e.slug, s));
        }
        out
    }

    /// `<base>/level`.
    pub fn level(&self) -> String {
        format!("{}/level", self.base)
    }

    /// A level report message (not retained).
    pub fn level_message(&self, r: &crate::levels::LevelReport) -> Message {
        Message {
            kind: Kind::Level,
            topic: self.level(),
            payload: serde_json::to_vec(r).unwrap_or_default(),
            retain: false,
        }
    }

    /// `<base>/day`.
    pub fn day(&self) -> String {
        format!("{}/day", self.base)
    }

    /// A day's figures (retained: the last day's stay readable).
    pub fn day_message(&self, d: &crate::levels::day::DaySummary) -> Message {
        Message {
            kind: Kind::Level,
            topic: self.day(),
            payload: serde_json::to_vec(d).unwrap_or_default(),
            retain: true,
        }
    }

    /// A retained ON/OFF state.
    pub fn state_message(&self, slug: &str, state: &str) -> Message {
        Message {
            kind: Kind::State,
            topic: self.state(slug),
            payload: state.as_bytes().to_vec(),
            retain: true,
        }
    }

    fn device(&self, model: &str) -> serde_json::Value {
        json!({
            "identifiers": [format!("soundsentry_{}", self.sensor_slug)],
            "name": format!("soundsentry {}", self.sensor),
            "manufacturer": "soundsentry",
            "model": model,
            "sw_version": env!("CARGO_PKG_VERSION"),
        })
    }

    /// Home Assistant discovery configs: a binary_sensor per watched label and limit rule,
    /// LAeq and LAFmax sensors when levels are reported, and sensors for the stats.
    /// `(topic, payload)` pairs, retained.
    pub fn discovery(&self, entities: &super::Entities, model: &str) -> Vec<(String, String)> {
        let Some(prefix) = &self.discovery else {
            return Vec::new();
        };
        let avail = json!([{ "topic": self.status(), "payload_available": "online",
                             "payload_not_available": "offline" }]);
        let mut out = Vec::new();
        let sounds = entities.sounds.iter().map(|w| (w, "sound"));
        let limits = entities.limits.iter().map(|w| (w, "problem"));
        for ((name, slug), class) in sounds.chain(limits) {
            let id = format!("soundsentry_{}_{slug}", self.sensor_slug);
            let cfg = json!({
                "name": name,
                "unique_id": id,
                "object_id": id,
                "state_topic": self.state(slug),
                "payload_on": "ON",
                "payload_off": "OFF",
                "device_class": class,
                "availability": avail,
                "device": self.device(model),
            });
            out.push((
                format!("{prefix}/binary_sensor/{}/{slug}/config", self.sensor_slug),
                cfg.to_string(),
            ));
        }
        for (key, name) in LEVEL_SENSORS.iter().filter(|_| entities.levels.is_some()) {
            let calibrated = entities.levels == Some(true);
            let (topic, mut cfg) = self.sensor(prefix, key, name, &self.level(), &avail, model);
            cfg["unit_of_measurement"] = json!(if calibrated { "dB" } else { "dBFS" });
            cfg["state_class"] = json!("measurement");
            // Home Assistant's sound_pressure class takes dB, not dBFS.
            if calibrated {
                cfg["device_class"] = json!("sound_pressure");
            }
            out.push((topic, cfg.to_string()));
        }
        for (key, name) in DAY_SENSORS.iter().filter(|_| entities.levels.is_some()) {
            let calibrated = entities.levels == Some(true);
            let (topic, mut cfg) = self.sensor(prefix, key, name, &self.day(), &avail, model);
            if *key != "night_lamax_events" {
                cfg["unit_of_measurement"] = json!(if calibrated { "dB" } else { "dBFS" });
                if calibrated {
                    cfg["device_class"] = json!("sound_pressure");
                }
            }
            cfg["state_class"] = json!("measurement");
            out.push((topic, cfg.to_string()));
        }
        for (key, name, unit) in STAT_SENSORS {
            let (topic, mut cfg) = self.sensor(prefix, key, name, &self.stats(), &avail, model);
            cfg["entity_category"] = json!("diagnostic");
            if let Some(u) = unit {
                cfg["unit_of_measurement"] = json!(u);
            }
            out.push((topic, cfg.to_string()));
        }
        out
    }

    /// A discovery sensor reading `key` of the JSON on `state_topic`: (config topic, config).
    fn sensor(
        &self,
        prefix: &str,
        key: &str,
        name: &str,
        state_topic: &str,
        avail: &serde_json::Value,
        model: &str,
    ) -> (String, serde_json::Value) {
        let id = format!("soundsentry_{}_{key}", self.sensor_slug);
        let cfg = json!({
            "name": name,
            "unique_id": id,
            "object_id": id,
            "state_topic": state_topic,
            "value_template": format!("{{{{ value_json.{key} }}}}"),
            "availability": avail,
            "device": self.device(model),
        });
        let topic = format!("{prefix}/sensor/{}/{key}/config", self.sensor_slug);
        (topic, cfg)
    }
}

/// Level report fields shown as Home Assistant sensors: (key, name).
const LEVEL_SENSORS: [(&str, &str); 2] = [("laeq", "LAeq"), ("lamax", "LAFmax")];

/// Day figures shown as Home Assistant sensors: (key, name).
const DAY_SENSORS: [(&str, &str); 3] = [
    ("lden", "Lden"),
    ("ldn", "Ldn"),
    ("night_lamax_events", "Loud night events"),
];

/// Stats fields shown as Home Assistant sensors: (key, name, unit).
const STAT_SENSORS: [(&str, &str, Option<&str>); 5] = [
    ("uptime_s", "Uptime", Some("s")),
    ("windows_skipped_total", "Windows skipped", None),
    ("inference_ms_p95", "Inference p95", Some("ms")),
    ("outbox_depth", "MQTT outbox depth", None),
    ("events_dropped_total", "Events dropped", None),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_discovery_ids_are_stable() {
        let t = Topics::new("soundsentry", "Site North", Some("homeassistant"));
        assert_eq!(t.base, "soundsentry/site_north");
        assert_eq!(
            t.state("jackhammer"),
            "soundsentry/site_north/label/jackhammer/state"
        );
        let entities = crate::mqtt::Entities {
            sounds: vec![("Jackhammer".into(), "jackhammer".into())],
            limits: vec![("LAeq 15m > 75 dB".into(), "laeq_15m_75_db".into())],
            levels: Some(true),
        };
        let d = t.discovery(&entities, "m");
        assert_eq!(
            d[0].0,
            "homeassistant/binary_sensor/site_north/jackhammer/config"
        );
        let v: serde_json::Value = serde_json::from_str(&d[0].1).expect("json");
        assert_eq!(v["unique_id"], "soundsentry_site_north_jackhammer");
        assert_eq!(v["device_class"], "sound");
        assert_eq!(
            v["availability"][0]["topic"],
            "soundsentry/site_north/status"
        );
        let l: serde_json::Value = serde_json::from_str(&d[1].1).expect("json");
        assert_eq!(l["device_class"], "problem");
        assert_eq!(
            l["state_topic"],
            "soundsentry/site_north/label/laeq_15m_75_db/state"
        );
        let laeq: serde_json::Value = serde_json::from_str(&d[2].1).expect("json");
        assert_eq!(laeq["state_topic"], "soundsentry/site_north/level");
        assert_eq!(laeq["value_template"], "{{ value_json.laeq }}");
        assert_eq!(
            (
                laeq["device_class"].as_str(),
                laeq["unit_of_measurement"].as_str()
            ),
            (Some("sound_pressure"), Some("dB"))
        );
        // the day's figures: Lden, Ldn, loud night events on <base>/day
        let lden: serde_json::Value = serde_json::from_str(&d[4].1).expect("json");
        assert_eq!(lden["value_template"], "{{ value_json.lden }}");
        assert_eq!(lden["state_topic"], "soundsentry/site_north/day");
        let nights: serde_json::Value = serde_json::from_str(&d[6].1).expect("json");
        assert!(nights["unit_of_measurement"].is_null());
        let s: serde_json::Value = serde_json::from_str(&d[7].1).expect("json");
        assert_eq!(s["value_template"], "{{ value_json.uptime_s }}");
        let none = crate::mqtt::Entities::default();
        assert!(Topics::new("p", "x", None).discovery(&none, "m").is_empty());
    }
}
