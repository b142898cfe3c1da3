//! `model.toml`: the manifest that tells the pipeline how to feed a model.

use std::path::Path;

use serde::Deserialize;

use super::error::ModelError;
use crate::features::{FbankConfig, WindowKind};

/// What the model's outputs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Logits: apply a sigmoid (AST; multi-label, never softmax).
    Sigmoid,
    /// Already probabilities (BEATs).
    None,
}

/// Log-mel normalisation: `(x - mean) / (std_factor * std)`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    /// Dataset mean of the log-mel values.
    pub mean: f32,
    /// Dataset standard deviation.
    pub std: f32,
    /// Both AST and BEATs divide by twice the std.
    #[serde(default = "default_std_factor")]
    pub std_factor: f32,
}

fn default_std_factor() -> f32 {
    2.0
}

/// The `[fbank]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FbankSpec {
    /// "hanning" (AST) or "povey" (BEATs).
    pub window: WindowKind,
    /// 1.0 (AST) or 32768.0 (BEATs).
    pub waveform_scale: f32,
    /// Mel bins, 128 for both.
    pub mel_bins: usize,
    /// Frame length, ms.
    #[serde(default = "default_frame_length")]
    pub frame_length_ms: f32,
    /// Frame shift, ms.
    #[serde(default = "default_frame_shift")]
    pub frame_shift_ms: f32,
}

fn default_frame_length() -> f32 {
    25.0
}
fn default_frame_shift() -> f32 {
    10.0
}

/// What kind of input the graph takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    /// Normalised log-mel frames, shape (1, frames, mel_bins).
    Fbank,
    /// Samples at `sample_rate`, shape (1, samples): BirdNET, YAMNet, PANNs.
    Waveform,
}

/// The `[waveform]` table of a waveform-input model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaveformSpec {
    /// Samples a window holds (BirdNET: 144000, 3 s at 48 kHz).
    pub window_samples: usize,
    /// Each sample (full scale ±1) is multiplied by this before the model: 1.0, or 32768.0
    /// for a model trained on 16-bit integer values.
    #[serde(default = "one_f32")]
    pub scale: f32,
    /// The step the analysis moves in, samples: windows and hops are whole numbers of it.
    /// Absent: the largest divisor of `window_samples` not above 10 ms.
    #[serde(default)]
    pub block_samples: Option<usize>,
}

fn one_f32() -> f32 {
    1.0
}

/// A validated `model.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Model name, reported in events.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// ONNX file, relative to the folder.
    pub onnx: String,
    /// Labels CSV, relative to the folder.
    pub labels: String,
    /// Input kind.
    pub input: InputKind,
    /// Sample rate the model expects, Hz.
    pub sample_rate: u32,
    /// Frames per window fed to the model. For a waveform model it is not given: it is
    /// `window_samples / block_samples`, a "frame" being a block of samples.
    #[serde(default)]
    pub window_frames: usize,
    /// Whether the graph accepts any number of frames. Such a model is fed the frames a
    /// window has (at stream start, at the end of a file), never padding.
    #[serde(default)]
    pub dynamic_frames: bool,
    /// With `dynamic_frames`: the frame counts the model sees are multiples of this (BEATs'
    /// 16-frame patches: the frames past the last whole patch do not change its output, so
    /// they are left out and fewer shapes are optimised). 1 when absent.
    #[serde(default = "one")]
    pub frame_multiple: usize,
    /// Output activation.
    pub output: Activation,
    /// With `output = "sigmoid"`: the logits are multiplied by this first (BirdNET's
    /// sensitivity, 0.5–1.5; 1.0 when absent).
    #[serde(default)]
    pub sensitivity: Option<f32>,
    /// With `output = "sigmoid"`: the logits are clipped to ±this first (BirdNET: 15).
    #[serde(default)]
    pub logit_clip: Option<f32>,
    /// Optional cross-check of the labels count.
    #[serde(default)]
    pub num_labels: Option<usize>,
    /// Whether the ONNX file is quantised.
    #[serde(default)]
    pub quantized: bool,
    /// The graph output holding the model's embedding (the representation its classifier
    /// reads), by name; the scores are the first output. Absent in folders exported before
    /// embeddings were (`soundsentry embed` then says how to re-export).
    #[serde(default)]
    pub embedding: Option<String>,
    /// The embedding's length, checked against the graph at load.
    #[serde(default)]
    pub embedding_size: Option<usize>,
    /// Fbank parameters (`input = "fbank"`).
    #[serde(default)]
    pub fbank: Option<FbankSpec>,
    /// Normalisation (`input = "fbank"`).
    #[serde(default)]
    pub normalize: Option<Normalize>,
    /// Window and scale (`input = "waveform"`).
    #[serde(default)]
    pub waveform: Option<WaveformSpec>,
    /// The model's own `on` score per label (`[thresholds]`, display name = score), chosen
    /// where it was trained; a label without one uses the configuration's `on`.
    #[serde(default)]
    pub thresholds: std::collections::BTreeMap<String, f32>,
    /// A head trained on the embedding (`soundsentry train-head`), when the folder has one.
    #[serde(default)]
    pub head: Option<HeadSpec>,
}

