//! Training a [`Head`]: class-balanced logistic outputs with L2 (and an optional ReLU hidden
//! layer), full-batch Adam, deterministic; k-fold cross-validation and threshold choice.
//!
//! Each label's loss weighs its positives and negatives so that both classes count the same
//! (scikit-learn's `class_weight="balanced"`: n / (2 · class count)). The inputs are
//! standardised with the training set's mean and standard deviation, stored in the head.

use super::{Dense, Head, FORMAT};
use crate::eval::metrics;

/// How a head is trained.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// L2 penalty on the weights (not the biases), per clip-averaged loss.
    pub l2: f32,
    /// Units of the hidden layer; `None` for logistic regression on the embedding.
    pub hidden: Option<usize>,
    /// Full-batch steps.
    pub epochs: usize,
    /// Adam's step size.
    pub learning_rate: f32,
    /// Seed of the hidden layer's initial weights.
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            l2: 0.01,
            hidden: None,
            epochs: 300,
            learning_rate: 0.02,
            seed: 1,
        }
    }
}

/// Why a data set cannot train a head.
pub fn check_data(y: &[Vec<bool>], labels: &[String], folds: usize) -> Result<(), String> {
    if y.len() < folds.max(2) {
        return Err(format!(
            "{} clips: too few for {folds}-fold cross-validation (at least {folds} needed)",
            y.len()
        ));
    }
    for (l, name) in labels.iter().enumerate() {
        let p = y.iter().filter(|row| row[l]).count();
        if p == y.len() {
            return Err(format!(
                "label {name:?}: every clip has it, so nothing tells it apart; add clips \
                 without it (other labels, or background clips)"
            ));
        }
        if p < folds {
            return Err(format!(
                "label {name:?}: {p} clips, fewer than the {folds} folds of the \
                 cross-validation (--folds); add clips or lower --folds"
            ));
        }
    }
    Ok(())
}

/// Trains a head on embeddings `x` (one row per clip) and their labels `y`.
/// `progress` is called with each finished epoch.
pub fn fit(
    x: &[Vec<f32>],
    y: &[Vec<bool>],
    labels: &[String],
    opts: &TrainOptions,
    progress: &mut dyn FnMut(usize),
) -> Head {
    let n = x.len();
    let d = x.first().map_or(0, Vec::len);
    let l = labels.len();
    let (mean, scale) = standardisation(x);
    let xs: Vec<f32> = x
        .iter()
        .flat_map(|row| {
            row.iter()
                .zip(mean.iter().zip(&scale))
                .map(|(v, (m, s))| (v - m) * s)
        })
        .collect();
    // per label, the weight of a positive and of a negative clip
    let weights: Vec<(f32, f32)> = (0..l)
        .map(|j| {
            let p = y.iter().filter(|r| r[j]).count().max(1) as f32;
            let q = (n as f32 - p).max(1.0);
            (n as f32 / (2.0 * p), n as f32 / (2.0 * q))
        })
        .collect();
    let target: Vec<f32> = y
        .iter()
        .flat_map(|r| r.iter().map(|&b| if b { 1.0 } else { 0.0 }))
        .collect();
    let mut net = Net::new(d, opts.hidden, l, opts.seed);
    let mut adam = Adam::new(net.params_len(), opts.learning_rate);
    let mut grad = vec![0.0f32; net.params_len()];
    for epoch in 0..opts.epochs {
        grad.fill(0.0);
        net.gradient(&xs, n, &target, &weights, &mut grad);
        net.add_l2(opts.l2, &mut grad);
        adam.step(&mut net.params, &grad);
        progress(epoch + 1);
    }
    net.into_head(labels, mean, scale)
}

/// The out-of-fold scores of `k`-fold cross-validation: each clip scored by a head trained
/// without its fold. `progress` is called with each finished fold.
pub fn cross_validate(
    x: &[Vec<f32>],
    y: &[Vec<bool>],
    labels: &[String],
    opts: &TrainOptions,
    k: usize,
    progress: &mut dyn FnMut(usize),
) -> Vec<Vec<f32>> {
    let fold = folds(y, k);
    let mut out = vec![Vec::new(); x.len()];
    for f in 0..k {
        let train: Vec<usize> = (0..x.len()).filter(|&i| fold[i] != f).collect();
        let tx: Vec<Vec<f32>> = train.iter().map(|&i| x[i].clone()).collect();
        let ty: Vec<Vec<bool>> = train.iter().map(|&i| y[i].clone()).collect();
        let head = fit(&tx, &ty, labels, opts, &mut |_| {});
        for i in (0..x.len()).filter(|&i| fold[i] == f) {
            out[i] = head.scores(&x[i]);
        }
        progress(f + 1);
    }
    out
}

