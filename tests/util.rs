//! Helpers shared by the integration tests: fixture paths and .npy loading.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::ReadNpyExt;
use serde_json::Value;

/// Path of a file under `tests/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Reads a float32 .npy file into its shape and flat data.
pub fn read_npy(rel: &str) -> (Vec<usize>, Vec<f32>) {
    let path = fixture(rel);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let arr: ArrayD<f32> =
        ArrayD::<f32>::read_npy(file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let shape = arr.shape().to_vec();
    let data = arr
        .into_shape_with_order(IxDyn(&[shape.iter().product()]))
        .expect("flatten")
        .into_raw_vec_and_offset()
        .0;
    (shape, data)
}

/// Largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The `soundsentry` binary built for these tests.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_soundsentry"))
}

/// Path of a file of the repository.
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Runs a command that must succeed; returns its output.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn soundsentry");
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every stdout line of `out`, parsed as JSON.
pub fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Writes mono 32-bit float samples as a WAV file (IEEE float, format 3).
pub fn write_wav_f32(path: &std::path::Path, rate: u32, samples: &[f32]) {
    let data = (samples.len() * 4) as u32;
    let mut b = Vec::with_capacity(44 + data as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&3u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 4).to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&32u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, b).expect("write wav");
}

/// A sine of `amplitude` (1.0 = full scale) at `f` Hz.
pub fn sine(rate: u32, f: f64, amplitude: f64, seconds: f64) -> Vec<f32> {
    let n = (seconds * f64::from(rate)).round() as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            (amplitude * (2.0 * std::f64::consts::PI * f * t).sin()) as f32
        })
        .collect()
}

/// Reads a spawned child's piped stdout to the end on a thread of its own (so the child never
/// blocks on a full pipe); join the handle for the text.
pub fn read_stdout(child: &mut std::process::Child) -> std::thread::JoinHandle<String> {
    let mut stdout = child.stdout.take().expect("stdout piped");
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    })
}

/// A tmpfs of `kib` KiB mounted on a fresh temp dir (the tests run as root), unmounted on drop.
pub struct TinyDisk(pub tempfile::TempDir);

impl TinyDisk {
    pub fn mount(kib: u32) -> Self {
        Self::with_options(&format!("size={kib}k"))
    }

    /// An empty tmpfs mounted read-only: writing into it fails with EROFS, even for root.
    pub fn read_only() -> Self {
        Self::with_options("ro,size=64k")
    }

    fn with_options(options: &str) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mounting a tmpfs failed: these tests run as root");
        Self(dir)
    }

    /// Fills the rest of the disk with a file `filler`.
    pub fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.path().join("filler")).expect("filler");
        while f.write_all(&[0u8; 4096]).is_ok() {}
        let _ = f.write_all(&[0u8; 1]);
    }

    pub fn free(&self) {
        std::fs::remove_file(self.0.path().join("filler")).expect("remove filler");
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

/// A PNG decoded: (width, height, RGB pixels).
pub struct Picture {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Its pixels, as RGB triples.
    pub pixels: Vec<[u8; 3]>,
}

impl Picture {
    /// Decodes `path` (panics with the path on any error, as a test should).
    pub fn read(path: &std::path::Path) -> Self {
        let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder
            .read_info()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader
            .next_frame(&mut buf)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let channels = info.color_type.samples();
        let pixels = buf[..info.buffer_size()]
            .chunks_exact(channels)
            .map(|p| match channels {
                1 | 2 => [p[0]; 3],
                _ => [p[0], p[1], p[2]],
            })
            .collect();
        Self {
            width: info.width,
            height: info.height,
            pixels,
        }
    }

    /// How many distinct colours it has.
    pub fn colours(&self) -> usize {
        let mut c: Vec<[u8; 3]> = self.pixels.clone();
        c.sort_unstable();
        c.dedup();
        c.len()
    }

    /// How many pixels are exactly `rgb`.
    pub fn count(&self, rgb: [u8; 3]) -> usize {
        self.pixels.iter().filter(|&&p| p == rgb).count()
    }
}

/// A headless Debian chromium (its profile in `dir`) with a tab that records console errors,
/// log errors and uncaught exceptions into the returned list.
pub fn chromium(
    dir: &std::path::Path,
) -> (
    headless_chrome::Browser,
    std::sync::Arc<headless_chrome::Tab>,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use headless_chrome::protocol::cdp::types::Event;
    use headless_chrome::protocol::cdp::{Log, Runtime};
    use std::sync::{Arc, Mutex};
    let path = std::path::PathBuf::from("/usr/bin/chromium");
    assert!(
        path.exists(),
        "Debian's chromium is needed for the page tests (apt-get install chromium; .ci/run does)"
    );
    let args: Vec<&std::ffi::OsStr> = [
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
    ]
    .iter()
    .map(std::ffi::OsStr::new)
    .collect();
    let browser = headless_chrome::Browser::new(headless_chrome::LaunchOptions {
        path: Some(path),
        headless: true,
        sandbox: false,
        window_size: Some((1200, 1100)),
        user_data_dir: Some(dir.join("chromium")),
        args,
        idle_browser_timeout: std::time::Duration::from_secs(120),
        ..Default::default()
    })
    .expect("chromium starts");
    let tab = browser.new_tab().expect("tab");
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    tab.enable_log().expect("log");
    tab.enable_runtime().expect("runtime");
    let seen = errors.clone();
    tab.add_event_listener(Arc::new(move |event: &Event| {
        let msg = match event {
            Event::LogEntryAdded(e) => {
                let entry = &e.params.entry;
                matches!(entry.level, Log::LogEntryLevel::Error)
                    .then(|| format!("log: {}", entry.text))
            }
            Event::RuntimeExceptionThrown(e) => {
                Some(format!("exception: {}", e.params.exception_details.text))
            }
            Event::RuntimeConsoleAPICalled(e) => matches!(
                e.params.Type,
                Runtime::ConsoleAPICalledEventTypeOption::Error
            )
            .then(|| "console.error".to_owned()),
            _ => None,
        };
        if let Some(m) = msg {
            seen.lock().expect("lock").push(m);
        }
    }))
    .expect("listener");
    (browser, tab, errors)
}

/// A full-page screenshot of `tab`, written to `path` and decoded.
pub fn screenshot(tab: &headless_chrome::Tab, path: &std::path::Path) -> Picture {
    let png = tab
        .capture_screenshot(
            headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption::Png,
            None,
            None,
            true,
        )
        .expect("screenshot");
    std::fs::write(path, &png).expect("write");
    Picture::read(path)
}
