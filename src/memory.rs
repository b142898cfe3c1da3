//! Gives freed heap memory back to the operating system after a model load.
//!
//! tract's optimiser copies every weight into its packed layout and frees the original; glibc
//! keeps those freed megabytes in its heap, so without this the daemon would hold about twice
//! the model's size for its whole life (BENCHMARKS.md, "Memory").

/// Returns free heap pages to the OS (glibc `malloc_trim`); a no-op elsewhere.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim has no preconditions; it only releases pages of free chunks.
    unsafe {
        libc::malloc_trim(0);
    }
}
