//! Process-wide allocator tuning: large short-lived buffers go back to the kernel when freed.

/// Every allocation of at least this size is its own memory mapping, unmapped when freed.
const OWN_MAPPING_BYTES: i32 = 1 << 20;

/// glibc raises its mapping threshold each time a mapped buffer is freed, so the second
/// password check's 19 MiB (argon2id) lands in the heap and stays resident after it is freed,
/// once per allocator arena. A fixed threshold keeps such buffers out of the heap: the
/// server's memory returns to idle after a burst of sign-ins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn return_large_buffers_to_the_kernel() {
    // SAFETY: mallopt only sets an allocator parameter; it is called first thing in main,
    // before any other thread exists, and takes no pointers.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, OWN_MAPPING_BYTES);
    }
}

/// Other allocators return large buffers on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_large_buffers_to_the_kernel() {}
