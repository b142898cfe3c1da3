//! Ranking and decision metrics of one label's scores against its truth, as scikit-learn
//! defines them: average precision, ROC-AUC, PR-AUC, the curves, and counts at a threshold.
//!
//! The curves follow `sklearn.metrics` 1.9 (`_binary_clf_curve`): one point per distinct
//! score, from the highest down, so tied scores enter together. Where scikit-learn warns and
//! returns a number that means nothing (average precision 0 for a label without positives) or
//! raises (ROC-AUC of one class), these return `None`: the report shows the label as
//! undefined and leaves it out of every mean, never NaN. Scores must be finite; the callers
//! check them before (a NaN would have no place in the order).

/// Counts at a threshold (a score at or above it is a decision for the label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Positives decided for the label.
    pub tp: usize,
    /// Negatives decided for the label.
    pub fp: usize,
    /// Positives missed.
    pub fn_: usize,
    /// Negatives left alone.
    pub tn: usize,
}

impl Counts {
    /// tp / (tp + fp); 0 when nothing was decided (scikit-learn's `zero_division=0`).
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// tp / (tp + fn); 0 without positives.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// The harmonic mean of precision and recall; 0 when both are 0.
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The decisions `score >= threshold` against the truth.
pub fn counts_at(truth: &[bool], scores: &[f64], threshold: f64) -> Counts {
    let mut c = Counts::default();
    for (&y, &s) in truth.iter().zip(scores) {
        match (y, s >= threshold) {
            (true, true) => c.tp += 1,
            (false, true) => c.fp += 1,
            (true, false) => c.fn_ += 1,
            (false, false) => c.tn += 1,
        }
    }
    c
}

/// One point per distinct score, highest first: (the score, true positives and false
/// positives among the scores at or above it).
fn steps(truth: &[bool], scores: &[f64]) -> Vec<(f64, usize, usize)> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut out: Vec<(f64, usize, usize)> = Vec::new();
    let (mut tp, mut fp) = (0, 0);
    for (i, &k) in order.iter().enumerate() {
        if truth[k] {
            tp += 1;
        } else {
            fp += 1;
        }
        let last_of_tie = order
            .get(i + 1)
            .is_none_or(|&next| scores[next] != scores[k]);
        if last_of_tie {
            out.push((scores[k], tp, fp));
        }
    }
    out
}

/// A precision-recall curve in scikit-learn's order: recall falling, the last point
/// (precision 1, recall 0) added; `thresholds` has one value fewer (rising).
#[derive(Debug, Clone, PartialEq)]
pub struct PrCurve {
    /// Precision at each point.
    pub precision: Vec<f64>,
    /// Recall at each point, falling.
    pub recall: Vec<f64>,
    /// The score of each point but the last, rising.
    pub thresholds: Vec<f64>,
}

/// `sklearn.metrics.precision_recall_curve`; `None` without positives.
pub fn pr_curve(truth: &[bool], scores: &[f64]) -> Option<PrCurve> {
    let steps = steps(truth, scores);
    let positives = steps.last()?.1;
    if positives == 0 {
        return None;
    }
    let mut curve = PrCurve {
        precision: Vec::with_capacity(steps.len() + 1),
        recall: Vec::with_capacity(steps.len() + 1),
        thresholds: Vec::with_capacity(steps.len()),
    };
    for &(t, tp, fp) in steps.iter().rev() {
        curve.precision.push(ratio(tp, tp + fp));
        curve.recall.push(tp as f64 / positives as f64);
        curve.thresholds.push(t);
    }
    curve.precision.push(1.0);
    curve.recall.push(0.0);
    Some(curve)
}

/// `sklearn.metrics.average_precision_score`: the precision at each threshold weighted by
/// the recall it adds; `None` without positives (scikit-learn warns and says 0).
pub fn average_precision(truth: &[bool], scores: &[f64]) -> Option<f64> {
    let c = pr_curve(truth, scores)?;
    Some(
        c.recall
            .windows(2)
            .zip(&c.precision)
            .map(|(r, p)| (r[0] - r[1]) * p)
            .sum(),
    )
}

/// The area under the precision-recall curve by the trapezoid rule,
/// `sklearn.metrics.auc(recall, precision)` of `precision_recall_curve`; `None` without
/// positives. (It differs from average precision, which does not interpolate.)
pub fn pr_auc(truth: &[bool], scores: &[f64]) -> Option<f64> {
    let c = pr_curve(truth, scores)?;
    Some(trapezoid(&c.recall, &c.precision).abs())
}

