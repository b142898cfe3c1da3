//! Keeps the process's memory near the model's size: load buffers back to the OS, large run buffers reused in place, code not in use out of the resident set.
//!
//! tract's load makes and frees large buffers (each weight read from the file, the originals
//! the optimiser packs). glibc serves allocations above its mmap threshold with their own
//! mappings, but it raises that threshold each time such a mapping is freed, so after the
//! first few weights the rest come from the heap, and freed heap stays with the process: the
//! peak was about 1.5–2× the model file (docs/benchmarks-history.md, "kernel, loader and quantisation
//! patches"). During a load ([`LoadPhase`]) the threshold is held low and the page pool
//! unmaps what is freed; afterwards the threshold is set where glibc's own adjustment ends
//! (32 MiB).
//!
//! Blocks of a MiB and more (a run's activations) live on pooled pages ([`pages`]): a freed
//! block's pages serve the next large block of any size, so a run never holds more than the
//! most it ever had live at once (glibc's heap kept a freed 3.7 MB attention tensor and a
//! 14.9 MB MLP product apart, ~18 MB over that for an int8 AST).
//!
//! A load runs far more of the program (ONNX parsing, tract's typing, declutter and
//! optimiser) than inference does; [`release_code_pages`] takes the executable's code pages
//! out of the resident set between the load's stages and after it, and those still used
//! fault back in from the page cache.

#[cfg(target_os = "linux")]
pub mod pages;

/// Blocks of a MiB and more live on pooled pages ([`pages`]); the rest is the system's.
#[cfg(target_os = "linux")]
#[global_allocator]
static PAGES: pages::PagePool = pages::PagePool::new();

/// While alive, allocations of 256 KiB and more are mapped alone and unmapped when freed
/// (glibc and the page pool; Linux only). Dropping it restores the run-time settings and
/// returns free heap and the load's code pages ([`release_code_pages`]). Only memory is at
/// stake: allocations made meanwhile elsewhere (another thread's) behave the same, correctly.
pub struct LoadPhase(());

impl LoadPhase {
    /// Starts a load phase.
    pub fn start() -> Self {
        set_malloc(256 << 10, 512 << 10);
        #[cfg(target_os = "linux")]
        PAGES.release_and_keep(false);
        LoadPhase(())
    }
}

impl Drop for LoadPhase {
    fn drop(&mut self) {
        // glibc's dynamic maxima on 64-bit: mmap threshold 32 MiB, trim threshold twice that.
        set_malloc(32 << 20, 64 << 20);
        release_free_heap();
        release_code_pages();
    }
}

fn set_malloc(_mmap_threshold: i32, _trim_threshold: i32) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only changes allocator parameters; any value is accepted or refused.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, _mmap_threshold);
        libc::mallopt(libc::M_TRIM_THRESHOLD, _trim_threshold);
    }
}

/// Returns free heap pages to the OS: the page pool's free segments and glibc's free heap
/// (`malloc_trim`); a no-op elsewhere.
pub fn release_free_heap() {
    #[cfg(target_os = "linux")]
    PAGES.release_and_keep(true);
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim has no preconditions; it only releases pages of free chunks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Takes this executable's unwritten pages (its code and read-only data) out of the resident
/// set: a load runs far more of the program (ONNX parsing, the graph optimiser) than inference
/// does. The pages stay in the page cache, and those used again fault back in from it. Pages
/// written since the start (relocated data: private copies, `Anonymous` in smaps) are never
/// touched: only mappings that are not writable and hold no such copy are advised. Returns
/// the bytes advised.
pub fn release_code_pages() -> usize {
    #[cfg(target_os = "linux")]
    {
        let Some(smaps) = read_smaps() else {
            return 0;
        };
        let mut released = 0;
        for m in exe_mappings(&smaps) {
            if !m.perms.contains('w') && m.anonymous_kb == 0 {
                #[allow(unsafe_code)]
                // SAFETY: the range is a read-only file mapping of ours without a private copy
                // of any page: advising it away drops page-table entries only; the next access
                // maps the same bytes from the file again.
                let rc = unsafe {
                    libc::madvise(
                        m.start as *mut libc::c_void,
                        m.end - m.start,
                        libc::MADV_DONTNEED,
                    )
                };
                if rc == 0 {
                    released += m.end - m.start;
                }
            }
        }
        released
    }
    #[cfg(not(target_os = "linux"))]
    0
}

/// This process's peak resident set so far (VmHWM), KiB; None where /proc is not readable.
pub fn peak_rss_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Bytes of this executable's own mappings (code, read-only and relocated data) resident in
/// memory; None where /proc is not readable.
pub fn exe_resident_bytes() -> Option<u64> {
    let smaps = read_smaps()?;
    let kb: u64 = exe_mappings(&smaps).map(|m| m.rss_kb).sum();
    Some(kb << 10)
}

/// This process's executable path and its `/proc/self/smaps` text.
fn read_smaps() -> Option<(std::path::PathBuf, String)> {
    let exe = std::fs::read_link("/proc/self/exe").ok()?;
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    Some((exe, smaps))
}

/// The mappings of the executable's own file in a [`read_smaps`] reading.
fn exe_mappings((exe, smaps): &(std::path::PathBuf, String)) -> impl Iterator<Item = Mapping<'_>> {
    smaps_entries(smaps)
        .into_iter()
        .filter(move |m| m.path == exe.as_os_str())
}

