//! Keeps a model load's memory near the model's size: large load buffers go straight back to the OS.
//!
//! tract's load makes and frees large buffers (each weight read from the file, the originals
//! the optimiser packs). glibc serves allocations above its mmap threshold with their own
//! mappings, but it raises that threshold each time such a mapping is freed, so after the
//! first few weights the rest come from the heap, and freed heap stays with the process: the
//! peak was about 1.5–2× the model file (BENCHMARKS.md, "kernel, loader and quantisation
//! patches"). During a load the threshold is held low; afterwards it is set where glibc's own
//! adjustment ends (32 MiB), so the buffers of the inference runs are reused from the heap
//! rather than mapped and faulted in on every run.

/// While alive, allocations of 256 KiB and more are mapped alone and unmapped when freed
/// (glibc; nothing elsewhere). Dropping it restores run-time settings and returns free heap.
pub struct LoadPhase(());

impl LoadPhase {
    /// Starts a load phase.
    pub fn start() -> Self {
        set_malloc(256 << 10, 512 << 10);
        LoadPhase(())
    }
}

impl Drop for LoadPhase {
    fn drop(&mut self) {
        // glibc's dynamic maxima on 64-bit: mmap threshold 32 MiB, trim threshold twice that.
        set_malloc(32 << 20, 64 << 20);
        release_free_heap();
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

/// Returns free heap pages to the OS (glibc `malloc_trim`); a no-op elsewhere.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim has no preconditions; it only releases pages of free chunks.
    unsafe {
        libc::malloc_trim(0);
    }
}
