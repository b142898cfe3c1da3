//! Detection: turns per-window scores into start / update / end events per watched label.

mod detector;
mod event;

pub use detector::{Detector, Watch, WatchSettings};
pub use event::{rfc3339, round3, Event, EventKind, EventStamp, EventState, LimitInfo};
