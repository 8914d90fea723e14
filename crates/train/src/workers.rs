//! Keeping the other threads of the rayon pool awake between parallel operations.
//!
//! A training step of the paper's network runs a dozen parallel operations of 0.1-1 ms with
//! serial work between them. A rayon worker that finds no work goes to sleep within
//! microseconds, and waking it costs up to a quarter of a millisecond on a virtual machine,
//! each time: with two threads the step was only 1.2 times faster than with one. While an
//! [`AwakeWorkers`] guard lives, every other worker of the current pool runs a job that looks
//! for work without sleeping, yielding its core to the operating system between looks, and
//! pausing between looks once it has found nothing for a while.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a polling worker keeps looking for work without pause after its last job: longer
/// than the serial stretches of a training step.
const IDLE_SPIN: Duration = Duration::from_millis(2);

/// The pause between looks once a worker has been idle for [`IDLE_SPIN`] (data loading,
/// writing files), so that idle polling workers cost little CPU time.
const IDLE_NAP: Duration = Duration::from_micros(100);

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
                let mut last_work = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    // Runs one pending job of the pool, stolen from any worker, if there is one.
                    if rayon::yield_now() == Some(rayon::Yield::Executed) {
                        last_work = Instant::now();
                    } else if last_work.elapsed() < IDLE_SPIN {
                        std::thread::yield_now();
                    } else {
                        std::thread::sleep(IDLE_NAP);
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
    fn workers_poll_while_the_guard_lives_and_stop_when_it_is_dropped() {
        use rayon::prelude::*;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| {
            let awake = AwakeWorkers::start();
            assert_eq!(awake.polling.load(Ordering::SeqCst), 2);
            // Parallel work completes while they poll (the jobs they steal run inside them).
            let sum: usize = (0..10_000usize).into_par_iter().with_max_len(1).sum();
            assert_eq!(sum, 10_000 * 9_999 / 2);
            let polling = awake.polling.clone();
            drop(awake);
            assert_eq!(polling.load(Ordering::SeqCst), 0);
        });
    }
}
