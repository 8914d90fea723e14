//! Keeping the other threads of the rayon pool awake between parallel operations.
//!
//! A training step of the paper's network runs a dozen parallel operations of 0.1-1 ms with
//! serial work between them. A rayon worker that finds no work goes to sleep within
//! microseconds, and waking it costs up to a quarter of a millisecond on a virtual machine,
//! each time: with two threads the step was only 1.2 times faster than with one. While an
//! [`AwakeWorkers`] guard lives, every other worker of the current pool runs a job that looks
//! for work without sleeping, yielding its core to the operating system between looks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// While alive, the other workers of the current rayon pool poll for work instead of sleeping.
/// Dropping it lets them sleep again.
#[must_use = "the workers sleep again when the guard is dropped"]
pub struct AwakeWorkers {
    stop: Arc<AtomicBool>,
    polling: Arc<AtomicUsize>,
}

impl AwakeWorkers {
    /// Starts a polling job on each other worker of the pool the caller runs in (on the
    /// global pool when the caller is outside any pool), and returns once they all poll.
    pub fn start() -> Self {
        let others = rayon::current_num_threads().saturating_sub(1);
        let stop = Arc::new(AtomicBool::new(false));
        let polling = Arc::new(AtomicUsize::new(0));
        for _ in 0..others {
            let (stop, polling) = (stop.clone(), polling.clone());
            rayon::spawn(move || {
                polling.fetch_add(1, Ordering::SeqCst);
                while !stop.load(Ordering::Relaxed) {
                    // Runs one pending job of the pool, stolen from any worker, if there is one.
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        std::thread::yield_now();
                    }
                }
                polling.fetch_sub(1, Ordering::SeqCst);
            });
        }
        // Waiting without taking part in the pool keeps the polling jobs off this thread.
        while polling.load(Ordering::SeqCst) < others {
            std::thread::yield_now();
        }
        Self { stop, polling }
    }
}

impl Drop for AwakeWorkers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        while self.polling.load(Ordering::SeqCst) > 0 {
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_workers_take_part_in_parallel_work_and_stop_when_dropped() {
        use rayon::prelude::*;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| {
            let awake = AwakeWorkers::start();
            assert_eq!(awake.polling.load(Ordering::SeqCst), 2);
            // Work stolen by the polling jobs runs inside them, on the other workers.
            let threads: std::collections::HashSet<_> = (0..10_000)
                .into_par_iter()
                .with_max_len(1)
                .map(|_| rayon::current_thread_index())
                .collect();
            assert!(threads.len() > 1, "{threads:?}");
            let polling = awake.polling.clone();
            drop(awake);
            assert_eq!(polling.load(Ordering::SeqCst), 0);
        });
    }
}
