//! Blocks of samples: a waveform model's "frames", so its windows move as fbank windows do.

/// Cuts a stream of samples into consecutive blocks of `block` samples (no overlap), keeping
/// the samples of an unfinished block for the next call.
#[derive(Debug, Clone)]
pub struct Blocks {
    block: usize,
    sample_rate: u32,
    pending: Vec<f32>,
}

impl Blocks {
    /// Blocks of `block` samples (at least one) of audio at `sample_rate` Hz.
    pub fn new(block: usize, sample_rate: u32) -> Self {
        let block = block.max(1);
        Self {
            block,
            sample_rate,
            pending: Vec::with_capacity(block),
        }
    }

    /// Appends the blocks `samples` complete to `out` and returns how many.
    pub fn process(&mut self, samples: &[f32], out: &mut Vec<f32>) -> usize {
        let mut rest = samples;
        let mut n = 0;
        if !self.pending.is_empty() {
            let take = (self.block - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() < self.block {
                return 0;
            }
            out.extend_from_slice(&self.pending);
            self.pending.clear();
            n += 1;
        }
        let whole = rest.len() / self.block * self.block;
        out.extend_from_slice(&rest[..whole]);
        self.pending.extend_from_slice(&rest[whole..]);
        n + whole / self.block
    }

    /// Ends the stream: an unfinished block is completed with silence (zeros) and appended;
    /// returns how many blocks that made (0 or 1).
    pub fn finish(&mut self, out: &mut Vec<f32>) -> usize {
        if self.pending.is_empty() {
            return 0;
        }
        self.pending.resize(self.block, 0.0);
        out.extend_from_slice(&self.pending);
        self.pending.clear();
        1
    }

    /// Drops an unfinished block.
    pub fn reset(&mut self) {
        self.pending.clear();
    }

    /// Samples a block.
    pub fn block(&self) -> usize {
        self.block
    }

    /// The audio's rate, Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }
}

#[cfg(test)]
mod tests {
    use super::Blocks;

    #[test]
    fn blocks_are_the_stream_in_order_whatever_the_chunks() {
        let samples: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        for chunk in [1, 3, 7, 160, 333, 1000] {
            let mut b = Blocks::new(160, 16000);
            let mut out = Vec::new();
            let mut n = 0;
            for c in samples.chunks(chunk) {
                n += b.process(c, &mut out);
            }
            assert_eq!(n, 6, "chunk {chunk}");
            assert_eq!(out, samples[..960], "chunk {chunk}");
            assert_eq!(b.finish(&mut out), 1);
            assert_eq!(out.len(), 1120);
            assert_eq!(out[960..1000], samples[960..]);
            assert!(out[1000..].iter().all(|&x| x == 0.0));
            assert_eq!(b.finish(&mut out), 0);
        }
    }
}
