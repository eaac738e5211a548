//! Process-wide allocator tuning: large short-lived buffers go back to the kernel when freed,
//! the churn of request buffers does not.

/// Every allocation of at least this size is its own memory mapping, unmapped when freed.
const OWN_MAPPING_BYTES: i32 = 4 << 20;
/// Free memory kept at the top of an allocator heap before it is handed back to the kernel.
const KEEP_FREE_BYTES: i32 = 8 << 20;

/// glibc adapts both thresholds as the program runs: once the first password check's 7 MiB
/// (argon2id) is freed, the next one lands in the heap and stays resident, once per allocator
/// arena. Fixed thresholds keep such buffers out of the heap. Fixing the mapping threshold
/// also pins the trim threshold at its 128 KiB default, which hands the network read buffers
/// of an upload (a few hundred KiB each) back to the kernel as soon as they are freed and
/// faults them in again for the next read (a 1 GiB push took 2.4 instead of 1.8 CPU seconds).
/// Keeping 8 MiB per heap avoids that churn: a mirror's cold fetch holds up to about 5 MiB
/// of upstream frames, and with 4 MiB kept its heap still swung past the threshold (about
/// 3,500 page faults per 256 MiB fetched; none with 8). And one arena per two cores instead
/// of eight per core: each SQLite connection runs on its own thread, and every thread with
/// its own arena keeps its own free memory (a second arena held 7 MiB on two cores after a
/// benchmark run); threads cache small allocations of their own, so sharing costs little.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn tune_allocator() {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let arenas = i32::try_from((cores / 2).max(1)).unwrap_or(i32::MAX);
    // SAFETY: mallopt only sets allocator parameters; it is called first thing in main,
    // before any other thread exists, and takes no pointers.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, OWN_MAPPING_BYTES);
        libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP_FREE_BYTES);
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

/// Other allocators return large buffers on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_allocator() {}
