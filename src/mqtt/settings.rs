//! The `[mqtt]` settings, validated: broker URL, identity, security, outbox and timings.

use std::path::PathBuf;
use std::time::Duration;

/// A broker address from an `mqtt://` or `mqtts://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Host name or address (also the name checked against the server certificate).
    pub host: String,
    /// TCP port (default 1883, or 8883 with TLS).
    pub port: u16,
    /// `mqtts://`: TLS.
    pub tls: bool,
}

impl std::str::FromStr for BrokerUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(format!(
                "{url:?}: a broker URL starts with mqtt:// or mqtts:// (e.g. mqtt://127.0.0.1:1883)"
            ));
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') {
            return Err(format!(
                "{url:?}: only mqtt[s]://HOST[:PORT] (put the user name and password in \
                 mqtt.username and mqtt.password_file)"
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("{url:?}: port {p:?} is not a number from 1 to 65535"))?;
                (h, port)
            }
            _ => (rest, if tls { 8883 } else { 1883 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(format!("{url:?}: missing host or port"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            tls,
        })
    }
}

impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// A password; its Debug output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The validated `[mqtt]` table. Publishing is on when `url` is set (in the file or with
/// `soundsentry run --mqtt URL`).
#[derive(Debug, Clone, PartialEq)]
pub struct MqttSettings {
    /// The broker, or None: no publishing.
    pub url: Option<BrokerUrl>,
    /// MQTT client id (default `soundsentry-<sensor slug>`).
    pub client_id: String,
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// QoS of events, states and level reports: 0, 1 (default) or 2.
    pub qos: u8,
    /// Topic prefix (default `soundsentry`); the base topic is `<prefix>/<sensor slug>`.
    pub prefix: String,
    /// User name for the broker.
    pub username: Option<String>,
    /// Password (from `password_file` or the variable named by `password_env`).
    pub password: Option<Secret>,
    /// CA certificates (PEM) that sign the broker's certificate; `mqtts://` without it uses
    /// no trust anchors but these, so it is required with TLS.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM), with `client_key`.
    pub client_cert: Option<PathBuf>,
    /// Client private key (PEM).
    pub client_key: Option<PathBuf>,
    /// The outbox file.
    pub outbox: PathBuf,
    /// Most messages the outbox keeps.
    pub outbox_max_messages: u64,
    /// Most bytes the outbox keeps.
    pub outbox_max_bytes: u64,
    /// Publish the top scores of every window on `<base>/scores` (QoS 0, only while
    /// connected).
    pub scores: bool,
    /// How often `<base>/stats` is published.
    pub stats_interval: Duration,
    /// Home Assistant MQTT discovery.
    pub discovery: bool,
    /// Discovery prefix (default `homeassistant`).
    pub discovery_prefix: String,
    /// First retry delay after a failed connection.
    pub reconnect_min: Duration,
    /// Longest retry delay.
    pub reconnect_max: Duration,
    /// At shutdown, how long to wait for the broker to acknowledge what is queued.
    pub flush_timeout: Duration,
}

/// The default outbox path: `$STATE_DIRECTORY` (systemd), else `$XDG_STATE_HOME/soundsentry`,
/// else `~/.local/state/soundsentry`, else the current folder.
pub fn default_outbox() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let dir = env("STATE_DIRECTORY")
        .or_else(|| env("XDG_STATE_HOME").map(|d| d.join("soundsentry")))
        .or_else(|| env("HOME").map(|h| h.join(".local/state/soundsentry")))
        .unwrap_or_else(|| PathBuf::from("."));
    dir.join("mqtt-outbox.redb")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let u: BrokerUrl = "mqtt://127.0.0.1:1884".parse().expect("url");
        assert_eq!((u.host.as_str(), u.port, u.tls), ("127.0.0.1", 1884, false));
        let u: BrokerUrl = "mqtts://broker.example".parse().expect("url");
        assert_eq!(
            (u.host.as_str(), u.port, u.tls),
            ("broker.example", 8883, true)
        );
        let u: BrokerUrl = "mqtt://[::1]:1883".parse().expect("url");
        assert_eq!(u.host, "::1");
        for bad in [
            "tcp://x",
            "mqtt://",
            "mqtt://h:99999",
            "mqtt://u:p@h",
            "mqtt://h/t",
        ] {
            assert!(bad.parse::<BrokerUrl>().is_err(), "{bad}");
        }
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "Secret(..)");
    }
}