/// `[head]`: a classifier on the embedding, run in the same inference call; the folder's
/// `labels` are then the head's (after the base model's with `keep_base_labels`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadSpec {
    /// The head's weights (`head.json`), relative to the folder.
    pub file: String,
    /// The base model's labels CSV: one label per graph output.
    pub base_labels: String,
    /// Whether the base model's labels come first among the folder's labels.
    #[serde(default)]
    pub keep_base_labels: bool,
}

impl Manifest {
    /// Reads and validates a manifest file.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|error| ModelError::Io {
            path: path.to_owned(),
            error,
        })?;
        let err = |msg: String| ModelError::Manifest {
            path: path.to_owned(),
            msg,
        };
        let mut m: Manifest = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        let mut problems = m.check_input();
        if m.window_frames == 0 && problems.is_empty() {
            problems.push("window_frames must be > 0".to_owned());
        }
        if m.frame_multiple == 0 || m.frame_multiple > m.window_frames.max(1) {
            problems.push(format!(
                "frame_multiple must lie in 1..={} (window_frames)",
                m.window_frames
            ));
        }
        if let Some(s) = m.sensitivity.filter(|s| !(s.is_finite() && *s > 0.0)) {
            problems.push(format!("sensitivity = {s} must be > 0"));
        }
        if let Some(c) = m.logit_clip.filter(|c| !(c.is_finite() && *c > 0.0)) {
            problems.push(format!("logit_clip = {c} must be > 0"));
        }
        if m.output != Activation::Sigmoid && (m.sensitivity.is_some() || m.logit_clip.is_some()) {
            problems
                .push("sensitivity and logit_clip apply to output = \"sigmoid\" only".to_owned());
        }
        match (&m.embedding, m.embedding_size) {
            (Some(name), Some(n)) if !name.is_empty() && n > 0 => {}
            (None, None) => {}
            (Some(_), Some(0)) => problems.push("embedding_size must be > 0".to_owned()),
            (Some(name), Some(_)) if name.is_empty() => {
                problems.push("embedding must name a graph output".to_owned())
            }
            _ => problems.push("embedding and embedding_size go together".to_owned()),
        }
        if m.head.is_some() && m.embedding.is_none() {
            problems.push("[head] needs the embedding output it reads (embedding)".to_owned());
        }
        for (label, t) in &m.thresholds {
            if !(t.is_finite() && *t > 0.0 && *t < 1.0) {
                problems.push(format!(
                    "thresholds.{label:?} = {t} must lie strictly between 0 and 1"
                ));
            }
        }
        if let Some(Err(e)) = m.fbank_config().map(|c| crate::features::Fbank::new(&c)) {
            problems.push(format!("fbank: {e}"));
        }
        if problems.is_empty() {
            Ok(m)
        } else {
            Err(err(problems.join("; ")))
        }
    }

    /// How many frames the model is fed for a window of `frames` frames: `window_frames` for
    /// a fixed-input model (padded or cut) and for a full window; for a shorter window of a
    /// `dynamic_frames` model, the frames there are rounded down to a multiple of
    /// `frame_multiple`, and at least one multiple (a window shorter than that is padded).
    pub fn frames_fed(&self, frames: usize) -> usize {
        if !self.dynamic_frames || frames >= self.window_frames {
            return self.window_frames;
        }
        let m = self.frame_multiple.max(1);
        (frames / m * m).max(m).min(self.window_frames)
    }

    /// How many frames a stretch of audio `d` long advances by: `d` in frame shifts
    /// (`fbank.frame_shift_ms`, or a waveform model's block), rounded, at least one (the
    /// analysis hop in frames).
    pub fn frames_in(&self, d: std::time::Duration) -> usize {
        ((d.as_secs_f64() / self.frame_shift_s()).round() as usize).max(1)
    }

    /// Seconds between the starts of two frames (a waveform model's block).
    pub fn frame_shift_s(&self) -> f64 {
        match (&self.fbank, &self.waveform) {
            (Some(f), _) => f64::from(f.frame_shift_ms) / 1000.0,
            (None, w) => {
                let block = w.as_ref().map_or(1, |w| block_of(w, self.sample_rate));
                block as f64 / f64::from(self.sample_rate)
            }
        }
    }

    /// Seconds of audio one window covers (fbank frames' shifts, or samples).
    pub fn window_s(&self) -> f64 {
        self.window_frames as f64 * self.frame_shift_s()
    }

    /// Values a frame holds: mel bins, or a waveform model's block of samples.
    pub fn frame_bins(&self) -> usize {
        match (&self.fbank, &self.waveform) {
            (Some(f), _) => f.mel_bins,
            (None, w) => w.as_ref().map_or(1, |w| block_of(w, self.sample_rate)),
        }
    }

    /// The fbank stage configuration this model needs; `None` for a waveform model.
    pub fn fbank_config(&self) -> Option<FbankConfig> {
        let f = self.fbank.as_ref()?;
        Some(FbankConfig {
            sample_rate: self.sample_rate,
            window: f.window,
            waveform_scale: f.waveform_scale,
            mel_bins: f.mel_bins,
            frame_length_ms: f.frame_length_ms,
            frame_shift_ms: f.frame_shift_ms,
            low_freq: 20.0,
            high_freq: 0.0,
        })
    }

    /// The tables the input kind needs, and none it does not; fills a waveform model's
    /// `window_frames` in blocks.
    fn check_input(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        match self.input {
            InputKind::Fbank => {
                match &self.normalize {
                    None => problems.push("input = \"fbank\" needs [normalize]".to_owned()),
                    Some(n) if n.std * n.std_factor <= 0.0 => {
                        problems.push("normalize.std and std_factor must be > 0".to_owned())
                    }
                    Some(_) => {}
                }
                match &self.fbank {
                    None => problems.push("input = \"fbank\" needs [fbank]".to_owned()),
                    Some(f) if f.mel_bins == 0 => {
                        problems.push("fbank.mel_bins must be > 0".to_owned())
                    }
                    Some(_) => {}
                }
                if self.waveform.is_some() {
                    problems.push("[waveform] is for input = \"waveform\"".to_owned());
                }
            }
            InputKind::Waveform => {
                if self.fbank.is_some() || self.normalize.is_some() {
                    problems.push(
                        "[fbank] and [normalize] are for input = \"fbank\"; a waveform model \
                         has [waveform]"
                            .to_owned(),
                    );
                }
                if self.window_frames != 0 {
                    problems.push(
                        "a waveform model gives waveform.window_samples, not window_frames"
                            .to_owned(),
                    );
                }
                match &self.waveform {
                    None => problems.push("input = \"waveform\" needs [waveform]".to_owned()),
                    Some(w) => match self.check_waveform(w) {
                        Some(problem) => problems.push(problem),
                        None => {
                            self.window_frames = w.window_samples / block_of(w, self.sample_rate)
                        }
                    },
                }
            }
        }
        problems
    }

    fn check_waveform(&self, w: &WaveformSpec) -> Option<String> {
        if w.window_samples == 0 {
            return Some("waveform.window_samples must be > 0".to_owned());
        }
        if !(w.scale.is_finite() && w.scale > 0.0) {
            return Some(format!("waveform.scale = {} must be > 0", w.scale));
        }
        if self.sample_rate == 0 {
            return Some("sample_rate must be > 0".to_owned());
        }
        let block = block_of(w, self.sample_rate);
        if block == 0 || !w.window_samples.is_multiple_of(block) {
            return Some(format!(
                "waveform.block_samples = {block} must divide window_samples = {}",
                w.window_samples
            ));
        }
        None
    }
}

