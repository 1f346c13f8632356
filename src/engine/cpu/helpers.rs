//! The CPU engine's helper threads: the threads that share a step's jobs with the thread
//! that calls the engine.
//!
//! They are persistent and parked between steps, and steered off the caller's core. Both
//! were measured on the 2-core VM, where a live 30 fps stream steps after about 30 ms of
//! idleness (the idle core halts):
//! - a thread spawned per step started 2.4-2.8 ms late on average: Linux queued it on the
//!   busy caller's core, the halted one looking unavailable, until the next load balance;
//!   a parked pool thread, unsteered, did the same (2.2 ms);
//! - a parked thread steered to the other core started within 0.15 ms.
//!
//! The default model's step, paced at 30 fps outside the pipeline, went from p50 6.8 / p99
//! 9.8 ms (spawned) to 4.8 / 7.4 ms (helpers); back to back it takes 3.6 ms either way.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use crate::{Error, Result};

/// `count` parked threads that run the jobs a step hands them.
#[derive(Debug)]
pub struct Helpers {
    pool: rayon::ThreadPool,
    steer: Steering,
}

impl Helpers {
    pub fn new(count: usize) -> Result<Self> {
        let tids = Arc::new(Mutex::new(Vec::with_capacity(count)));
        let record = tids.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(count.max(1))
            .thread_name(|i| format!("cpu engine helper {i}"))
            .start_handler(move |_| {
                if let Some(tid) = current_tid() {
                    record.lock().unwrap_or_else(|e| e.into_inner()).push(tid);
                }
            })
            .build()
            .map_err(|e| Error::Engine(format!("cannot start the CPU engine's threads: {e}")))?;
        // Every helper has run its start handler once it has run a broadcast: the first
        // step then steers them all.
        pool.broadcast(|_| ());
        Ok(Helpers {
            pool,
            steer: Steering::new(tids),
        })
    }

    /// Runs `f` on the calling thread; what it spawns on the scope runs on the helpers,
    /// and `scope` returns once all of it is done.
    pub fn scope<'s, R>(&self, f: impl FnOnce(&rayon::Scope<'s>) -> R) -> R {
        self.steer.away_from_caller();
        self.pool.in_place_scope(f)
    }
}

/// Keeps the helpers off the core the caller runs on (Linux only: elsewhere no core is
/// known and it does nothing).
#[derive(Debug)]
struct Steering {
    /// The helpers' thread ids, as they start.
    tids: Arc<Mutex<Vec<i32>>>,
    /// The cores this process may use, when more than one.
    cpus: Vec<usize>,
    /// The caller's core the helpers were last steered away from (-1: never).
    from: AtomicI32,
}

impl Steering {
    fn new(tids: Arc<Mutex<Vec<i32>>>) -> Self {
        let cpus = allowed_cpus();
        Steering {
            tids,
            cpus: if cpus.len() > 1 { cpus } else { Vec::new() },
            from: AtomicI32::new(-1),
        }
    }

    fn away_from_caller(&self) {
        if self.cpus.is_empty() {
            return;
        }
        let Some(here) = current_cpu() else { return };
        if self.from.swap(here as i32, Ordering::Relaxed) == here as i32 {
            return;
        }
        let others: Vec<usize> = self.cpus.iter().copied().filter(|&c| c != here).collect();
        for &tid in self.tids.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            pin(tid, &others);
        }
    }
}

/// The core the calling thread runs on.
#[cfg(target_os = "linux")]
fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu has no preconditions.
    usize::try_from(unsafe { libc::sched_getcpu() }).ok()
}

/// Lets thread `tid` run on `cpus` only (indices from `allowed_cpus`).
#[cfg(target_os = "linux")]
fn pin(tid: i32, cpus: &[usize]) {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET takes indices below
    // CPU_SETSIZE, which `allowed_cpus` guarantees; sched_setaffinity only reads the set.
    // A failure (the thread has exited) leaves the thread where it was, which is harmless.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

#[cfg(target_os = "linux")]
fn current_tid() -> Option<i32> {
    // SAFETY: gettid has no preconditions.
    Some(unsafe { libc::gettid() })
}

#[cfg(not(target_os = "linux"))]
fn current_tid() -> Option<i32> {
    None
}

#[cfg(not(target_os = "linux"))]
fn current_cpu() -> Option<usize> {
    None
}

#[cfg(not(target_os = "linux"))]
fn pin(_tid: i32, _cpus: &[usize]) {}

/// The cores the calling thread may run on.
#[cfg(target_os = "linux")]
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills the zeroed set; CPU_ISSET reads indices below
    // CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

#[cfg(not(target_os = "linux"))]
fn allowed_cpus() -> Vec<usize> {
    Vec::new()
}
