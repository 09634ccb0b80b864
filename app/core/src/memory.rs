//! The process's memory over weeks: glibc's allocator settings for a server whose sessions come
//! and go on many threads.
//!
//! glibc gives each thread that allocates at once an arena of its own (up to eight per core)
//! and keeps what is freed in it. `hiwar serve` starts a hearing pipeline (VAD, whisper,
//! Smart Turn) on fresh threads for every microphone session; measured with `hiwar bench
//! serve`, the server's RSS then climbed with each audio session (626 → 1326 MiB over 20,
//! still rising) although nothing leaked. With two arenas it stays flat after the first few,
//! and returning the free memory at each session's end lowers the plateau (docs/benchmarks.md).
//!
//! `hiwar serve` runs ONNX Runtime without its own memory arena (`hiwar_speech::onnx::use_arena`),
//! so a synthesis's tensors come from here and go back here: [`keep_freed`] keeps them in the
//! heap for the next one instead of glibc's default of handing them to the kernel and faulting
//! them in again.

/// Caps glibc's arenas at `arenas` (call before the threads start). No effect elsewhere.
#[allow(unsafe_code, reason = "FFI edge: glibc's mallopt has no safe wrapper")]
pub fn limit_arenas(arenas: i32) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX takes any positive count.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas.max(1));
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = arenas;
}

/// Keeps what is freed in the heap for the next allocation (call before the threads start):
/// blocks under 32 MiB come from the heap, and its free top is given back to the kernel past
/// 128 MiB rather than 128 KiB. glibc's defaults map every block above a
/// moving threshold afresh and give the heap's top back at once: without ONNX Runtime's arena,
/// each synthesis then faulted its tensors in again (4× the system time, RTF 0.046 → 0.053).
/// 128 MiB is the smallest that keeps them (64: twice the system time; docs/benchmarks.md).
/// What stays free is returned by [`give_back`]. An operator's `MALLOC_MMAP_THRESHOLD_` or
/// `MALLOC_TRIM_THRESHOLD_` wins.
#[allow(unsafe_code, reason = "FFI edge: glibc's mallopt has no safe wrapper")]
pub fn keep_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"].iter().all(|v| std::env::var_os(v).is_none()) {
        // SAFETY: mallopt only sets allocator parameters; both take any size in bytes.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
        }
    }
}

/// Gives the allocator's free memory back to the system (after a session's pipeline ended).
#[allow(unsafe_code, reason = "FFI edge: glibc's malloc_trim has no safe wrapper")]
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim walks the allocator's own free lists; it is safe at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
