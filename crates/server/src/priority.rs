//! Background work (seals, compactions, refreshing reports nobody waits for) at a lower
//! CPU priority, so it yields to requests on a machine with few cores.

/// Lowers the calling thread's CPU priority (nice 10), for good: only for threads that
/// do nothing but background work. Threads it spawns afterwards inherit it.
/// Linux gives each thread its own nice value; `renice` sets it for this thread's id,
/// read from /proc (no unsafe code needed). Failing that, the work just runs as it is.
pub fn lower_this_threads_priority() {
    let thread_id = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|link| link.file_name().and_then(|name| name.to_str()).map(str::to_string));
    let Some(thread_id) = thread_id else {
        return tracing::debug!("no /proc/thread-self; the thread keeps the normal priority");
    };
    let lowered = std::process::Command::new("renice")
        .args(["-n", "10", "-p", &thread_id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if !lowered.is_ok_and(|status| status.success()) {
        tracing::debug!("renice failed; the thread keeps the normal priority");
    }
}
