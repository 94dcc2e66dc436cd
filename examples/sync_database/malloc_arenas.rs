//! Keeps the process's memory flat over a long sync by capping glibc's malloc arenas.
//!
//! glibc gives each thread that allocates its own arena (up to eight per core) and seldom
//! hands an arena's free pages back. A sync allocates a batch on one runtime thread and frees
//! it on another, so every arena ends up holding its own high-water mark of batches, and peak
//! RSS crept up with the length of the run. Measured here (PostgreSQL fast path, 2 cores, 7
//! runs each): glibc's default peaked at 34-36 MiB at 200k customers and 37-41 MiB at 1M; one
//! arena peaked at 29-30 MiB at both sizes, within the first seconds. The price was about 4% of
//! wall time at 1M (median 16.8 s against 16.1 s), threads now taking turns at one arena's lock;
//! two arenas kept the creep (34-40 MiB).
//!
//! Programs that embed DMF can get the same by starting with `MALLOC_ARENA_MAX=1` in their
//! environment. Other allocators (musl, macOS, Windows) are left alone.

/// Arenas glibc may use: one, the only setting measured flat.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: libc::c_int = 1;

/// Caps glibc's arenas unless the user chose a cap (`MALLOC_ARENA_MAX` or `GLIBC_TUNABLES`).
///
/// Call it first thing in `main`, before the async runtime starts its threads: a thread picks
/// its arena at its first allocation.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn cap() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() || std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    // SAFETY: mallopt only changes a tuning setting of glibc's allocator, and no other thread
    // exists yet. It returns 0 when it refuses the setting, which leaves glibc's default: fine.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Nothing to cap on allocators other than glibc's.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn cap() {}
