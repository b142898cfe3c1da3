//! Pure validation: raw values → domain types, or every error with its key path.

use std::path::Path;
use std::time::Duration;

use super::machine::Unread;
use super::raw::{Errors, Raw, RawSettings};
use super::values::duration;
use super::{Config, DetectConfig, OnOffSet, OutputConfig, WatchSpec};
use crate::detect::{Watch, WatchSettings};
use crate::model::Label;

/// Turns the raw file into a [`Config`], collecting every problem, without reading anything
/// from the machine: what it names there (the host name, a password file) is left to
/// [`super::machine::read`], which the returned [`Unread`] tells.
pub(super) fn validate(raw: Raw, base: &Path) -> (Config, Unread, Errors) {
    let mut errs = Errors::new();
    let mut err = |k: &str, m: String| errs.push((k.to_owned(), m));

    let sensor_id = match raw.sensor_id.clone() {
        Some(s) if s.trim().is_empty() => {
            err("sensor_id", "must not be empty".into());
            s
        }
        Some(s) => s,
        None => String::new(),
    };
    let host_sensor_id = raw.sensor_id.is_none();
    let (model, kernels) = crate::model::config::validate(&raw.model, base, &mut err);
    let source = crate::source::config::validate(&raw.source, base, &mut err);
    let hop = duration(&raw.analysis.hop, "analysis.hop", &mut err);
    if hop < Duration::from_millis(10) {
        err("analysis.hop", "must be at least 10ms (one frame)".into());
    } else if hop > Duration::from_secs(60) {
        err("analysis.hop", "must be at most 1m".into());
    }

    let base_settings = WatchSettings {
        on: 0.5,
        off: 0.35,
        min_duration: Duration::from_secs(1),
        hold: Duration::from_secs(2),
        update_interval: Duration::from_secs(30),
    };
    let defaults = settings(&raw.detect.settings(), &base_settings, "detect", &mut err);
    let defaults_set = OnOffSet {
        on: raw.detect.on.is_some(),
        off: raw.detect.off.is_some(),
    };
    let mut watch = Vec::new();
    for (i, w) in raw.detect.watch.iter().enumerate() {
        let key = format!("detect.watch[{i}]");
        if w.labels.is_empty() {
            err(
                &format!("{key}.labels"),
                "must name at least one model label".into(),
            );
        }
        let name = w
            .name
            .clone()
            .or_else(|| w.labels.first().cloned())
            .unwrap_or_default();
        if watch.iter().any(|x: &WatchSpec| x.name == name) {
            err(&format!("{key}.name"), format!("{name:?} is watched twice"));
        }
        let schedule = (w.hours.is_some() || w.days.is_some()).then(|| {
            let (hours, days) = crate::levels::parse_schedule(
                w.hours.as_deref(),
                w.days.as_deref(),
                &key,
                &mut err,
            );
            crate::detect::Schedule { hours, days }
        });
        watch.push(WatchSpec {
            schedule,
            name,
            labels: w.labels.clone(),
            settings: settings(&w.settings(), &defaults, &key, &mut err),
            set: OnOffSet {
                on: defaults_set.on || w.on.is_some(),
                off: defaults_set.off || w.off.is_some(),
            },
        });
    }
    if !(1..=MAX_TOP_K).contains(&raw.output.top_k) {
        err(
            "output.top_k",
            format!("must be from 1 to {MAX_TOP_K} (labels in a scores line)"),
        );
    }
    let (mqtt, mqtt_unread) = crate::mqtt::config::validate(&raw.mqtt, &sensor_id, base, &mut err);
    let levels = crate::levels::config::validate(&raw.levels, &mut err);
    let http = crate::web::config::validate(&raw.http, base, &mut err);
    let level_triggers = level_triggers(&raw.detect.level, levels.enabled, &mut err);
    let clips = crate::recorder::config::validate_clips(&raw.clips, base, &mut err);
    let privacy = crate::recorder::config::validate_privacy(&raw.privacy, &mut err);
    let history = crate::archive::config::validate(&raw.history, base, &mut err);
    let cfg = Config {
        sensor_id,
        model,
        kernels,
        source,
        hop,
        detect: DetectConfig {
            defaults,
            defaults_set,
            watch,
            level: level_triggers,
        },
        output: OutputConfig {
            stdout: raw.output.stdout,
            scores: raw.output.scores,
            top_k: raw.output.top_k,
        },
        mqtt,
        levels,
        http,
        clips,
        privacy,
        history,
    };
    let unread = Unread {
        host_sensor_id,
        mqtt: mqtt_unread,
    };
    (cfg, unread, errs)
}

