//! The step after validation that reads the machine: the host name (the default sensor id),
//! the MQTT password file or variable and the TLS files, the web server's token file.

use super::Config;
use crate::mqtt::config::default_client_id;

/// What validation left to [`read`].
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Unread {
    /// `sensor_id` is unset: it is the host name.
    pub host_sensor_id: bool,
    pub mqtt: crate::mqtt::config::Unread,
}

/// Completes a validated configuration from the machine; problems go to `err` under the key
/// that named them, as validation's do.
pub(super) fn read(cfg: &mut Config, unread: &Unread, err: &mut impl FnMut(&str, String)) {
    if unread.host_sensor_id {
        cfg.sensor_id = host_name();
        if unread.mqtt.default_client_id {
            cfg.mqtt.client_id = default_client_id(&cfg.sensor_id);
        }
    }
    crate::mqtt::config::read(&mut cfg.mqtt, &unread.mqtt, err);
    crate::web::config::read(&mut cfg.http, err);
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "soundsentry".into())
}
