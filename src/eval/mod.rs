//! Evaluation of a model on labelled clips: the metrics, as scikit-learn defines them, and
//! the report of the `eval` command.

pub mod metrics;
pub mod page;
pub mod report;
