//! Detection: turns per-window scores into start / update / end events per watched label.

mod detector;
mod event;

pub use detector::{Detector, Schedule, Watch, WatchSettings};
pub use event::{Event, EventKind, EventStamp, EventState, LimitInfo};
