//! Rolling window over fbank frames: a contiguous view of the last N frames, never recomputed.

/// Keeps the most recent `capacity` frames contiguous in memory.
///
/// Frames are appended at the end; when the buffer reaches twice the capacity the oldest
/// frames are dropped in one move, so appends are amortised O(1) and a window is a slice.
pub struct FrameWindow {
    bins: usize,
    capacity: usize,
    data: Vec<f32>,
    total: u64,
}

impl FrameWindow {
    /// A window of up to `capacity` frames of `bins` values each.
    pub fn new(capacity: usize, bins: usize) -> Self {
        Self {
            bins,
            capacity,
            data: Vec::with_capacity(2 * capacity * bins),
            total: 0,
        }
    }

    /// Appends whole frames (row-major).
    pub fn push(&mut self, frames: &[f32]) {
        debug_assert_eq!(frames.len() % self.bins, 0);
        let mut rest = frames;
        while !rest.is_empty() {
            let room = 2 * self.capacity * self.bins - self.data.len();
            if room == 0 {
                let keep_from = self.data.len() - self.capacity * self.bins;
                self.data.drain(..keep_from);
                continue;
            }
            let take = room.min(rest.len());
            self.data.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        self.total += (frames.len() / self.bins) as u64;
    }

    /// The last `min(len, capacity)` frames and how many there are.
    pub fn latest(&self) -> (&[f32], usize) {
        let n = self.len();
        (&self.data[self.data.len() - n * self.bins..], n)
    }

    /// Frames currently available (at most the capacity).
    pub fn len(&self) -> usize {
        (self.data.len() / self.bins).min(self.capacity)
    }

    /// Whether no frame has arrived yet.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Frames pushed since creation.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_frames_in_order() {
        let mut w = FrameWindow::new(3, 2);
        for i in 0..10 {
            w.push(&[i as f32, -(i as f32)]);
            let (view, n) = w.latest();
            assert_eq!(n, (i + 1).min(3));
            let first = (i + 1 - n) as f32;
            assert_eq!(view[0], first);
            assert_eq!(view[view.len() - 2], i as f32);
        }
        assert_eq!(w.total(), 10);
    }

    #[test]
    fn large_pushes_keep_only_the_tail() {
        let mut w = FrameWindow::new(4, 1);
        let frames: Vec<f32> = (0..19).map(|i| i as f32).collect();
        w.push(&frames);
        assert_eq!(w.latest().0, &[15.0, 16.0, 17.0, 18.0]);
    }
}