/// Each clip's fold: clips with the same label set are dealt round the folds in turn, so
/// every fold holds its share of each (stratified, deterministic).
pub fn folds(y: &[Vec<bool>], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..y.len()).collect();
    order.sort_by(|&a, &b| y[a].cmp(&y[b]).then(a.cmp(&b)));
    let mut fold = vec![0; y.len()];
    for (turn, &i) in order.iter().enumerate() {
        fold[i] = turn % k.max(1);
    }
    fold
}

/// The `on` threshold for one label from scores and truth: best F1, or with
/// `target_precision` the lowest threshold reaching it (the most recall), placed halfway to
/// the next lower score so that a clip like the last one taken is still taken; clamped to
/// [0.01, 0.99]. `None` when no threshold reaches the target (or there are no positives).
pub fn choose_threshold(
    truth: &[bool],
    scores: &[f32],
    target_precision: Option<f64>,
) -> Option<f32> {
    let s: Vec<f64> = scores.iter().map(|&v| f64::from(v)).collect();
    let t = match target_precision {
        None => metrics::best_f1(truth, &s)?.0,
        Some(p) => {
            let curve = metrics::pr_curve(truth, &s)?;
            // thresholds ascend; precision[i] belongs to thresholds[i]
            let i = (0..curve.thresholds.len()).find(|&i| curve.precision[i] >= p)?;
            if curve.recall[i] == 0.0 {
                return None;
            }
            curve.thresholds[i]
        }
    };
    let below = s
        .iter()
        .copied()
        .filter(|&v| v < t)
        .fold(f64::NAN, f64::max);
    let t = if below.is_nan() { t } else { (t + below) / 2.0 };
    Some((t as f32).clamp(0.01, 0.99))
}

/// Per-dimension mean and 1 / standard deviation (a constant dimension gets scale 1).
fn standardisation(x: &[Vec<f32>]) -> (Vec<f32>, Vec<f32>) {
    let d = x.first().map_or(0, Vec::len);
    let n = x.len().max(1) as f64;
    let mut mean = vec![0.0f64; d];
    for row in x {
        mean.iter_mut().zip(row).for_each(|(m, v)| *m += *v as f64);
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0.0f64; d];
    for row in x {
        var.iter_mut()
            .zip(row.iter().zip(&mean))
            .for_each(|(s, (v, m))| *s += (*v as f64 - m).powi(2));
    }
    let scale = var
        .iter()
        .map(|s| {
            let sd = (s / n).sqrt();
            if sd > 1e-6 {
                (1.0 / sd) as f32
            } else {
                1.0
            }
        })
        .collect();
    (mean.into_iter().map(|m| m as f32).collect(), scale)
}

/// The parameters as one flat vector: [hidden weights, hidden biases,] output weights,
/// output biases (row-major).
struct Net {
    d: usize,
    h: Option<usize>,
    l: usize,
    params: Vec<f32>,
}

impl Net {
    fn new(d: usize, h: Option<usize>, l: usize, seed: u64) -> Self {
        let mut net = Self {
            d,
            h,
            l,
            params: Vec::new(),
        };
        net.params = vec![0.0; net.params_len()];
        if let Some(h) = h {
            // Glorot-uniform hidden weights, deterministic; outputs start at zero
            let mut rng = crate::noise::Noise::new(seed);
            let a = (6.0 / (d + h) as f32).sqrt();
            for w in &mut net.params[..h * d] {
                *w = 2.0 * a * rng.uniform();
            }
            let (o, _) = net.output_range();
            let a = (6.0 / (h + l) as f32).sqrt();
            for w in &mut net.params[o..o + l * h] {
                *w = 2.0 * a * rng.uniform();
            }
        }
        net
    }

