//! Where credit's computations run: one rayon pool, entered by every library entry point
//! (training, evaluation, analysis, export, benchmarks) through [`compute`], with the pool's
//! other threads polling for work while it computes (see [`AwakeWorkers`]). A library caller
//! gets the same speed as the `credit` binary.

use std::sync::{Mutex, OnceLock};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::workers::AwakeWorkers;

/// The pool: as many threads as `RAYON_NUM_THREADS` or the available cores.
fn pool() -> &'static ThreadPool {
    static POOL: OnceLock<ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        ThreadPoolBuilder::new()
            .thread_name(|i| format!("credit-{i}"))
            .build()
            .expect("a thread pool")
    })
}

/// Runs `work` on a thread of credit's pool, so that the kernels' parallel operations start
/// from inside it instead of being handed to it and waited for, with the other threads
/// polling for work. Computations of one process take turns (they would share the same cores
/// anyway); a computation that calls another runs it directly.
pub fn compute<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    let pool = pool();
    if pool.current_thread_index().is_some() {
        return work();
    }
    static TURN: Mutex<()> = Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    pool.install(|| {
        let _awake = AwakeWorkers::start();
        work()
    })
}

/// The number of threads of credit's pool.
pub fn threads() -> usize {
    pool().current_num_threads()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn computations_run_in_the_pool_nest_and_take_turns() {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                std::thread::spawn(|| {
                    compute(|| {
                        let inner = compute(|| (0..1000usize).into_par_iter().sum::<usize>());
                        assert!(pool().current_thread_index().is_some());
                        inner
                    })
                })
            })
            .collect();
        let sums: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(sums, vec![499_500; 3]);
    }
}
