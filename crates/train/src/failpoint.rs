//! Named points at which a test can have the process killed, to check that a run survives a
//! crash at the worst moments (between writing a file and renaming it into place, between the
//! files of a checkpoint).
//!
//! `CREDIT_FAILPOINT=NAME:N` kills the process with SIGKILL the `N`-th time (from 1) it
//! passes the point `NAME`; without the variable a point costs one atomic load. The names are
//! those passed to [`hit`]: `rename` (every atomic file write, after the temporary file is
//! complete), `checkpoint` (between a checkpoint's records and its state file), `prune`
//! (between removing an old checkpoint's state file and its records) and `final` (between
//! `model.bpk` and `summary.json`).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The environment variable that arms a failpoint.
pub const FAILPOINT_VAR: &str = "CREDIT_FAILPOINT";

struct Armed {
    name: String,
    at: usize,
    passed: AtomicUsize,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let value = std::env::var(FAILPOINT_VAR).ok()?;
            let (name, at) = value.split_once(':')?;
            Some(Armed {
                name: name.to_string(),
                at: at.parse().ok()?,
                passed: AtomicUsize::new(0),
            })
        })
        .as_ref()
}

/// Passes the point `name`: kills the process if it is the armed one and this is the armed
/// passage.
pub fn hit(name: &str) {
    if let Some(armed) = armed()
        && armed.name == name
        && armed.passed.fetch_add(1, Ordering::SeqCst) + 1 == armed.at
    {
        // SIGKILL: no destructor, no buffered write, no rename runs after this.
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        std::process::abort();
    }
}
