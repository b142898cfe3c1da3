//! A classifier head on a model's embedding: a small network trained on a user's clips
//! (`soundsentry train-head`), stored as `head.json` in a model folder and run on the
//! embedding of every window, in the same inference call as the base model's scores.

pub mod train;

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The format version `head.json` is written in.
pub const FORMAT: u32 = 1;

/// One dense layer: `out[i] = bias[i] + Σ_j weights[i][j] · in[j]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dense {
    /// One row of input weights per output.
    pub weights: Vec<Vec<f32>>,
    /// One bias per output.
    pub bias: Vec<f32>,
}

impl Dense {
    /// A layer of `outputs` × `inputs` zeros.
    pub fn zeros(outputs: usize, inputs: usize) -> Self {
        Self {
            weights: vec![vec![0.0; inputs]; outputs],
            bias: vec![0.0; outputs],
        }
    }

    /// Inputs a row takes.
    pub fn inputs(&self) -> usize {
        self.weights.first().map_or(0, Vec::len)
    }

    /// Outputs.
    pub fn outputs(&self) -> usize {
        self.bias.len()
    }

    /// The layer's outputs for `x` (before any activation).
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        self.weights
            .iter()
            .zip(&self.bias)
            .map(|(w, b)| b + w.iter().zip(x).map(|(w, x)| w * x).sum::<f32>())
            .collect()
    }

    fn check(&self, what: &str, inputs: usize) -> Result<(), String> {
        if self.weights.len() != self.bias.len() {
            return Err(format!(
                "{what}: {} weight rows but {} biases",
                self.weights.len(),
                self.bias.len()
            ));
        }
        if let Some(i) = self.weights.iter().position(|r| r.len() != inputs) {
            return Err(format!(
                "{what}: row {i} has {} weights, expected {inputs}",
                self.weights[i].len()
            ));
        }
        let finite = self
            .weights
            .iter()
            .flatten()
            .chain(&self.bias)
            .all(|v| v.is_finite());
        if !finite {
            return Err(format!("{what}: a weight is not a finite number"));
        }
        Ok(())
    }
}

/// A trained head: standardisation of the embedding, an optional hidden layer (ReLU), and
/// one logistic output per label (sigmoid scores).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// [`FORMAT`].
    pub format: u32,
    /// The embedding length the head reads.
    pub embedding_size: usize,
    /// The head's labels, in output order.
    pub labels: Vec<String>,
    /// Subtracted from each embedding value before the first layer.
    pub mean: Vec<f32>,
    /// Each centred value is multiplied by this.
    pub scale: Vec<f32>,
    /// The hidden layer, if the head has one.
    pub hidden: Option<Dense>,
    /// The output layer: one logit per label.
    pub output: Dense,
}

impl Head {
    /// Reads and checks `head.json` for an embedding of `embedding_size` values.
    pub fn load(path: &Path, embedding_size: usize) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let head: Head = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        head.check(embedding_size)?;
        Ok(head)
    }

    /// Writes the head as JSON.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text)
    }

    /// Whether every shape fits an embedding of `embedding_size` values.
    pub fn check(&self, embedding_size: usize) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "format {} is not known (this soundsentry reads format {FORMAT})",
                self.format
            ));
        }
        if self.embedding_size != embedding_size {
            return Err(format!(
                "made for embeddings of {} values, the model gives {embedding_size}",
                self.embedding_size
            ));
        }
        if self.mean.len() != embedding_size || self.scale.len() != embedding_size {
            return Err(format!(
                "mean and scale must have {embedding_size} values (have {} and {})",
                self.mean.len(),
                self.scale.len()
            ));
        }
        if !self.mean.iter().chain(&self.scale).all(|v| v.is_finite()) {
            return Err("mean or scale holds a value that is not a finite number".into());
        }
        let inputs = match &self.hidden {
            Some(h) => {
                h.check("hidden", embedding_size)?;
                h.outputs()
            }
            None => embedding_size,
        };
        self.output.check("output", inputs)?;
        if self.output.outputs() != self.labels.len() || self.labels.is_empty() {
            return Err(format!(
                "{} labels but {} outputs",
                self.labels.len(),
                self.output.outputs()
            ));
        }
        Ok(())
    }

    /// The standardised embedding the first layer reads.
    pub fn standardise(&self, embedding: &[f32]) -> Vec<f32> {
        embedding
            .iter()
            .zip(self.mean.iter().zip(&self.scale))
            .map(|(x, (m, s))| (x - m) * s)
            .collect()
    }

    /// One score in (0, 1) per label for an embedding.
    pub fn scores(&self, embedding: &[f32]) -> Vec<f32> {
        let mut x = self.standardise(embedding);
        if let Some(h) = &self.hidden {
            x = relu(h.forward(&x));
        }
        self.output.forward(&x).into_iter().map(sigmoid).collect()
    }
}

/// max(0, x) for each value.
pub fn relu(mut x: Vec<f32>) -> Vec<f32> {
    x.iter_mut().for_each(|v| *v = v.max(0.0));
    x
}

/// The logistic function.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Head {
        Head {
            format: FORMAT,
            embedding_size: 2,
            labels: vec!["A".into()],
            mean: vec![1.0, 0.0],
            scale: vec![0.5, 1.0],
            hidden: None,
            output: Dense {
                weights: vec![vec![2.0, -1.0]],
                bias: vec![0.5],
            },
        }
    }

    #[test]
    fn scores_standardise_then_apply_the_layers() {
        let h = tiny();
        // (3-1)*0.5 = 1, (2-0)*1 = 2 → 0.5 + 2*1 - 1*2 = 0.5
        assert!((h.scores(&[3.0, 2.0])[0] - sigmoid(0.5)).abs() < 1e-7);
        let mut h2 = tiny();
        h2.hidden = Some(Dense {
            weights: vec![vec![1.0, 0.0], vec![0.0, -1.0]],
            bias: vec![0.0, 0.0],
        });
        // hidden: relu([1, -2]) = [1, 0] → 0.5 + 2 = 2.5
        assert!((h2.scores(&[3.0, 2.0])[0] - sigmoid(2.5)).abs() < 1e-7);
    }

    #[test]
    fn shapes_that_do_not_fit_are_refused_with_the_reason() {
        let h = tiny();
        assert!(h.check(2).is_ok());
        let e = h.check(3).expect_err("refused");
        assert!(e.contains("embeddings of 2 values"), "{e}");
        let mut bad = tiny();
        bad.output.weights[0].push(1.0);
        let e = bad.check(2).expect_err("refused");
        assert!(e.contains("row 0 has 3 weights"), "{e}");
        let mut nan = tiny();
        nan.output.bias[0] = f32::NAN;
        assert!(nan.check(2).expect_err("refused").contains("finite"));
        let mut labels = tiny();
        labels.labels.push("B".into());
        assert!(labels.check(2).expect_err("refused").contains("2 labels"));
    }
}