    fn inputs_of_output(&self) -> usize {
        self.h.unwrap_or(self.d)
    }

    fn params_len(&self) -> usize {
        let hidden = self.h.map_or(0, |h| h * self.d + h);
        hidden + self.l * self.inputs_of_output() + self.l
    }

    /// Where the output weights start, and the output biases.
    fn output_range(&self) -> (usize, usize) {
        let o = self.h.map_or(0, |h| h * self.d + h);
        (o, o + self.l * self.inputs_of_output())
    }

    /// Adds the mean weighted cross-entropy's gradient over the `n` clips of `xs` to `grad`.
    fn gradient(
        &self,
        xs: &[f32],
        n: usize,
        target: &[f32],
        weights: &[(f32, f32)],
        grad: &mut [f32],
    ) {
        let (d, l, k) = (self.d, self.l, self.inputs_of_output());
        let (o, ob) = self.output_range();
        let mut hidden = vec![0.0f32; k];
        let mut dh = vec![0.0f32; k];
        for i in 0..n {
            let x = &xs[i * d..(i + 1) * d];
            let input: &[f32] = match self.h {
                Some(h) => {
                    for (u, out) in hidden.iter_mut().enumerate().take(h) {
                        let w = &self.params[u * d..(u + 1) * d];
                        *out = (self.params[h * d + u] + dot(w, x)).max(0.0);
                    }
                    &hidden
                }
                None => x,
            };
            dh.fill(0.0);
            for j in 0..l {
                let w = &self.params[o + j * k..o + (j + 1) * k];
                let z = self.params[ob + j] + dot(w, input);
                let t = target[i * l + j];
                let cw = if t > 0.5 { weights[j].0 } else { weights[j].1 };
                let g = cw * (super::sigmoid(z) - t) / n as f32;
                axpy(g, input, &mut grad[o + j * k..o + (j + 1) * k]);
                grad[ob + j] += g;
                if self.h.is_some() {
                    axpy(g, w, &mut dh);
                }
            }
            if let Some(h) = self.h {
                for u in 0..h {
                    if hidden[u] > 0.0 {
                        axpy(dh[u], x, &mut grad[u * d..(u + 1) * d]);
                        grad[h * d + u] += dh[u];
                    }
                }
            }
        }
    }

    fn add_l2(&self, l2: f32, grad: &mut [f32]) {
        let (o, ob) = self.output_range();
        let hidden = 0..self.h.map_or(0, |h| h * self.d);
        for i in (o..ob).chain(hidden) {
            grad[i] += l2 * self.params[i];
        }
    }

    fn into_head(self, labels: &[String], mean: Vec<f32>, scale: Vec<f32>) -> Head {
        let (d, l, k) = (self.d, self.l, self.inputs_of_output());
        let p = &self.params;
        let dense = |w: usize, b: usize, rows: usize, cols: usize| Dense {
            weights: (0..rows)
                .map(|r| p[w + r * cols..w + (r + 1) * cols].to_vec())
                .collect(),
            bias: p[b..b + rows].to_vec(),
        };
        let hidden = self.h.map(|h| dense(0, h * d, h, d));
        let (o, ob) = self.output_range();
        Head {
            format: FORMAT,
            embedding_size: d,
            labels: labels.to_vec(),
            mean,
            scale,
            hidden,
            output: dense(o, ob, l, k),
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}

/// Adam (Kingma & Ba) with the usual β1 0.9, β2 0.999, ε 1e-8.
struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
    lr: f32,
}

impl Adam {
    fn new(len: usize, lr: f32) -> Self {
        Self {
            m: vec![0.0; len],
            v: vec![0.0; len],
            t: 0,
            lr,
        }
    }

    fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        self.t += 1;
        let c1 = 1.0 - B1.powi(self.t);
        let c2 = 1.0 - B2.powi(self.t);
        for i in 0..params.len() {
            self.m[i] = B1 * self.m[i] + (1.0 - B1) * grad[i];
            self.v[i] = B2 * self.v[i] + (1.0 - B2) * grad[i] * grad[i];
            params[i] -= self.lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + 1e-8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two labels on 2-D points: A when x > 0, B when y > 0.5 (a corner of the plane).
    fn data(n: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<Vec<bool>>) {
        let mut rng = crate::noise::Noise::new(seed);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let p = vec![rng.uniform() * 2.0, rng.uniform() * 2.0 + 3.0];
            y.push(vec![p[0] > 0.0, p[1] > 3.5]);
            x.push(p);
        }
        (x, y)
    }

