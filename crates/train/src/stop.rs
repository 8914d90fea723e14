//! Stopping a run on request: SIGINT (Ctrl-C) and SIGTERM set a flag, which training passes
//! on to burn's `Interrupter` (polled every 2 ms); burn then ends the epoch's work at the
//! next batch without saving a mid-epoch state, and the run resumes from its last
//! checkpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A request to stop, shared between whoever asks (a signal, a test) and training.
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    /// 0 while nobody asked; otherwise the signal number that asked (or [`StopSignal::MANUAL`]).
    requested: Arc<AtomicUsize>,
}

impl StopSignal {
    /// The number [`StopSignal::request`] records: a stop asked by code, not by a signal.
    pub const MANUAL: usize = usize::MAX;

    /// A signal nobody has asked yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A signal set by SIGINT and SIGTERM: the first of them asks training to stop, a second
    /// one ends the process at once (exit status 128 + the signal's number).
    ///
    /// # Errors
    /// If the handlers cannot be installed.
    pub fn on_interrupt_and_terminate() -> std::io::Result<Self> {
        let stop = Self::new();
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // The second signal exits: the flag checked is set by the first.
            let asked = Arc::new(std::sync::atomic::AtomicBool::new(false));
            signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, asked.clone())?;
            signal_hook::flag::register(signal, asked)?;
            let requested = stop.requested.clone();
            signal_hook::flag::register_usize(signal, requested, signal as usize)?;
        }
        Ok(stop)
    }

    /// Asks training to stop.
    pub fn request(&self) {
        let _ =
            self.requested
                .compare_exchange(0, Self::MANUAL, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The signal that asked to stop, if any ([`StopSignal::MANUAL`] for [`StopSignal::request`]).
    pub fn requested(&self) -> Option<usize> {
        match self.requested.load(Ordering::SeqCst) {
            0 => None,
            signal => Some(signal),
        }
    }

    /// The exit status of a process stopped by this signal: 128 + the signal number (130 for
    /// SIGINT, 143 for SIGTERM), 130 for a manual stop.
    pub fn exit_code(&self) -> u8 {
        match self.requested() {
            Some(signal) if signal < 128 => 128 + signal as u8,
            _ => 130,
        }
    }
}

/// Sends SIGTERM to process `pid` (a child task that must stop cleanly too); a process that
/// is gone already is no error.
pub fn terminate(pid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_request_is_seen_and_maps_to_130() {
        let stop = StopSignal::new();
        assert_eq!(stop.requested(), None);
        let shared = stop.clone();
        shared.request();
        assert_eq!(stop.requested(), Some(StopSignal::MANUAL));
        assert_eq!(stop.exit_code(), 130);
    }
}