fn one() -> usize {
    1
}

/// A waveform model's block: `block_samples`, or the largest divisor of the window not above
/// 10 ms at the model's rate (at least one sample).
fn block_of(w: &WaveformSpec, sample_rate: u32) -> usize {
    w.block_samples.unwrap_or_else(|| {
        let most = (sample_rate as usize / 100).max(1);
        (1..=most)
            .rev()
            .find(|b| w.window_samples.is_multiple_of(*b))
            .unwrap_or(1)
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    fn manifest(shift_ms: f32) -> super::Manifest {
        let text = format!(
            "name = \"m\"\nonnx = \"m.onnx\"\nlabels = \"l.csv\"\ninput = \"fbank\"\n\
             sample_rate = 16000\nwindow_frames = 128\noutput = \"sigmoid\"\n\
             [fbank]\nwindow = \"hanning\"\nwaveform_scale = 1.0\nmel_bins = 128\nframe_shift_ms = {shift_ms}\n\
             [normalize]\nmean = 0.0\nstd = 0.5\n"
        );
        toml::from_str(&text).expect("manifest")
    }

    #[test]
    fn an_embedding_needs_its_size() {
        let dir = std::env::temp_dir().join(format!("soundsentry-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("test setup");
        let base = "name = \"m\"\nonnx = \"m.onnx\"\nlabels = \"l.csv\"\ninput = \"fbank\"\n\
             sample_rate = 16000\nwindow_frames = 128\noutput = \"sigmoid\"\n";
        let tail = "[fbank]\nwindow = \"hanning\"\nwaveform_scale = 1.0\nmel_bins = 128\n\
             [normalize]\nmean = 0.0\nstd = 0.5\n";
        let load = |extra: &str| {
            let path = dir.join("model.toml");
            std::fs::write(&path, format!("{base}{extra}{tail}")).expect("test setup");
            super::Manifest::load(&path)
        };
        let m = load("embedding = \"embedding\"\nembedding_size = 192\n").expect("valid");
        assert_eq!(m.embedding.as_deref(), Some("embedding"));
        assert_eq!(m.embedding_size, Some(192));
        assert_eq!(load("").expect("valid").embedding, None);
        for (extra, want) in [
            ("embedding = \"embedding\"\n", "go together"),
            ("embedding_size = 8\n", "go together"),
            (
                "embedding = \"e\"\nembedding_size = 0\n",
                "embedding_size must be > 0",
            ),
            (
                "embedding = \"\"\nembedding_size = 8\n",
                "must name a graph output",
            ),
        ] {
            let err = load(extra).expect_err("refused").to_string();
            assert!(err.contains(want), "{extra}: {err}");
        }
        std::fs::remove_dir_all(&dir).expect("test setup");
    }

    #[test]
    fn a_waveform_block_is_the_largest_divisor_of_the_window_up_to_10_ms() {
        let w = |window_samples, block_samples| super::WaveformSpec {
            window_samples,
            scale: 1.0,
            block_samples,
        };
        assert_eq!(super::block_of(&w(144_000, None), 48_000), 480); // BirdNET: 10 ms
        assert_eq!(super::block_of(&w(15_600, None), 16_000), 156); // YAMNet: 9.75 ms
        assert_eq!(super::block_of(&w(16_001, None), 16_000), 1); // a prime: samples
        assert_eq!(super::block_of(&w(16_000, Some(320)), 16_000), 320);
    }

    #[test]
    fn the_hop_in_frames_follows_the_frame_shift() {
        assert_eq!(manifest(10.0).frames_in(Duration::from_millis(500)), 50);
        assert_eq!(manifest(20.0).frames_in(Duration::from_millis(500)), 25);
        assert_eq!(manifest(12.5).frames_in(Duration::from_secs(1)), 80);
        // Never less than one frame a hop.
        assert_eq!(manifest(20.0).frames_in(Duration::from_millis(5)), 1);
    }
}