/// Checks `[[detect.level]]`: a metric, a threshold, timings; they need `[levels]` on.
fn level_triggers(
    raw: &[super::raw::RawLevelTrigger],
    levels_on: bool,
    err: &mut impl FnMut(&str, String),
) -> Vec<crate::levels::trigger::LevelTrigger> {
    use crate::levels::trigger::{LevelMetric, LevelTrigger};
    if !raw.is_empty() && !levels_on {
        err(
            "detect.level",
            "needs the level meter: set [levels] enabled = true".into(),
        );
    }
    let mut out: Vec<LevelTrigger> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let key = format!("detect.level[{i}]");
        let metric = match r.metric.as_deref() {
            None => LevelMetric::Laf,
            Some(m) => LevelMetric::parse(m).unwrap_or_else(|| {
                err(
                    &format!("{key}.metric"),
                    format!("{m:?}: must be \"laf\", \"laeq_1s\" or \"lceq_1s\""),
                );
                LevelMetric::Laf
            }),
        };
        let threshold_db = r.threshold_db.unwrap_or_else(|| {
            err(
                &format!("{key}.threshold_db"),
                "missing: the level (dB; dBFS while uncalibrated) above which it is loud".into(),
            );
            0.0
        });
        if !threshold_db.is_finite() || !(-200.0..=200.0).contains(&threshold_db) {
            err(
                &format!("{key}.threshold_db"),
                format!("{threshold_db} is outside -200..200 dB"),
            );
        }
        let mut dur = |v: &Option<String>, name: &str, d: Duration| {
            v.as_deref()
                .map(|s| duration(s, &format!("{key}.{name}"), &mut *err))
                .unwrap_or(d)
        };
        let trigger = LevelTrigger {
            name: r
                .name
                .clone()
                .unwrap_or_else(|| format!("{} > {threshold_db} dB", metric.name().to_uppercase())),
            metric,
            threshold_db,
            min_duration: dur(&r.min_duration, "min_duration", Duration::from_secs(1)),
            hold: dur(&r.hold, "hold", Duration::from_secs(2)),
            update_interval: dur(
                &r.update_interval,
                "update_interval",
                Duration::from_secs(30),
            ),
        };
        if trigger.update_interval.is_zero() {
            err(&format!("{key}.update_interval"), "must be > 0".into());
        }
        if out.iter().any(|t| t.name == trigger.name) {
            err(
                &format!("{key}.name"),
                format!("{:?} is used twice", trigger.name),
            );
        }
        out.push(trigger);
    }
    out
}

/// Merges one settings table over `parent`, checking ranges.
fn settings(
    raw: &RawSettings,
    parent: &WatchSettings,
    key: &str,
    err: &mut impl FnMut(&str, String),
) -> WatchSettings {
    let mut dur = |v: &Option<String>, name: &str, d: Duration| {
        v.as_deref()
            .map(|s| duration(s, &format!("{key}.{name}"), &mut *err))
            .unwrap_or(d)
    };
    let s = WatchSettings {
        on: raw.on.unwrap_or(parent.on),
        off: raw
            .off
            .unwrap_or(parent.off.min(raw.on.unwrap_or(parent.on))),
        min_duration: dur(&raw.min_duration, "min_duration", parent.min_duration),
        hold: dur(&raw.hold, "hold", parent.hold),
        update_interval: dur(
            &raw.update_interval,
            "update_interval",
            parent.update_interval,
        ),
    };
    // Inherited values were checked where they were set; report each problem once.
    if raw.on.is_some() && !(0.0..=1.0).contains(&s.on) {
        err(&format!("{key}.on"), format!("{} is outside 0..1", s.on));
    }
    if raw.off.is_some() && (!(0.0..=1.0).contains(&s.off) || s.off > s.on) {
        err(
            &format!("{key}.off"),
            format!("{} must lie in 0..=on ({})", s.off, s.on),
        );
    }
    if s.update_interval.is_zero() {
        err(&format!("{key}.update_interval"), "must be > 0".into());
    }
    s
}

