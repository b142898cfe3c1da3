//! Microphone capture through cpal (ALSA): the device by name or substring, its native rate
//! (48 kHz preferred), samples pushed from the audio callback into a lock-free SPSC ring
//! without allocating, locking or logging; overruns counted; a lost device reopened with
//! capped backoff.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use crossbeam_channel::Sender;
use ringbuf::traits::{Consumer, Producer, Split};

use crate::source::{sleep_unless, Chunk, Restart};
use crate::stats::SourceHealth;

/// What `[source] kind = "capture"` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    /// Device name, or a case-insensitive part of it; None: the system's default input.
    pub device: Option<String>,
    /// Sample rate; None: 48 kHz if the device supports it, else its default.
    pub rate: Option<u32>,
    /// Channels; None: 1 if supported, else the fewest the device offers.
    pub channels: Option<u16>,
    /// Audio per chunk handed to the analysis.
    pub chunk: Duration,
    /// Delays between attempts to (re)open the device.
    pub retry: Restart,
}

/// The ALSA name of a device (what `device =` matches), e.g. `hw:CARD=USB,DEV=0`.
fn name(d: &cpal::Device) -> String {
    d.id()
        .map(|i| i.id().to_owned())
        .unwrap_or_else(|_| d.to_string())
}

/// `soundsentry devices`: each input device, its description and what it supports.
pub fn describe_devices() -> Result<Vec<String>, String> {
    let host = cpal::default_host();
    let default = host.default_input_device().map(|d| name(&d));
    let devices = host.input_devices().map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for d in devices {
        let id = name(&d);
        let support = match d.supported_input_configs() {
            Ok(cs) => {
                let cs: Vec<_> = cs.collect();
                let mut formats: Vec<String> =
                    cs.iter().map(|c| c.sample_format().to_string()).collect();
                formats.sort();
                formats.dedup();
                let ch = (
                    cs.iter().map(|c| c.channels()).min(),
                    cs.iter().map(|c| c.channels()).max(),
                );
                let rate = (
                    cs.iter().map(|c| c.min_sample_rate()).min(),
                    cs.iter().map(|c| c.max_sample_rate()).max(),
                );
                match (ch, rate) {
                    ((Some(c0), Some(c1)), (Some(r0), Some(r1))) => {
                        format!("channels {c0}–{c1}, {r0}–{r1} Hz, {}", formats.join("/"))
                    }
                    _ => "no input configurations".to_owned(),
                }
            }
            Err(e) => format!("cannot query: {e}"),
        };
        let mark = if default.as_deref() == Some(id.as_str()) {
            " (default)"
        } else {
            ""
        };
        out.push(format!("{id}{mark}: {}\n    {support}", d));
    }
    Ok(out)
}

