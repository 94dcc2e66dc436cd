//! Keeps the process's memory flat over a long sync by tuning glibc's malloc: one arena, and a
//! fixed threshold above which blocks are mapped on their own.
//!
//! **One arena.** glibc gives each thread that allocates its own arena (up to eight per core)
//! and seldom hands an arena's free pages back. A sync allocates a batch on one runtime thread
//! and frees it on another, so every arena ends up holding its own high-water mark of batches,
//! and peak RSS crept up with the length of the run. Measured here (PostgreSQL fast path, 2
//! cores, 7 runs each): glibc's default peaked at 34-36 MiB at 200k customers and 37-41 MiB at
//! 1M; one arena peaked at 29-30 MiB at both sizes, within the first seconds. The price was
//! about 4% of wall time at 1M (median 16.8 s against 16.1 s), threads now taking turns at one
//! arena's lock; two arenas kept the creep (34-40 MiB).
//!
//! **Blocks of 128 KiB and more mapped on their own.** A page read from PostgreSQL is one
//! buffer of a few hundred KiB, freed when its rows are loaded. glibc starts by mapping such a
//! block on its own, but each time one is freed it raises its threshold (up to 32 MiB), after
//! which these buffers come from the arena's heap, whose holes the next pages of other sizes
//! fit into less and less: the heap, and peak RSS, still grew with the length of a run (on
//! 2026-12-07, 4 alternating pairs: 19.3-19.9 MiB at 200k customers, 19.8-21.0 MiB at 1M,
//! with a peak of live heap of 6.97 and 7.02 MB by heaptrack). Setting the threshold fixes it
//! at 128 KiB (glibc's starting value): a page's buffer is mapped when read and unmapped when
//! loaded, and the heap only holds small blocks. 3 alternating pairs: 18.3-18.4 MiB at 200k,
//! 18.5-18.6 MiB at 1M, no slower.
//!
//! Programs that embed DMF can get the same by starting with `MALLOC_ARENA_MAX=1
//! MALLOC_MMAP_THRESHOLD_=131072` in their environment. Other allocators (musl, macOS, Windows)
//! are left alone.

/// Arenas glibc may use: one, the only setting measured flat.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: libc::c_int = 1;

/// Blocks of this many bytes or more are mapped on their own and unmapped when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Sets each of the two unless the user chose it (`MALLOC_ARENA_MAX`,
/// `MALLOC_MMAP_THRESHOLD_`, or any `GLIBC_TUNABLES`).
///
/// Call it first thing in `main`, before the async runtime starts its threads: a thread picks
/// its arena at its first allocation.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn tune() {
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    for (variable, parameter, value) in [
        ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, ARENAS),
        ("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
    ] {
        if std::env::var_os(variable).is_none() {
            // SAFETY: mallopt only changes a tuning setting of glibc's allocator, and no other
            // thread exists yet. It returns 0 when it refuses the setting, which leaves glibc's
            // default: fine.
            unsafe {
                libc::mallopt(parameter, value);
            }
        }
    }
}

/// Nothing to tune on allocators other than glibc's.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune() {}
