//! Decodes an audio file packet by packet into mono f32 samples at the file's own rate.

use std::fs::File;
use std::path::{Path, PathBuf};

use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use super::downmix_into;

/// Why a file cannot be read as audio. Always names the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct AudioError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it, in one line.
    pub reason: String,
}

/// An open audio file, read as a stream of mono chunks.
pub struct AudioFile {
    path: PathBuf,
    reader: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    sample_rate: u32,
    channels: usize,
    interleaved: Vec<f32>,
    samples_read: u64,
}

impl AudioFile {
    /// Opens and probes the file; fails with a one-line reason if it is not audio we read.
    pub fn open(path: &Path) -> Result<Self, AudioError> {
        let fail = |reason: String| AudioError {
            path: path.to_owned(),
            reason,
        };
        let file = File::open(path).map_err(|e| fail(e.to_string()))?;
        let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
        if meta.is_dir() {
            return Err(fail("a directory, not an audio file".into()));
        }
        // Only a regular file's size is its length: a device or a pipe says 0 and is probed.
        let size = meta.is_file().then_some(meta.len());
        if size == Some(0) {
            return Err(fail("empty file".into()));
        }
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
        let reader = symphonia::default::get_probe()
            .probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .map_err(|e| {
                fail(format!(
                    "not a supported audio file ({})",
                    probe_failure(&e, size)
                ))
            })?;
        let track = reader
            .default_track(TrackType::Audio)
            .ok_or_else(|| fail("no audio track".into()))?;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(|| fail("no audio codec parameters".into()))?;
        let sample_rate = params
            .sample_rate
            .filter(|&r| r > 0)
            .ok_or_else(|| fail("unknown sample rate".into()))?;
        let channels = params.channels.as_ref().map(|c| c.count()).unwrap_or(1);
        if channels == 0 {
            return Err(fail("zero channels".into()));
        }
        let track_id = track.id;
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(params, &AudioDecoderOptions::default())
            .map_err(|e| fail(format!("unsupported codec ({})", describe(&e))))?;
        Ok(Self {
            path: path.to_owned(),
            reader,
            decoder,
            track_id,
            sample_rate,
            channels,
            interleaved: Vec::new(),
            samples_read: 0,
        })
    }

    /// The file's sample rate, Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The file's channel count.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Estimated number of frames (per channel), when the container says.
    pub fn frames_hint(&self) -> Option<u64> {
        self.reader
            .default_track(TrackType::Audio)
            .and_then(|t| t.num_frames)
    }

    /// Decodes the next packet and appends its samples, downmixed to mono, to `out`.
    /// Returns `Ok(false)` at the end of the stream. A damaged or cut-off stream is an
    /// error, never a silent early end; a file with no samples at all is an error too.
    pub fn read_chunk(&mut self, out: &mut Vec<f32>) -> Result<bool, AudioError> {
        loop {
            let packet = match self.reader.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => return self.finish(),
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(self.fail(format!(
                        "truncated: the stream ends early after {} samples",
                        self.samples_read
                    )))
                }
                Err(e) => return Err(self.fail(format!("corrupt: {}", describe(&e)))),
            };
            if packet.track_id != self.track_id {
                continue;
            }
            let buf = match self.decoder.decode(&packet) {
                Ok(buf) => buf,
                Err(e) => return Err(self.fail(format!("corrupt: {}", describe(&e)))),
            };
            if buf.frames() == 0 {
                continue;
            }
            let channels = buf.spec().channels().count().max(1);
            self.interleaved.resize(buf.samples_interleaved(), 0.0);
            buf.copy_to_slice_interleaved(&mut self.interleaved);
            downmix_into(&self.interleaved, channels, out);
            self.samples_read += buf.frames() as u64;
            return Ok(true);
        }
    }

    fn finish(&self) -> Result<bool, AudioError> {
        if self.samples_read == 0 {
            return Err(self.fail("no audio samples".into()));
        }
        if let Some(n) = self.frames_hint() {
            if self.samples_read < n {
                return Err(self.fail(format!(
                    "truncated: {} of {n} samples present",
                    self.samples_read
                )));
            }
        }
        Ok(false)
    }

    fn fail(&self, reason: String) -> AudioError {
        AudioError {
            path: self.path.clone(),
            reason,
        }
    }

    /// Reads the whole file into mono samples at its own rate.
    pub fn read_all(&mut self) -> Result<Vec<f32>, AudioError> {
        let mut out = Vec::new();
        while self.read_chunk(&mut out)? {}
        Ok(out)
    }
}

/// Why the probe found no reader, in the user's terms: how much of the file it looked at.
fn probe_failure(e: &SymError, size: Option<u64>) -> String {
    const LIMIT: u64 = 1 << 20; // symphonia's default probe depth
    match (e, size) {
        (SymError::Unsupported(m), Some(n)) if m.contains("probe") && n <= LIMIT => {
            format!("no known audio format in its {n} bytes")
        }
        (SymError::Unsupported(m), _) if m.contains("probe") => {
            "no known audio format in its first 1 MiB".into()
        }
        _ => describe(e),
    }
}

/// symphonia's errors, as one line.
fn describe(e: &SymError) -> String {
    match e {
        SymError::IoError(e) => e.to_string(),
        other => other.to_string(),
    }
}
