//! The process's memory over weeks: glibc's allocator settings for a server whose sessions come
//! and go on many threads.
//!
//! glibc gives each thread that allocates at once an arena of its own (up to eight per core)
//! and keeps what is freed in it. `hiwar serve` starts a hearing pipeline (VAD, whisper,
//! Smart Turn) on fresh threads for every microphone session; measured with `hiwar bench
//! serve`, the server's RSS then climbed with each audio session (626 → 1326 MiB over 20,
//! still rising) although nothing leaked. With two arenas it stays flat after the first few,
//! and returning the free memory at each session's end lowers the plateau (docs/benchmarks.md).

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

/// Gives the allocator's free memory back to the system (after a session's pipeline ended).
#[allow(unsafe_code, reason = "FFI edge: glibc's malloc_trim has no safe wrapper")]
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim walks the allocator's own free lists; it is safe at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
