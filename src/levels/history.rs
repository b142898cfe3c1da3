//! The recent A-weighted 125 ms levels, shared with the inference thread so that sound events
//! can carry the LAeq measured while they lasted.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::meter::{to_db, Block, BLOCKS_PER_S};

/// Blocks kept: 12 hours (1.4 MB). An event longer than that gets the LAeq of its last 12 h.
pub const HISTORY_BLOCKS: usize = 12 * 3600 * BLOCKS_PER_S as usize;

/// A ring of block mean squares, indexed by block number.
#[derive(Debug)]
pub struct History {
    inner: Mutex<Ring>,
    offset: f64,
    /// Length of block 0 when shorter than 125 ms (see [`super::Meter::with_phase`]), else 0.
    phase: f64,
}

#[derive(Debug, Default)]
struct Ring {
    first: u64,
    a: VecDeque<f32>,
}

impl History {
    /// An empty history; `offset` is the calibration added to reported levels, `phase` the
    /// meter's.
    pub fn new(offset: f64, phase: f64) -> Self {
        Self {
            inner: Mutex::new(Ring::default()),
            offset,
            phase,
        }
    }

    /// Where block `k` starts, in stream seconds.
    fn start(&self, k: u64) -> f64 {
        let shift = if self.phase > 0.0 {
            0.125 - self.phase
        } else {
            0.0
        };
        (k as f64 / f64::from(BLOCKS_PER_S) - shift).max(0.0)
    }

    /// Records a block.
    pub fn push(&self, b: &Block) {
        let mut r = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if r.a.is_empty() {
            r.first = b.index;
        }
        if r.a.len() == HISTORY_BLOCKS {
            r.a.pop_front();
            r.first += 1;
        }
        r.a.push_back(b.a as f32);
    }

    /// LAeq in dB over [from_s, to_s] (seconds from the stream start), from the blocks that
    /// overlap it, each weighted by its overlap; `None` when no block overlaps.
    ///
    /// Only blocks that end by `to_s` count: the block under way at `to_s` may or may not
    /// have been recorded when the inference thread asks (it runs behind the audio by however
    /// long the model takes), so counting it would make an event's LAeq depend on timing. A
    /// span shorter than what is left gets the last whole block before `to_s`.
    pub fn laeq(&self, from_s: f64, to_s: f64) -> Option<f64> {
        let r = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let per = f64::from(BLOCKS_PER_S);
        let shift = if self.phase > 0.0 {
            0.125 - self.phase
        } else {
            0.0
        };
        // Blocks 0..end have ended by `to_s` (a microsecond's slack for the sums of offsets).
        let end = ((to_s + shift) * per + 1e-6).floor().max(0.0) as u64;
        if end == 0 {
            return None;
        }
        let to_s = self.start(end);
        let from_s = from_s.min(self.start(end - 1));
        let lo = (((from_s + shift) * per).floor().max(0.0) as u64).max(r.first);
        let hi = end.min(r.first + r.a.len() as u64);
        let (mut energy, mut seconds) = (0.0, 0.0);
        for k in lo..hi {
            let (s, e) = (self.start(k), self.start(k + 1));
            let overlap = e.min(to_s) - s.max(from_s);
            if overlap > 0.0 {
                energy += f64::from(r.a[(k - r.first) as usize]) * overlap;
                seconds += overlap;
            }
        }
        (seconds > 0.0).then(|| (to_db(energy / seconds, self.offset) * 10.0).round() / 10.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(index: u64, a: f64) -> Block {
        Block {
            index,
            start_s: index as f64 / 8.0,
            seconds: 0.125,
            a,
            c: a,
            z: a,
            af_max: a,
            af_min: Some(a),
            as_max: a,
            bands: None,
        }
    }

    #[test]
    fn laeq_weights_blocks_by_overlap() {
        let h = History::new(0.0, 0.0);
        for k in 0..16 {
            h.push(&block(k, if k < 8 { 0.5 } else { 0.005 }));
        }
        assert_eq!(h.laeq(0.0, 1.0), Some(0.0));
        assert_eq!(h.laeq(1.0, 2.0), Some(-20.0));
        // Half a second of each: 10·log10((0.5 + 0.005) / 2 / 0.5) = −2.97 dB.
        assert_eq!(h.laeq(0.5, 1.5), Some(-3.0));
        assert_eq!(h.laeq(5.0, 6.0), None);
        // With a 50 ms first block, block 8 spans 0.925–1.05 s.
        let h = History::new(0.0, 0.05);
        for k in 0..16 {
            h.push(&block(k, if k < 8 { 0.5 } else { 0.005 }));
        }
        assert_eq!(h.laeq(0.0, 0.925), Some(0.0));
        assert_eq!(h.laeq(0.925, 1.05), Some(-20.0));
    }

    #[test]
    fn the_block_under_way_never_counts_so_timing_cannot_change_a_figure() {
        // Blocks 0–7 at 0 dB, block 8 (1.0–1.125 s) at −20 dB: an event asking up to 1.06 s
        // gets the same figure whether block 8 was recorded yet or not.
        let early = History::new(0.0, 0.0);
        let late = History::new(0.0, 0.0);
        for k in 0..8 {
            early.push(&block(k, 0.5));
            late.push(&block(k, 0.5));
        }
        late.push(&block(8, 0.005));
        for (from, to) in [(0.0, 1.06), (0.5, 1.1), (1.01, 1.06)] {
            assert_eq!(early.laeq(from, to), late.laeq(from, to), "{from}–{to}");
        }
        assert_eq!(late.laeq(0.0, 1.06), Some(0.0));
        // shorter than a block, inside block 8: the last whole block, 7
        assert_eq!(late.laeq(1.01, 1.06), Some(0.0));
        // once block 8 has ended it counts
        assert_eq!(late.laeq(1.0, 1.125), Some(-20.0));
        assert_eq!(late.laeq(0.0, 0.1), None, "no block has ended by 0.1 s");
    }
}