/// Resolves watched label names against the model's labels (case-insensitive, by display
/// name or slug). With no watch list, every label is watched with the defaults. A watch of
/// one label whose `on` the configuration leaves unset takes the model's threshold for that
/// label when the model has one (`off` is then min(0.35, on), or min(configured off, on)).
pub fn resolve_watches(detect: &DetectConfig, labels: &[Label]) -> Result<Vec<Watch>, Errors> {
    if detect.watch.is_empty() {
        return Ok(labels
            .iter()
            .enumerate()
            .map(|(i, l)| Watch {
                name: l.name.clone(),
                outputs: vec![i],
                settings: with_model_threshold(&detect.defaults, detect.defaults_set, l),
                schedule: None,
            })
            .collect());
    }
    let mut errs = Errors::new();
    let mut watches = Vec::new();
    for (i, spec) in detect.watch.iter().enumerate() {
        let mut outputs = Vec::new();
        for (j, name) in spec.labels.iter().enumerate() {
            let slug = crate::format::slugify(name);
            match labels
                .iter()
                .position(|l| l.name.eq_ignore_ascii_case(name) || l.slug == slug)
            {
                Some(o) => outputs.push(o),
                None => errs.push((
                    format!("detect.watch[{i}].labels[{j}]"),
                    format!("{name:?} is not a label of the model"),
                )),
            }
        }
        let settings = match outputs.as_slice() {
            [o] if spec.labels.len() == 1 => {
                with_model_threshold(&spec.settings, spec.set, &labels[*o])
            }
            _ => spec.settings.clone(),
        };
        watches.push(Watch {
            name: spec.name.clone(),
            outputs,
            settings,
            schedule: spec.schedule.clone(),
        });
    }
    if errs.is_empty() {
        Ok(watches)
    } else {
        Err(errs)
    }
}

/// `settings` with the label's model threshold as `on` where the configuration sets no `on`.
fn with_model_threshold(settings: &WatchSettings, set: OnOffSet, label: &Label) -> WatchSettings {
    let mut s = settings.clone();
    if let (false, Some(t)) = (set.on, label.threshold) {
        s.on = t;
        // `off` never above `on`: 0.35 when unset, the configured one when set.
        s.off = if set.off {
            s.off.min(t)
        } else {
            0.35f32.min(t)
        };
    }
    s
}