    #[test]
    fn a_separable_problem_is_learned_and_held_out_clips_are_right() {
        let labels = vec!["A".to_owned(), "B".to_owned()];
        let (x, y) = data(200, 3);
        let head = fit(&x, &y, &labels, &TrainOptions::default(), &mut |_| {});
        let (tx, ty) = data(100, 4);
        let right = tx
            .iter()
            .zip(&ty)
            .flat_map(|(x, y)| {
                let s = head.scores(x);
                vec![(s[0] >= 0.5) == y[0], (s[1] >= 0.5) == y[1]]
            })
            .filter(|&ok| ok)
            .count();
        // class balancing moves the 0.5 boundary of the minority label (B, a quarter of the
        // clips) a little into the negatives; the ranking stays all but perfect
        for (l, name) in labels.iter().enumerate() {
            let truth: Vec<bool> = ty.iter().map(|y| y[l]).collect();
            let s: Vec<f64> = tx.iter().map(|x| f64::from(head.scores(x)[l])).collect();
            let ap = metrics::average_precision(&truth, &s).expect("positives");
            assert!(ap > 0.98, "{name}: held-out AP {ap}");
        }
        assert!(right >= 185, "{right} of 200 decisions right");
        let hidden = TrainOptions {
            hidden: Some(8),
            ..TrainOptions::default()
        };
        let h2 = fit(&x, &y, &labels, &hidden, &mut |_| {});
        assert!(h2.check(2).is_ok());
        let s = h2.scores(&[1.5, 4.5]);
        assert!(s[0] > 0.5 && s[1] > 0.5, "{s:?}");
        let s = h2.scores(&[-1.5, 3.1]);
        assert!(s[0] < 0.5 && s[1] < 0.5, "{s:?}");
        // deterministic: the same data and options give the same head
        assert_eq!(fit(&x, &y, &labels, &hidden, &mut |_| {}), h2);
    }

    #[test]
    fn folds_deal_each_label_set_round_and_cross_validation_scores_every_clip() {
        let y: Vec<Vec<bool>> = (0..10).map(|i| vec![i % 2 == 0]).collect();
        let f = folds(&y, 5);
        for k in 0..5 {
            let in_fold: Vec<_> = (0..10).filter(|&i| f[i] == k).collect();
            assert_eq!(in_fold.len(), 2);
            assert_eq!(in_fold.iter().filter(|&&i| y[i][0]).count(), 1, "{f:?}");
        }
        let (x, y) = data(50, 5);
        let labels = vec!["A".to_owned(), "B".to_owned()];
        let oof = cross_validate(&x, &y, &labels, &TrainOptions::default(), 5, &mut |_| {});
        assert!(oof.iter().all(|s| s.len() == 2));
    }

    #[test]
    fn thresholds_sit_between_the_scores_and_bad_data_is_named() {
        let truth = [true, true, false, false];
        let t = choose_threshold(&truth, &[0.9, 0.6, 0.4, 0.1], None).expect("positives");
        assert!((t - 0.5).abs() < 1e-6, "{t}");
        // precision 1 needs 0.9 alone here
        let t = choose_threshold(&truth, &[0.9, 0.3, 0.4, 0.1], Some(1.0)).expect("reachable");
        assert!((t - 0.65).abs() < 1e-6, "{t}");
        assert_eq!(choose_threshold(&[false, false], &[0.2, 0.3], None), None);
        let labels = vec!["A".to_owned()];
        let e = check_data(&[vec![true], vec![true], vec![true]], &labels, 2).expect_err("one");
        assert!(e.contains("every clip has it"), "{e}");
        let e = check_data(&[vec![true], vec![false], vec![false]], &labels, 2).expect_err("few");
        assert!(e.contains("1 clips, fewer than the 2 folds"), "{e}");
        let e = check_data(&[vec![true]], &labels, 5).expect_err("too few");
        assert!(e.contains("too few for 5-fold"), "{e}");
    }
}
