//! How results are written, in one place: label slugs, RFC 3339 stamps, times rounded to
//! milliseconds, and the top scores of a window or file.

use crate::model::Label;

/// Lower-case ASCII slug: letters and digits kept, every other run becomes one `_`.
pub fn slugify(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('_') {
            slug.push('_');
        }
    }
    slug.trim_matches('_').to_owned()
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-21T07:02:13.120Z`.
pub fn rfc3339(base: jiff::Timestamp, offset_s: f64) -> String {
    let span = jiff::SignedDuration::from_secs_f64(offset_s.max(0.0));
    let t = base.checked_add(span).unwrap_or(base);
    // To the nearest millisecond (formatting alone would truncate 0.9999995 s to .999).
    let t = t.round(jiff::Unit::Millisecond).unwrap_or(t);
    format!("{:.3}", t)
}

/// Rounds seconds to milliseconds, as times are printed.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Indices and scores of the `k` highest scores, best first (ties by label order).
pub fn top_k(scores: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx.into_iter().take(k).map(|i| (i, scores[i])).collect()
}

/// The `k` highest scores as JSON objects `{"label", "score"}`, best first (the `top` of a
/// scores line and of `classify --json`).
pub fn top_json(labels: &[Label], scores: &[f32], k: usize) -> Vec<serde_json::Value> {
    top_k(scores, k)
        .into_iter()
        .map(|(i, s)| serde_json::json!({"label": labels[i].name, "score": s}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_topic_safe() {
        assert_eq!(
            slugify("Smoke detector, smoke alarm"),
            "smoke_detector_smoke_alarm"
        );
        assert_eq!(slugify("Power tool"), "power_tool");
        assert_eq!(slugify("  Dog!"), "dog");
    }

    #[test]
    fn times_are_utc_with_milliseconds() {
        let base: jiff::Timestamp = "2026-11-21T07:02:13Z".parse().expect("time");
        assert_eq!(rfc3339(base, 0.12), "2026-11-21T07:02:13.120Z");
    }

    #[test]
    fn top_k_is_sorted_and_stable() {
        assert_eq!(
            top_k(&[0.1, 0.9, 0.5, 0.9], 3),
            [(1, 0.9), (3, 0.9), (2, 0.5)]
        );
    }
}
