//! Threads that must never slow the cameras (clip encoding, the web server) run at the
//! lowest priority.

/// Lowers the calling thread to the lowest priority (nice 19); `what` names it in the log
/// line should that fail. On Linux the nice value is a thread's own, and the threads it
/// starts inherit it: GStreamer's streaming thread and x264's workers, created when a clip
/// encoder starts, and tiny_http's connection threads, created by the web server's thread,
/// run at it too. A camera on a busy core measured 108 ms alert latency p99 against 23 ms
/// while its clips encoded at the normal priority (tests/clips.rs, each run pinned to one
/// core).
pub fn lowest(what: &str) {
    // SAFETY: plain system calls on the calling thread's own id.
    let r = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19)
    };
    if r != 0 {
        tracing::debug!(
            "cannot lower the priority of {what}: {}",
            std::io::Error::last_os_error()
        );
    }
}