fn find_device(want: Option<&str>) -> Result<cpal::Device, String> {
    let host = cpal::default_host();
    let Some(want) = want else {
        return host
            .default_input_device()
            .ok_or_else(|| "no default input device".to_owned());
    };
    let devices: Vec<cpal::Device> = host
        .input_devices()
        .map_err(|e| format!("listing input devices: {e}"))?
        .collect();
    if let Some(d) = devices.iter().find(|d| name(d) == want) {
        return Ok(d.clone());
    }
    let lower = want.to_lowercase();
    let matching: Vec<&cpal::Device> = devices
        .iter()
        .filter(|d| {
            name(d).to_lowercase().contains(&lower) || d.to_string().to_lowercase().contains(&lower)
        })
        .collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!(
            "no input device matches {want:?} (`soundsentry devices` lists them)"
        )),
        many => Err(format!(
            "{want:?} matches {} devices ({}); give more of the name",
            many.len(),
            many.iter().map(|d| name(d)).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// The stream configuration to open: (config, sample format).
fn choose(
    device: &cpal::Device,
    cfg: &CaptureConfig,
) -> Result<(cpal::StreamConfig, cpal::SampleFormat), String> {
    use cpal::SampleFormat as F;
    let ranges: Vec<cpal::SupportedStreamConfigRange> = device
        .supported_input_configs()
        .map_err(|e| e.to_string())?
        .filter(|c| matches!(c.sample_format(), F::F32 | F::I16 | F::I32))
        .collect();
    let rank = |f: F| match f {
        F::F32 => 0,
        F::I32 => 1,
        _ => 2,
    };
    let fits_rate = |c: &cpal::SupportedStreamConfigRange, r: u32| {
        c.min_sample_rate() <= r && r <= c.max_sample_rate()
    };
    let mut best: Option<(cpal::SupportedStreamConfigRange, u32)> = None;
    for c in &ranges {
        if cfg.channels.is_some_and(|ch| ch != c.channels()) {
            continue;
        }
        let rate = match cfg.rate {
            Some(r) if fits_rate(c, r) => r,
            Some(_) => continue,
            None if fits_rate(c, 48_000) => 48_000,
            None => c.max_sample_rate().min(48_000).max(c.min_sample_rate()),
        };
        let better = match &best {
            None => true,
            Some((b, br)) => {
                let key = |c: &cpal::SupportedStreamConfigRange, r: u32| {
                    (r != 48_000, c.channels(), rank(c.sample_format()))
                };
                key(c, rate) < key(b, *br)
            }
        };
        if better {
            best = Some((*c, rate));
        }
    }
    let (range, rate) = best.ok_or_else(|| {
        format!(
            "the device offers no f32/i16/i32 input with rate {:?} and channels {:?}",
            cfg.rate, cfg.channels
        )
    })?;
    let sc = range.with_sample_rate(rate);
    Ok((sc.config(), sc.sample_format()))
}

/// An open capture stream and the reading end of its ring.
struct Open {
    _stream: cpal::Stream,
    ring: ringbuf::HeapCons<f32>,
    channels: usize,
    failed: Arc<AtomicBool>,
}

/// An input stream of integer samples, converted by `to_f32` and pushed sample by sample (the
/// callback runs on the audio thread: no allocation, no lock, no logging).
fn int_stream<T: cpal::SizedSample + 'static>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut prod: ringbuf::HeapProd<f32>,
    counters: Arc<CaptureCounters>,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
    to_f32: fn(T) -> f32,
) -> Result<cpal::Stream, cpal::Error> {
    device.build_input_stream(
        config,
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            let mut lost = false;
            for &s in data {
                lost |= prod.try_push(to_f32(s)).is_err();
            }
            counters.note(lost);
        },
        on_error,
        None,
    )
}

fn open(cfg: &CaptureConfig, health: &Arc<CaptureCounters>) -> Result<(Open, u32), String> {
    let device = find_device(cfg.device.as_deref())?;
    let (config, format) = choose(&device, cfg)?;
    let rate = config.sample_rate;
    let channels = config.channels as usize;
    // Two seconds of audio: the consumer drains it every few milliseconds.
    let (mut prod, cons) = ringbuf::HeapRb::<f32>::new(rate as usize * channels * 2).split();
    let failed = Arc::new(AtomicBool::new(false));
    let failed_cb = Arc::clone(&failed);
    let on_error = move |_e: cpal::Error| failed_cb.store(true, Ordering::Relaxed);
    let counters = Arc::clone(health);
    // The callbacks below run on the audio thread: no allocation, no lock, no logging.
    let stream = match format {
        cpal::SampleFormat::F32 => device.build_input_stream(
            config,
            move |data: &[f32], _: &cpal::InputCallbackInfo| {
                let n = prod.push_slice(data);
                counters.note(n < data.len());
            },
            on_error,
            None,
        ),
        cpal::SampleFormat::I16 => {
            int_stream(&device, config, prod, counters, on_error, |s: i16| {
                s as f32 / 32_768.0
            })
        }
        _ => int_stream(&device, config, prod, counters, on_error, |s: i32| {
            s as f32 / 2_147_483_648.0
        }),
    }
    .map_err(|e| format!("opening {}: {e}", name(&device)))?;
    stream
        .play()
        .map_err(|e| format!("starting {}: {e}", name(&device)))?;
    tracing::info!(device = %name(&device), rate, channels, format = %format, "capture started");
    Ok((
        Open {
            _stream: stream,
            ring: cons,
            channels,
            failed,
        },
        rate,
    ))
}

