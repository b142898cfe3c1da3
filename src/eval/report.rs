//! The figures of one aggregation over labelled clips: per-label AP, ROC-AUC, PR-AUC and
//! decisions, macro and micro mAP, subset accuracy, Hamming loss and a confusion matrix.

use serde::Serialize;

use super::metrics;
use crate::aggregate::Aggregate;

/// One label's figures.
#[derive(Debug, Clone, Serialize)]
pub struct LabelFigures {
    /// The label.
    pub label: String,
    /// Clips that have it.
    pub positives: usize,
    /// Average precision; `None` without positives.
    pub ap: Option<f64>,
    /// ROC-AUC; `None` without positives or without negatives.
    pub roc_auc: Option<f64>,
    /// Area under the precision-recall curve (trapezoids); `None` without positives.
    pub pr_auc: Option<f64>,
    /// The decision threshold of the file's score (the model's, or 0.5 for `vote`).
    pub threshold: f64,
    /// Precision, recall and F1 at `threshold`.
    pub precision: f64,
    /// See `precision`.
    pub recall: f64,
    /// See `precision`.
    pub f1: f64,
    /// The threshold with the best F1 on these clips, with its precision, recall and F1.
    pub best: Option<Best>,
}

/// The best-F1 decision threshold and what it gives.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Best {
    /// The threshold (one of the scores).
    pub threshold: f64,
    /// Precision there.
    pub precision: f64,
    /// Recall there.
    pub recall: f64,
    /// F1 there.
    pub f1: f64,
}

/// Single-label data: rows are the true label (or `none`), columns the decision.
#[derive(Debug, Clone, Serialize)]
pub struct Confusion {
    /// Row names: the data's labels, then `none`.
    pub rows: Vec<String>,
    /// Column names: the data's labels, `other` (a label of the model the data does not
    /// have), then `none` (no label reached its threshold).
    pub columns: Vec<String>,
    /// counts[row][column].
    pub counts: Vec<Vec<usize>>,
}

/// One aggregation's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// How windows were combined.
    pub aggregate: &'static str,
    /// One entry per label the data has (with at least one positive).
    pub labels: Vec<LabelFigures>,
    /// Mean AP over `labels` with an AP.
    pub macro_map: Option<f64>,
    /// AP of every (clip, label) pair of `labels` pooled.
    pub micro_map: Option<f64>,
    /// Share of clips whose decisions equal their labels on every model label.
    pub subset_accuracy: f64,
    /// Share of wrong (clip, model label) decisions.
    pub hamming_loss: f64,
    /// For data with at most one label a clip.
    pub confusion: Option<Confusion>,
}

/// The figures of `scores` (one row per clip, one score per model label, aggregated by
/// `aggregate`) against `truth` (same shape), decided at each label's `thresholds`.
/// `reported` are the indexes of the labels to give rows for; `single_label` asks for a
/// confusion matrix.
pub fn figures(
    aggregate: Aggregate,
    names: &[String],
    truth: &[Vec<bool>],
    scores: &[Vec<f32>],
    thresholds: &[f32],
    reported: &[usize],
    single_label: bool,
) -> Figures {
    let column = |rows: &[Vec<f32>], l: usize| -> Vec<f64> {
        rows.iter().map(|r| f64::from(r[l])).collect()
    };
    let decision = |l: usize| f64::from(aggregate.decision_threshold(thresholds[l]));
    let labels: Vec<LabelFigures> = reported
        .iter()
        .map(|&l| {
            let t: Vec<bool> = truth.iter().map(|r| r[l]).collect();
            let s = column(scores, l);
            let c = metrics::counts_at(&t, &s, decision(l));
            LabelFigures {
                label: names[l].clone(),
                positives: t.iter().filter(|&&y| y).count(),
                ap: metrics::average_precision(&t, &s),
                roc_auc: metrics::roc_auc(&t, &s),
                pr_auc: metrics::pr_auc(&t, &s),
                threshold: decision(l),
                precision: c.precision(),
                recall: c.recall(),
                f1: c.f1(),
                best: metrics::best_f1(&t, &s).map(|(threshold, c)| Best {
                    threshold,
                    precision: c.precision(),
                    recall: c.recall(),
                    f1: c.f1(),
                }),
            }
        })
        .collect();
    let aps: Vec<f64> = labels.iter().filter_map(|l| l.ap).collect();
    let macro_map = (!aps.is_empty()).then(|| aps.iter().sum::<f64>() / aps.len() as f64);
    let (pooled_t, pooled_s): (Vec<bool>, Vec<f64>) = reported
        .iter()
        .flat_map(|&l| {
            truth
                .iter()
                .zip(scores)
                .map(move |(t, s)| (t[l], f64::from(s[l])))
        })
        .unzip();
    let micro_map = metrics::average_precision(&pooled_t, &pooled_s);
    let (mut exact, mut wrong) = (0usize, 0usize);
    for (t, s) in truth.iter().zip(scores) {
        let errors = (0..names.len())
            .filter(|&l| (f64::from(s[l]) >= decision(l)) != t[l])
            .count();
        exact += usize::from(errors == 0);
        wrong += errors;
    }
    let clips = truth.len().max(1) as f64;
    let confusion = single_label.then(|| confusion(names, truth, scores, reported, &decision));
    Figures {
        aggregate: aggregate.name(),
        labels,
        macro_map,
        micro_map,
        subset_accuracy: exact as f64 / clips,
        hamming_loss: wrong as f64 / (clips * names.len().max(1) as f64),
        confusion,
    }
}