/// One mapping of `/proc/self/smaps`, with the fields used here.
#[derive(Debug, PartialEq)]
struct Mapping<'a> {
    start: usize,
    end: usize,
    perms: &'a str,
    path: &'a std::ffi::OsStr,
    rss_kb: u64,
    anonymous_kb: u64,
}

/// The mappings of a `/proc/PID/smaps` text; a mapping whose `Anonymous:` line is missing or
/// unreadable counts as holding private copies.
fn smaps_entries(text: &str) -> Vec<Mapping<'_>> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let head = f.next().unwrap_or("");
        if let Some((a, b)) = head.split_once('-') {
            if let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                let perms = f.next().unwrap_or("");
                let path = f.nth(3).unwrap_or("");
                out.push(Mapping {
                    start,
                    end,
                    perms,
                    path: std::ffi::OsStr::new(path),
                    rss_kb: 0,
                    anonymous_kb: u64::MAX,
                });
                continue;
            }
        }
        if let (Some(m), Some(kb)) = (out.last_mut(), f.next().and_then(|v| v.parse().ok())) {
            match head {
                "Rss:" => m.rss_kb = kb,
                "Anonymous:" => m.anonymous_kb = kb,
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0a0000000-55d0a0200000 r--p 00000000 00:2a 1234      /opt/bin/soundsentry
Size:               2048 kB
Rss:                1800 kB
Private_Dirty:      1800 kB
Anonymous:             0 kB
55d0a0200000-55d0a1000000 r-xp 00200000 00:2a 1234      /opt/bin/soundsentry
Rss:               13000 kB
Anonymous:             0 kB
55d0a1000000-55d0a1100000 r--p 01000000 00:2a 1234      /opt/bin/soundsentry
Rss:                1024 kB
Anonymous:           900 kB
7f0000000000-7f0000021000 rw-p 00000000 00:00 0 
Rss:                 132 kB
Anonymous:           132 kB
7ffd00000000-7ffd00001000 r-xp 00000000 00:00 0          [vdso]
Rss:                   4 kB
";

    #[test]
    fn smaps_entries_read_ranges_paths_and_sizes() {
        let m = smaps_entries(SMAPS);
        assert_eq!(m.len(), 5);
        assert_eq!((m[0].start, m[0].end), (0x55d0a0000000, 0x55d0a0200000));
        assert_eq!(m[0].perms, "r--p");
        assert_eq!(m[0].path, "/opt/bin/soundsentry");
        assert_eq!((m[0].rss_kb, m[0].anonymous_kb), (1800, 0));
        assert_eq!(
            (m[1].perms, m[1].rss_kb, m[1].anonymous_kb),
            ("r-xp", 13000, 0)
        );
        // Relocated read-only data holds private copies.
        assert_eq!(m[2].anonymous_kb, 900);
        // An anonymous mapping has no path.
        assert_eq!(m[3].path, "");
        // No Anonymous line: counted as holding private copies, so never advised away.
        assert_eq!(
            (m[4].path, m[4].anonymous_kb),
            (std::ffi::OsStr::new("[vdso]"), u64::MAX)
        );
    }

    #[test]
    fn released_code_pages_still_run() {
        // Advising this test binary's code away must leave it running and counting right.
        let released = release_code_pages();
        assert!(cfg!(not(target_os = "linux")) || released > 0);
        let sum: u64 = (1..=1000u64).map(std::hint::black_box).sum();
        assert_eq!(sum, 500_500);
        assert!(exe_resident_bytes().is_some() || cfg!(not(target_os = "linux")));
    }
}
