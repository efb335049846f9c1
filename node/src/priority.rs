//! CPU priority of the node's bulk-work threads.
//!
//! Applying commands (HNSW inserts, on the apply threads and rayon's pool) and writing
//! snapshots can keep every core busy for seconds. Raft actors need little CPU but need it
//! on time: a heartbeat that waits behind a second of inserts lets followers start
//! elections. Bulk-work threads therefore run at a higher nice value; the kernel's fair
//! scheduler then hands a core to a waking Raft or HTTP thread first.

/// Nice increment of bulk-work threads (0 is normal, 19 is lowest).
pub const BULK_NICE: i32 = 5;

/// Lowers the calling thread's CPU priority to [`BULK_NICE`]. On Linux a thread's nice
/// value is its own (`setpriority` on its thread id), so this leaves the rest of the
/// process alone. Failure is harmless (the thread keeps its priority), so it is only logged.
pub fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take and return plain integers.
        let rc = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, BULK_NICE)
        };
        if rc != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "cannot lower a bulk-work thread's priority"
            );
        }
    }
}

/// Builds rayon's global pool (HNSW batch inserts and index rebuilds run on it) with
/// bulk-work priority. Call once, before anything uses rayon; a later call is a no-op.
pub fn init_bulk_pool() {
    let built = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("bulk-{i}"))
        .start_handler(|_| lower_this_thread())
        .build_global();
    if let Err(e) = built {
        tracing::debug!(error = %e, "rayon's global pool was already built");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn nice_of_this_thread() -> i32 {
        // SAFETY: as above.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[test]
    fn lowers_only_the_calling_thread() {
        let before = nice_of_this_thread();
        let inside = std::thread::spawn(|| {
            lower_this_thread();
            nice_of_this_thread()
        })
        .join()
        .unwrap();
        assert!(inside >= BULK_NICE, "thread nice {inside}");
        assert_eq!(nice_of_this_thread(), before);
    }
}