/// Each clip's decision: the model label with the highest score among those at or above
/// their threshold, or none.
fn confusion(
    names: &[String],
    truth: &[Vec<bool>],
    scores: &[Vec<f32>],
    reported: &[usize],
    decision: &dyn Fn(usize) -> f64,
) -> Confusion {
    let k = reported.len();
    let mut counts = vec![vec![0usize; k + 2]; k + 1];
    for (t, s) in truth.iter().zip(scores) {
        let row = reported.iter().position(|&l| t[l]).unwrap_or(k);
        let decided = (0..names.len())
            .filter(|&l| f64::from(s[l]) >= decision(l))
            .max_by(|&a, &b| s[a].total_cmp(&s[b]));
        let col = match decided {
            None => k + 1,
            Some(l) => reported.iter().position(|&r| r == l).unwrap_or(k),
        };
        counts[row][col] += 1;
    }
    let data: Vec<String> = reported.iter().map(|&l| names[l].clone()).collect();
    Confusion {
        rows: data.iter().cloned().chain(["none".to_owned()]).collect(),
        columns: data
            .into_iter()
            .chain(["other".to_owned(), "none".to_owned()])
            .collect(),
        counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_by_hand() {
        let names = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        // four clips: a, b, none, a
        let truth = vec![
            vec![true, false, false],
            vec![false, true, false],
            vec![false, false, false],
            vec![true, false, false],
        ];
        let scores = vec![
            vec![0.9, 0.2, 0.1],
            vec![0.6, 0.7, 0.1],
            vec![0.1, 0.1, 0.8],
            vec![0.4, 0.3, 0.1],
        ];
        let f = figures(
            Aggregate::Mean,
            &names,
            &truth,
            &scores,
            &[0.5; 3],
            &[0, 1],
            true,
        );
        assert_eq!(f.labels.len(), 2);
        let a = &f.labels[0];
        // a: positives 0.9 and 0.4, negatives 0.6 and 0.1 -> AP (1 + 2/3) / 2
        assert!((a.ap.expect("defined") - 5.0 / 6.0).abs() < 1e-12);
        assert!((a.roc_auc.expect("defined") - 0.75).abs() < 1e-12);
        assert_eq!((a.precision, a.recall), (0.5, 0.5));
        assert_eq!(f.labels[1].ap, Some(1.0));
        assert!((f.macro_map.expect("defined") - (5.0 / 6.0 + 1.0) / 2.0).abs() < 1e-12);
        // clip 0 right everywhere; 1 decides a wrongly; 2 decides c; 3 misses a
        assert_eq!(f.subset_accuracy, 0.25);
        assert!((f.hamming_loss - 3.0 / 12.0).abs() < 1e-12);
        let c = f.confusion.expect("single-label data");
        assert_eq!(c.columns, ["a", "b", "other", "none"]);
        assert_eq!(
            c.counts,
            vec![vec![1, 0, 0, 1], vec![0, 1, 0, 0], vec![0, 0, 1, 0]]
        );
    }

    #[test]
    fn a_label_without_positives_is_undefined_and_left_out_of_the_means() {
        let names = vec!["a".to_owned()];
        let f = figures(
            Aggregate::Vote,
            &names,
            &[vec![false], vec![false]],
            &[vec![0.2], vec![0.9]],
            &[0.8],
            &[0],
            false,
        );
        assert_eq!(
            (f.labels[0].ap, f.labels[0].roc_auc, f.macro_map),
            (None, None, None)
        );
        assert_eq!(f.labels[0].threshold, 0.5);
        assert!(f.labels[0].best.is_none() && f.confusion.is_none());
        assert_eq!(f.subset_accuracy, 0.5);
    }
}
