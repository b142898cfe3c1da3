//! Issue 28's correct numbers: soundsentry's AP, ROC-AUC, PR-AUC and precision-recall curve
//! equal scikit-learn's on the cases `tools/make_metric_fixtures.py` wrote (ties, one class).

use serde_json::Value;
use soundsentry::eval::metrics;

const TOL: f64 = 1e-9;

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn close(name: &str, what: &str, ours: Option<f64>, theirs: &Value) {
    match (ours, theirs.as_f64()) {
        (None, None) => {}
        (Some(a), Some(b)) => assert!((a - b).abs() <= TOL, "{name}: {what} {a} vs {b}"),
        (a, _) => panic!("{name}: {what} ours {a:?}, scikit-learn {theirs}"),
    }
}

#[test]
fn issue_28_metrics_equal_scikit_learn() {
    let path = crate::util::repo("tests/fixtures/metrics/sklearn.json");
    let text = std::fs::read_to_string(&path).expect("fixture");
    let fixture: Value = serde_json::from_str(&text).expect("json");
    let cases = fixture["cases"].as_array().expect("cases");
    assert!(cases.len() >= 10);
    for c in cases {
        let name = c["name"].as_str().expect("name");
        let truth: Vec<bool> = floats(&c["truth"]).iter().map(|&y| y == 1.0).collect();
        let scores = floats(&c["scores"]);
        close(
            name,
            "AP",
            metrics::average_precision(&truth, &scores),
            &c["average_precision"],
        );
        close(
            name,
            "PR-AUC",
            metrics::pr_auc(&truth, &scores),
            &c["pr_auc"],
        );
        close(
            name,
            "ROC-AUC",
            metrics::roc_auc(&truth, &scores),
            &c["roc_auc"],
        );
        if let Some(curve) = metrics::pr_curve(&truth, &scores) {
            for (ours, key) in [
                (&curve.precision, "precision"),
                (&curve.recall, "recall"),
                (&curve.thresholds, "thresholds"),
            ] {
                let theirs = floats(&c[key]);
                assert_eq!(ours.len(), theirs.len(), "{name}: {key} points");
                for (a, b) in ours.iter().zip(&theirs) {
                    assert!((a - b).abs() <= TOL, "{name}: {key} {a} vs {b}");
                }
            }
        } else {
            assert!(
                c["precision"].is_null(),
                "{name}: a curve scikit-learn drew"
            );
        }
    }
}
