//! The process's allocator settings.

/// Keeps freed blocks (up to 2 GB, or up to 32 MB where an older glibc refuses more) in the
/// process's heap for the next allocation, instead of returning each to the system (glibc
/// only; elsewhere nothing is changed). Returns whether both settings took.
///
/// glibc maps every allocation above its adaptive threshold (at most 32 MB) afresh and unmaps
/// it when freed, so each 40 MB buffer of a pass over 10000 test images faults its pages in
/// again. `credit analyze` of a 784-1000-1000-10 run: 6.4 million page faults, 22.6 s of
/// system time and 65.4 s in all by default; 0.73 million, 5.7 s and 57.9 s with both
/// thresholds raised (through glibc's environment variables, the same settings), at a peak
/// resident size of 685 MB against 560 MB. Raising the trim threshold alone made it worse
/// (5.3 million faults): it also stops the mmap threshold from adapting.
pub fn keep_freed_blocks() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// Blocks up to this size are neither mapped on their own nor returned from the top
        /// of the heap.
        const THRESHOLD: libc::c_int = libc::c_int::MAX;
        /// The largest mmap threshold glibc before 2.35 or so accepts (`HEAP_MAX_SIZE / 2`
        /// on 64-bit systems).
        const OLDER_GLIBC_MAX: libc::c_int = 32 << 20;
        // SAFETY: `mallopt` only changes settings of glibc's allocator, which any thread may
        // do at any time; it refuses values out of its range with 0.
        unsafe {
            let mapped = libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD) == 1
                || libc::mallopt(libc::M_MMAP_THRESHOLD, OLDER_GLIBC_MAX) == 1;
            let trimmed = libc::mallopt(libc::M_TRIM_THRESHOLD, THRESHOLD) == 1;
            mapped && trimmed
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

#[cfg(test)]
mod tests {
    /// glibc accepts the settings.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_settings() {
        assert!(super::keep_freed_blocks());
    }
}