/// Counters the audio callback may touch (atomics only).
#[derive(Debug, Default)]
pub struct CaptureCounters {
    /// Callbacks whose samples did not all fit in the ring.
    pub overruns: AtomicU64,
    /// Callbacks seen.
    pub callbacks: AtomicU64,
}

impl CaptureCounters {
    fn note(&self, lost: bool) {
        self.callbacks.fetch_add(1, Ordering::Relaxed);
        if lost {
            self.overruns.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Opens the device once to learn its rate (the analysis is built for it).
pub fn probe_rate(cfg: &CaptureConfig) -> Result<u32, String> {
    let device = find_device(cfg.device.as_deref())?;
    Ok(choose(&device, cfg)?.0.sample_rate)
}

/// The source thread of a capture: reads the ring into mono chunks of about `cfg.chunk` and
/// sends them (never waiting: a full queue drops the chunk and counts it). A device that fails
/// or stops delivering for 2 s is closed and reopened after a delay doubling from
/// `retry.min` to `retry.max`. Returns when `stop` is set.
pub fn capture(
    cfg: &CaptureConfig,
    rate: u32,
    stop: &AtomicBool,
    tx: Sender<Chunk>,
    health: &SourceHealth,
) {
    let counters = Arc::new(CaptureCounters::default());
    let mut delay = cfg.retry.min;
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        let (mut open, got_rate) = match open(cfg, &counters) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(reason = %e, retry_in = ?delay, "capture device unavailable");
                sleep_unless(stop, delay);
                delay = (delay * 2).min(cfg.retry.max);
                continue;
            }
        };
        if !first {
            health.restarts_total.fetch_add(1, Ordering::Relaxed);
        }
        first = false;
        if got_rate != rate {
            tracing::error!(
                rate = got_rate,
                expected = rate,
                "the device changed its rate; capture stops"
            );
            return;
        }
        delay = cfg.retry.min;
        let frames = ((rate as f64 * cfg.chunk.as_secs_f64()) as usize).max(1);
        let want = frames * open.channels;
        let mut buf = vec![0f32; want];
        let mut filled = 0;
        let mut last_data = Instant::now();
        let mut seen_overruns = 0;
        while !stop.load(Ordering::Relaxed) {
            let n = open.ring.pop_slice(&mut buf[filled..]);
            filled += n;
            if n > 0 {
                last_data = Instant::now();
            }
            if filled == want {
                let mut mono = Vec::with_capacity(frames);
                crate::audio::downmix_into(&buf, open.channels, &mut mono);
                if let Err(crossbeam_channel::TrySendError::Full(_)) = tx.try_send(Ok(mono)) {
                    health.overruns_total.fetch_add(1, Ordering::Relaxed);
                }
                filled = 0;
                continue;
            }
            let ring_overruns = counters.overruns.load(Ordering::Relaxed);
            if ring_overruns > seen_overruns {
                health
                    .overruns_total
                    .fetch_add(ring_overruns - seen_overruns, Ordering::Relaxed);
                seen_overruns = ring_overruns;
            }
            if open.failed.load(Ordering::Relaxed) || last_data.elapsed() > Duration::from_secs(2) {
                tracing::warn!(retry_in = ?delay, "capture device lost or silent for 2 s; reopening");
                break;
            }
            if n == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        drop(open);
        sleep_unless(stop, delay);
    }
}
