//! Parsers of single values shared by every table's validation (durations, named choices).

use std::num::NonZeroUsize;
use std::time::Duration;

/// Parses "1s", "500ms", "2m", "1h 30m".
pub(crate) fn duration(s: &str, key: &str, err: &mut dyn FnMut(&str, String)) -> Duration {
    humantime::parse_duration(s).unwrap_or_else(|e| {
        err(
            key,
            format!("{s:?} is not a duration ({e}); e.g. \"500ms\", \"2s\", \"1m\""),
        );
        Duration::from_secs(1)
    })
}

/// `value` parsed, or the type's default when it is absent or invalid (then reported under
/// `key`).
pub(crate) fn parsed<T: std::str::FromStr<Err = String> + Default>(
    value: Option<&str>,
    key: &str,
    err: &mut dyn FnMut(&str, String),
) -> T {
    value
        .map_or_else(|| Ok(T::default()), str::parse)
        .unwrap_or_else(|e| {
            err(key, e);
            T::default()
        })
}

/// Threads for the model's matrix products: from 1 to twice the CPUs this process may use
/// (more only adds switching; thousands would exhaust the machine before the first window).
pub fn max_threads(n: usize) -> Result<NonZeroUsize, String> {
    let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let most = 2 * cpus;
    match NonZeroUsize::new(n) {
        None => Err("must be at least 1".into()),
        Some(t) if n > most => Err(format!(
            "{t} is more than twice the {cpus} CPUs available (at most {most})"
        )),
        Some(t) => Ok(t),
    }
}