/// Most labels in a scores line (AudioSet has 527).
const MAX_TOP_K: usize = 1000;

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::path::Path;

    fn errors(text: &str) -> Vec<(String, String)> {
        match Config::parse(text, Path::new("/etc/x/soundsentry.toml")) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.errors,
        }
    }

    #[test]
    fn levels_mistakes_are_reported_with_their_keys() {
        let e = errors(
            "[model]\npath = \"m\"\n[source]\npath = \"a.wav\"\n[levels]\nenabled = true\n\
             interval = \"100ms\"\ntimezone = \"Mars/Olympus\"\n\
             [[levels.limit]]\nmetric = \"lmax\"\nperiod = \"7m\"\nhours = \"7-19\"\ndays = \"mon-fry\"\n\
             [[levels.limit]]\nthreshold_db = 70\nperiod = \"1h\"\nlimit = 3\n",
        );
        let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "levels.limit.1.limit",
                "levels.interval",
                "levels.timezone",
                "levels.limit[0].metric",
                "levels.limit[0].period",
                "levels.limit[0].threshold_db",
                "levels.limit[0].hours",
                "levels.limit[0].days",
            ],
            "{e:?}"
        );
    }

    #[test]
    fn watch_schedules_are_checked_like_limit_rules() {
        let e = errors(
            "[model]\npath = \"m\"\n[source]\npath = \"a.wav\"\n\
             [[detect.watch]]\nlabels = [\"Dog\"]\nhours = \"22-6\"\ndays = \"weekends\"\n\
             [[detect.watch]]\nlabels = [\"Siren\"]\nhours = \"22:00-06:00\"\ndays = \"sat,sun\"\n\
             [clips]\nlabels = [\"Dog\"]\n[privacy]\nclips = \"blur\"\n\
             [http]\nlisten = \"0.0.0.0:80\"\n",
        );
        let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "detect.watch[0].hours",
                "detect.watch[0].days",
                "http.listen",
                "clips.dir",
                "privacy.clips",
            ],
            "{e:?}"
        );
    }

    #[test]
    fn level_triggers_need_the_meter_a_metric_and_a_threshold() {
        let e = errors(
            "[model]\npath = \"m\"\n[source]\npath = \"a.wav\"\n\
             [[detect.level]]\nmetric = \"lmax\"\n\
             [[detect.level]]\nthreshold_db = 85\nhold = \"soon\"\n",
        );
        let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "detect.level",
                "detect.level[0].metric",
                "detect.level[0].threshold_db",
                "detect.level[1].hold",
            ],
            "{e:?}"
        );
    }

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let c = Config::parse(
            "[model]\npath = \"m\"\n[source]\npath = \"a.wav\"\n",
            Path::new("/etc/x/s.toml"),
        )
        .expect("valid");
        assert_eq!(c.model.path, Path::new("/etc/x/m"));
        assert_eq!(c.model.attention, crate::model::Attention::Auto);
        assert_eq!(c.hop, std::time::Duration::from_secs(1));
        assert_eq!(c.detect.defaults.on, 0.5);
        assert_eq!(c.detect.defaults.off, 0.35);
        assert!(c.output.stdout);
    }

    #[test]
    fn every_unknown_key_is_reported_at_once() {
        let e =
            errors("[model]\npath = \"m\"\ntheads = 2\n[source]\npath = \"a\"\nrealtme = true\n");
        let keys: Vec<_> = e.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["model.theads", "source.realtme"]);
    }

    #[test]
    fn every_invalid_value_is_reported_with_its_key() {
        let e = errors(
            "[model]\ndevice = \"tpu\"\nattention = \"bf16\"\nkernels = \"avx9\"\n[source]\nkind = \"mic\"\n[analysis]\nhop = \"soon\"\n[detect]\non = 1.5\n\
             [[detect.watch]]\nlabels = []\non = 0.6\noff = 0.9\n",
        );
        let keys: Vec<_> = e.iter().map(|(k, _)| k.as_str()).collect();
        for k in [
            "model.path",
            "model.device",
            "model.attention",
            "model.kernels",
            "source.kind",
            "analysis.hop",
            "detect.on",
            "detect.watch[0].labels",
            "detect.watch[0].off",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
    }

    #[test]
    fn mqtt_mistakes_are_reported_with_their_keys_and_no_password_leaks() {
        let base = "[model]\npath = \"m\"\n[source]\npath = \"a\"\n";
        let e = errors(&format!(
            "{base}[mqtt]\nurl = \"mqtts://b\"\nqos = 3\nprefix = \"a/#\"\nurl_typo = 1\n\
             password_env = \"SOUNDSENTRY_TEST_UNSET_VAR\"\nreconnect_min = \"9s\"\nreconnect_max = \"1s\"\n"
        ));
        let keys: Vec<_> = e.iter().map(|(k, _)| k.as_str()).collect();
        for k in [
            "mqtt.url_typo",
            "mqtt.qos",
            "mqtt.prefix",
            "mqtt.password_env",
            "mqtt.ca_file",
            "mqtt.reconnect_max",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        let e = errors(&format!("{base}[mqtt]\nurl = \"tcp://x\"\n"));
        assert_eq!(e[0].0, "mqtt.url");
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("pw"), "hunter2\n").expect("pw");
        let c = Config::parse(
            &format!(
                "{base}[mqtt]\nurl = \"mqtt://h\"\nusername = \"u\"\npassword_file = \"pw\"\n"
            ),
            &dir.path().join("s.toml"),
        )
        .expect("valid");
        assert_eq!(
            c.mqtt.password.as_ref().map(|p| p.0.as_str()),
            Some("hunter2")
        );
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.mqtt.url.as_ref().map(|u| u.port), Some(1883));
        assert_eq!(c.mqtt.qos, 1);
        assert!(c.mqtt.discovery);
    }

    /// Validation reads nothing: what the file names on the machine (a password file that is
    /// not there, an unset variable, the host name) is left to the step after it, which
    /// reports it under the same key.
    #[test]
    fn validation_is_pure_and_the_machine_is_read_after_it() {
        use crate::mqtt::config::PasswordSource;
        let text = "[model]\npath = \"m\"\n[source]\npath = \"a.wav\"\n\
                    [mqtt]\nurl = \"mqtt://h\"\nusername = \"u\"\npassword_file = \"nowhere/pw\"\n";
        let base = Path::new("/nonexistent-dir");
        let (raw, unknown) = super::super::raw::parse(text).expect("parses");
        assert!(unknown.is_empty());
        let (cfg, unread, errs) = super::validate(raw, base);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(
            unread.mqtt.password,
            Some(PasswordSource::File(base.join("nowhere/pw")))
        );
        assert!(cfg.mqtt.password.is_none());
        assert!(unread.host_sensor_id && unread.mqtt.default_client_id);
        assert!(cfg.sensor_id.is_empty(), "the host name is not read yet");
        let e = errors(text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, "mqtt.password_file");
        assert!(e[0].1.contains("nowhere/pw"), "{e:?}");
        let c = Config::parse(
            "[model]\npath = \"m\"\n[source]\npath = \"a.wav\"\n",
            Path::new("/etc/x/s.toml"),
        )
        .expect("valid");
        assert!(
            !c.sensor_id.is_empty(),
            "the host name, read after validation"
        );
        assert_eq!(
            c.mqtt.client_id,
            format!("soundsentry-{}", crate::format::slugify(&c.sensor_id))
        );
    }

    #[test]
    fn type_errors_name_their_key() {
        let e = errors("[model]\npath = \"m\"\nthreads = \"two\"\n");
        assert_eq!(e[0].0, "model.threads");
    }

    /// Issue 25 (6): `threads = 10000` passed check-config and spawned thousands of threads.
    #[test]
    fn issue_25_model_threads_is_bounded_by_the_cpus() {
        use crate::config::max_threads;
        use std::num::NonZeroUsize;
        let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        for n in [10_000, 100_000, 2 * cpus + 1] {
            let e = errors(&format!("[model]\npath = \"m\"\nthreads = {n}\n"));
            assert_eq!(e[0].0, "model.threads");
            assert!(e[0].1.contains(&format!("at most {}", 2 * cpus)), "{e:?}");
        }
        let e = errors("[model]\npath = \"m\"\nthreads = 0\n");
        assert_eq!(e[0].0, "model.threads");
        assert_eq!(max_threads(2 * cpus).map(NonZeroUsize::get), Ok(2 * cpus));
    }

    /// Issue 25 (10): absurd values passed check-config.
    #[test]
    fn issue_25_absurd_hop_chunk_and_top_k_are_refused_with_their_keys() {
        for (text, key) in [
            ("[analysis]\nhop = \"1000000h\"\n", "analysis.hop"),
            (
                "[source]\npath = \"a.wav\"\nchunk = \"0s\"\n",
                "source.chunk",
            ),
            ("[output]\ntop_k = 4000000000\n", "output.top_k"),
            ("[levels]\noffset_db = inf\n", "levels.offset_db"),
        ] {
            let e = errors(&format!("[model]\npath = \"m\"\n{text}"));
            assert!(e.iter().any(|(k, _)| k == key), "{text}: {e:?}");
        }
    }
}
