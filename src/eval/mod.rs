//! Evaluation of a model on labelled clips: the metrics, as scikit-learn defines them.

pub mod metrics;
