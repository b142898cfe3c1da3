//! The `[mqtt]` table: as written, validated into [`MqttSettings`], and what it names on the
//! machine (a password file or variable, the TLS files) read in a step of its own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{default_outbox, BrokerUrl, MqttSettings, Secret};
use crate::config::values::duration;

/// `[mqtt]` as written.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct RawMqtt {
    pub url: Option<String>,
    pub client_id: Option<String>,
    pub keep_alive: String,
    pub qos: u8,
    pub prefix: String,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub outbox: Option<PathBuf>,
    pub outbox_max_messages: u64,
    pub outbox_max_mb: u64,
    pub scores: bool,
    pub stats_interval: String,
    pub discovery: bool,
    pub discovery_prefix: String,
    pub reconnect_min: String,
    pub reconnect_max: String,
    pub flush_timeout: String,
}

impl Default for RawMqtt {
    fn default() -> Self {
        Self {
            url: None,
            client_id: None,
            keep_alive: "30s".into(),
            qos: 1,
            prefix: "soundsentry".into(),
            username: None,
            password_file: None,
            password_env: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            outbox: None,
            outbox_max_messages: 100_000,
            outbox_max_mb: 64,
            scores: false,
            stats_interval: "60s".into(),
            discovery: true,
            discovery_prefix: "homeassistant".into(),
            reconnect_min: "1s".into(),
            reconnect_max: "60s".into(),
            flush_timeout: "5s".into(),
        }
    }
}

/// The `[mqtt]` table, without touching the machine: the password and the TLS files it names
/// are read and checked by [`read`] afterwards. The default client id is
/// `soundsentry-<sensor id slug>`.
pub(crate) fn validate(
    raw: &RawMqtt,
    sensor_id: &str,
    base: &Path,
    err: &mut impl FnMut(&str, String),
) -> (MqttSettings, Unread) {
    let url = raw
        .url
        .as_deref()
        .and_then(|u| u.parse::<BrokerUrl>().map_err(|e| err("mqtt.url", e)).ok());
    if raw.qos > 2 {
        err("mqtt.qos", format!("{} is not 0, 1 or 2", raw.qos));
    }
    let topic_part = |s: &str, key: &str, err: &mut dyn FnMut(&str, String)| {
        if s.is_empty() || s.contains(['+', '#', '\0']) || s.starts_with('/') || s.ends_with('/') {
            err(
                key,
                format!("{s:?} is not usable in a topic (empty, +, #, or a leading or trailing /)"),
            );
        }
    };
    topic_part(&raw.prefix, "mqtt.prefix", err);
    topic_part(&raw.discovery_prefix, "mqtt.discovery_prefix", err);
    let password = match (&raw.password_file, &raw.password_env) {
        (Some(_), Some(_)) => {
            err(
                "mqtt.password_env",
                "set either password_file or password_env, not both".into(),
            );
            None
        }
        (Some(f), None) => Some(PasswordSource::File(base.join(f))),
        (None, Some(v)) => Some(PasswordSource::Env(v.clone())),
        (None, None) => None,
    };
    if password.is_some() && raw.username.is_none() {
        err("mqtt.username", "a password is set but no username".into());
    }
    let file = |p: &Option<PathBuf>| p.as_ref().map(|p| base.join(p));
    let ca_file = file(&raw.ca_file);
    let client_cert = file(&raw.client_cert);
    let client_key = file(&raw.client_key);
    if client_cert.is_some() != client_key.is_some() {
        err(
            "mqtt.client_key",
            "client_cert and client_key go together".into(),
        );
    }
    if url.as_ref().is_some_and(|u| u.tls) && ca_file.is_none() {
        err(
            "mqtt.ca_file",
            "an mqtts:// broker needs the CA file that signs its certificate".into(),
        );
    }
    let reconnect_min = duration(&raw.reconnect_min, "mqtt.reconnect_min", &mut *err);
    let reconnect_max = duration(&raw.reconnect_max, "mqtt.reconnect_max", &mut *err);
    if reconnect_min.is_zero() || reconnect_max < reconnect_min {
        err(
            "mqtt.reconnect_max",
            "need 0 < reconnect_min <= reconnect_max".into(),
        );
    }
    let keep_alive = duration(&raw.keep_alive, "mqtt.keep_alive", &mut *err);
    if keep_alive < Duration::from_secs(5) {
        err("mqtt.keep_alive", "must be at least 5s".into());
    }
    let stats_interval = duration(&raw.stats_interval, "mqtt.stats_interval", &mut *err);
    if stats_interval < Duration::from_secs(1) {
        err("mqtt.stats_interval", "must be at least 1s".into());
    }
    if raw.outbox_max_messages == 0 || raw.outbox_max_mb == 0 {
        err(
            "mqtt.outbox_max_messages",
            "the outbox caps must be at least 1".into(),
        );
    }
    let unread = Unread {
        password,
        default_client_id: raw.client_id.is_none(),
    };
    let settings = MqttSettings {
        url,
        client_id: raw
            .client_id
            .clone()
            .unwrap_or_else(|| default_client_id(sensor_id)),
        keep_alive,
        qos: raw.qos.min(2),
        prefix: raw.prefix.clone(),
        username: raw.username.clone(),
        password: None,
        ca_file,
        client_cert,
        client_key,
        outbox: raw
            .outbox
            .as_ref()
            .map(|p| base.join(p))
            .unwrap_or_else(default_outbox),
        outbox_max_messages: raw.outbox_max_messages.max(1),
        outbox_max_bytes: raw.outbox_max_mb.max(1) << 20,
        scores: raw.scores,
        stats_interval,
        discovery: raw.discovery,
        discovery_prefix: raw.discovery_prefix.clone(),
        reconnect_min,
        reconnect_max,
        flush_timeout: duration(&raw.flush_timeout, "mqtt.flush_timeout", &mut *err),
    };
    (settings, unread)
}

/// Where the broker password comes from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PasswordSource {
    /// `mqtt.password_file`, relative to the configuration's folder.
    File(PathBuf),
    /// `mqtt.password_env`.
    Env(String),
}

/// What validation left to [`read`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Unread {
    pub password: Option<PasswordSource>,
    /// `mqtt.client_id` is unset: it follows the sensor id.
    pub default_client_id: bool,
}

/// Reads the password (a missing file or variable is an error of its key) and checks that the
/// TLS files exist.
pub(crate) fn read(s: &mut MqttSettings, unread: &Unread, err: &mut impl FnMut(&str, String)) {
    s.password = match &unread.password {
        Some(PasswordSource::File(f)) => std::fs::read_to_string(f)
            .map(|p| Secret(p.trim_end_matches(['\r', '\n']).to_owned()))
            .map_err(|e| err("mqtt.password_file", format!("{}: {e}", f.display())))
            .ok(),
        Some(PasswordSource::Env(v)) => std::env::var(v)
            .map(Secret)
            .map_err(|_| {
                err(
                    "mqtt.password_env",
                    format!("the environment variable {v:?} is not set"),
                )
            })
            .ok(),
        None => None,
    };
    for (p, key) in [
        (&s.ca_file, "mqtt.ca_file"),
        (&s.client_cert, "mqtt.client_cert"),
        (&s.client_key, "mqtt.client_key"),
    ] {
        if let Some(p) = p.as_ref().filter(|p| !p.is_file()) {
            err(key, format!("{}: no such file", p.display()));
        }
    }
}

/// The client id that follows a sensor id.
pub(crate) fn default_client_id(sensor_id: &str) -> String {
    format!("soundsentry-{}", crate::format::slugify(sensor_id))
}
