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

    /// Parses `mqtt[s]://HOST[:PORT]`. Errors quote the URL with any user name and password
    /// replaced (see [`redact_url`]).
    fn from_str(url: &str) -> Result<Self, String> {
        let shown = format!("{:?}", redact_url(url));
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(format!(
                "{shown}: a broker URL starts with mqtt:// or mqtts:// (e.g. mqtt://127.0.0.1:1883)"
            ));
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') {
            return Err(format!(
                "{shown}: only mqtt[s]://HOST[:PORT] (put the user name and password in \
                 mqtt.username and mqtt.password_file)"
            ));
        }
        let (host, port) = match rest.strip_prefix('[') {
            Some(r) => {
                let (h, after) = r
                    .split_once(']')
                    .ok_or_else(|| format!("{shown}: an IPv6 address needs its closing ]"))?;
                let port = match after {
                    "" => None,
                    a => Some(a.strip_prefix(':').ok_or_else(|| {
                        format!("{shown}: only :PORT may follow the IPv6 address")
                    })?),
                };
                if h.parse::<std::net::Ipv6Addr>().is_err() {
                    return Err(format!("{shown}: [{h}] is not an IPv6 address"));
                }
                (h, port)
            }
            None => match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            },
        };
        let bad = |c: char| !(c.is_ascii_alphanumeric() || ".-_:".contains(c));
        if host.is_empty() || host.contains(bad) || (host.contains(':') && !rest.starts_with('[')) {
            return Err(format!(
                "{shown}: {host:?} is not a host name or address (an IPv6 address goes in \
                 brackets: mqtt://[::1]:1883)"
            ));
        }
        let port =
            match port {
                None => {
                    if tls {
                        8883
                    } else {
                        1883
                    }
                }
                Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                    format!("{shown}: port {p:?} is not a number from 1 to 65535")
                })?,
            };
        Ok(Self {
            host: host.to_owned(),
            port,
            tls,
        })
    }
}

/// A URL fit to print: any `user:password@` before the host becomes `<redacted>@`.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => format!("<redacted>{}", &rest[at..]),
        None => rest.to_owned(),
    };
    match scheme {
        Some(s) => format!("{s}://{rest}"),
        None => rest,
    }
}

impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        match self.host.contains(':') {
            true => write!(f, "{scheme}://[{}]:{}", self.host, self.port),
            false => write!(f, "{scheme}://{}:{}", self.host, self.port),
        }
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

    /// Issue 25 (10, 12): `mqtt://[::1` was accepted (then DNS errors), and a password in a
    /// refused URL was echoed in the error.
    #[test]
    fn issue_25_bad_broker_urls_are_refused_and_never_show_a_password() {
        for bad in [
            "mqtt://[::1",
            "mqtt://[::1]x",
            "mqtt://[nothost]:1883",
            "mqtt://::1:1883",
            "mqtt://h:0",
            "mqtt://h:",
            "mqtt://ho st",
        ] {
            assert!(bad.parse::<BrokerUrl>().is_err(), "{bad}");
        }
        let u: BrokerUrl = "mqtt://[::1]".parse().expect("url");
        assert_eq!(u.to_string(), "mqtt://[::1]:1883");
        let e = "mqtt://sensor1:hunter2@broker:1883"
            .parse::<BrokerUrl>()
            .expect_err("userinfo refused");
        assert!(!e.contains("hunter2") && !e.contains("sensor1"), "{e}");
        assert!(e.contains("<redacted>@broker:1883"), "{e}");
        let e = "tcp://u:hunter2@h"
            .parse::<BrokerUrl>()
            .expect_err("scheme");
        assert!(!e.contains("hunter2"), "{e}");
        assert_eq!(redact_url("mqtt://h:1/a@b"), "mqtt://h:1/a@b");
    }
}
