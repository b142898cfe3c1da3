//! How a long file's window scores become one score per label: mean, max, vote or weighted,
//! computed as the windows stream past (memory: a few numbers per label).

use serde::Serialize;

/// How chunk scores are combined into file scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// Mean over chunks: how present a sound is over the file.
    Mean,
    /// Max over chunks: whether a sound occurs anywhere.
    Max,
    /// The share of windows at or above the label's threshold; a file has the label when
    /// more than half its windows do (so its decision threshold is 0.5, whatever the label's).
    Vote,
    /// Mean weighted by each window's confidence, |2·score − 1|: windows the model is sure of
    /// count more than undecided ones (a plain mean where every window scores 0.5).
    Weighted,
}

impl Aggregate {
    /// All four, in the order reports list them.
    pub const ALL: [Aggregate; 4] = [Self::Mean, Self::Max, Self::Vote, Self::Weighted];

    /// The name the CLI and reports use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mean => "mean",
            Self::Max => "max",
            Self::Vote => "vote",
            Self::Weighted => "weighted",
        }
    }

    /// The threshold a file's aggregated score is compared with, for a label whose window
    /// threshold is `threshold`: the same, except for `vote` (a majority).
    pub fn decision_threshold(self, threshold: f32) -> f32 {
        match self {
            Self::Vote => 0.5,
            _ => threshold,
        }
    }
}

/// Running sums of the four aggregations for one file.
#[derive(Debug, Clone)]
pub struct Aggregator {
    thresholds: Vec<f32>,
    windows: usize,
    sum: Vec<f64>,
    max: Vec<f32>,
    votes: Vec<usize>,
    weighted: Vec<f64>,
    weights: Vec<f64>,
}

impl Aggregator {
    /// An aggregator for labels whose window thresholds (for `vote`) are `thresholds`.
    pub fn new(thresholds: Vec<f32>) -> Self {
        let n = thresholds.len();
        Self {
            thresholds,
            windows: 0,
            sum: vec![0.0; n],
            max: vec![f32::NEG_INFINITY; n],
            votes: vec![0; n],
            weighted: vec![0.0; n],
            weights: vec![0.0; n],
        }
    }

    /// Adds one window's scores (one per label).
    pub fn push(&mut self, scores: &[f32]) {
        self.windows += 1;
        for (l, &s) in scores.iter().enumerate().take(self.thresholds.len()) {
            self.sum[l] += f64::from(s);
            self.max[l] = self.max[l].max(s);
            self.votes[l] += usize::from(s >= self.thresholds[l]);
            let w = f64::from((2.0 * s - 1.0).abs());
            self.weighted[l] += w * f64::from(s);
            self.weights[l] += w;
        }
    }

    /// Windows pushed.
    pub fn windows(&self) -> usize {
        self.windows
    }

    /// The file's scores by `how`; zeros when no window was pushed.
    pub fn scores(&self, how: Aggregate) -> Vec<f32> {
        if self.windows == 0 {
            return vec![0.0; self.thresholds.len()];
        }
        let n = self.windows as f64;
        (0..self.thresholds.len())
            .map(|l| match how {
                Aggregate::Mean => (self.sum[l] / n) as f32,
                Aggregate::Max => self.max[l],
                Aggregate::Vote => (self.votes[l] as f64 / n) as f32,
                Aggregate::Weighted if self.weights[l] > 0.0 => {
                    (self.weighted[l] / self.weights[l]) as f32
                }
                Aggregate::Weighted => (self.sum[l] / n) as f32,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(windows: &[[f32; 2]]) -> Aggregator {
        let mut a = Aggregator::new(vec![0.5, 0.8]);
        windows.iter().for_each(|w| a.push(w));
        a
    }

    #[test]
    fn four_ways_by_hand() {
        let a = run(&[[0.9, 0.1], [0.2, 0.85], [0.6, 0.5]]);
        let close = |x: Vec<f32>, y: [f32; 2]| {
            x.iter().zip(y).all(|(a, b)| (a - b).abs() < 1e-6) || panic!("{x:?} != {y:?}")
        };
        close(a.scores(Aggregate::Mean), [1.7 / 3.0, 1.45 / 3.0]);
        close(a.scores(Aggregate::Max), [0.9, 0.85]);
        // label 0: 0.9 and 0.6 reach 0.5; label 1: only 0.85 reaches 0.8
        close(a.scores(Aggregate::Vote), [2.0 / 3.0, 1.0 / 3.0]);
        // weights |2s-1|: label 0: 0.8, 0.6, 0.2; label 1: 0.8, 0.7, 0
        let w0 = (0.8 * 0.9 + 0.6 * 0.2 + 0.2 * 0.6) / 1.6;
        let w1 = (0.8 * 0.1 + 0.7 * 0.85) / 1.5;
        close(a.scores(Aggregate::Weighted), [w0, w1]);
        assert_eq!(a.windows(), 3);
    }

    #[test]
    fn undecided_windows_and_empty_files_are_defined() {
        let a = run(&[[0.5, 0.5], [0.5, 0.5]]);
        assert_eq!(a.scores(Aggregate::Weighted), vec![0.5, 0.5]);
        let empty = run(&[]);
        for how in Aggregate::ALL {
            assert_eq!(empty.scores(how), vec![0.0, 0.0], "{how:?}");
        }
        assert_eq!(Aggregate::Vote.decision_threshold(0.8), 0.5);
        assert_eq!(Aggregate::Max.decision_threshold(0.8), 0.8);
    }
}