/// A ROC curve, scikit-learn's `roc_curve(drop_intermediate=False)`: false- and
/// true-positive rates from (0, 0) up, thresholds falling (the first one infinite).
#[derive(Debug, Clone, PartialEq)]
pub struct RocCurve {
    /// False-positive rate at each point, rising.
    pub fpr: Vec<f64>,
    /// True-positive rate at each point, rising.
    pub tpr: Vec<f64>,
    /// The score of each point, falling (the first infinite).
    pub thresholds: Vec<f64>,
}

/// `None` unless the truth holds both classes.
pub fn roc_curve(truth: &[bool], scores: &[f64]) -> Option<RocCurve> {
    let steps = steps(truth, scores);
    let &(_, positives, negatives) = steps.last()?;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut curve = RocCurve {
        fpr: vec![0.0],
        tpr: vec![0.0],
        thresholds: vec![f64::INFINITY],
    };
    for &(t, tp, fp) in &steps {
        curve.fpr.push(fp as f64 / negatives as f64);
        curve.tpr.push(tp as f64 / positives as f64);
        curve.thresholds.push(t);
    }
    Some(curve)
}

/// `sklearn.metrics.roc_auc_score` (binary): the area under the ROC curve, the chance that a
/// positive outscores a negative with ties counted half; `None` for one class.
pub fn roc_auc(truth: &[bool], scores: &[f64]) -> Option<f64> {
    let c = roc_curve(truth, scores)?;
    Some(trapezoid(&c.fpr, &c.tpr))
}

fn trapezoid(x: &[f64], y: &[f64]) -> f64 {
    x.windows(2)
        .zip(y.windows(2))
        .map(|(x, y)| (x[1] - x[0]) * (y[0] + y[1]) / 2.0)
        .sum()
}

/// The threshold, among the distinct scores, with the best F1 (the highest such score on a
/// tie, the fewer decisions), and its counts; `None` without positives.
pub fn best_f1(truth: &[bool], scores: &[f64]) -> Option<(f64, Counts)> {
    let steps = steps(truth, scores);
    let &(_, positives, negatives) = steps.last()?;
    if positives == 0 {
        return None;
    }
    let mut best: Option<(f64, Counts)> = None;
    for &(t, tp, fp) in &steps {
        let c = Counts {
            tp,
            fp,
            fn_: positives - tp,
            tn: negatives - fp,
        };
        if best.is_none_or(|(_, b)| c.f1() > b.f1()) {
            best = Some((t, c));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_enter_together_and_count_half_in_roc_auc() {
        // one positive and one negative tied at 0.4: ROC-AUC counts the pair as half
        let y = [false, true, true, false];
        let s = [0.1, 0.4, 0.4, 0.8];
        let c = pr_curve(&y, &s).expect("a curve");
        assert_eq!(c.thresholds, vec![0.1, 0.4, 0.8]);
        assert_eq!(c.precision, vec![0.5, 2.0 / 3.0, 0.0, 1.0]);
        assert_eq!(c.recall, vec![1.0, 1.0, 0.0, 0.0]);
        assert!((average_precision(&y, &s).expect("defined") - 2.0 / 3.0).abs() < 1e-12);
        assert!((pr_auc(&y, &s).expect("defined") - 1.0 / 3.0).abs() < 1e-12);
        assert!((roc_auc(&y, &s).expect("defined") - 0.5).abs() < 1e-12);
    }

    #[test]
    fn one_class_is_undefined_not_nan() {
        let s = [0.1, 0.2, 0.3];
        assert_eq!(average_precision(&[false; 3], &s), None);
        assert_eq!(pr_auc(&[false; 3], &s), None);
        assert_eq!(roc_auc(&[false; 3], &s), None);
        assert_eq!(roc_auc(&[true; 3], &s), None);
        assert_eq!(best_f1(&[false; 3], &s), None);
        assert_eq!(average_precision(&[true; 3], &s), Some(1.0));
        assert_eq!(average_precision(&[], &[]), None);
    }

    #[test]
    fn counts_and_best_f1() {
        let y = [true, false, true, false, true];
        let s = [0.9, 0.8, 0.7, 0.2, 0.1];
        let c = counts_at(&y, &s, 0.5);
        assert_eq!((c.tp, c.fp, c.fn_, c.tn), (2, 1, 1, 1));
        assert!((c.f1() - 4.0 / 6.0).abs() < 1e-12);
        let (t, best) = best_f1(&y, &s).expect("positives");
        // at 0.1 every clip is a decision: P 3/5, R 1, F1 0.75 beats 0.7's 2/3 and 0.9's 0.5
        assert_eq!(t, 0.1);
        assert!((best.f1() - 0.75).abs() < 1e-12);
        assert_eq!(Counts::default().f1(), 0.0);
    }
}
