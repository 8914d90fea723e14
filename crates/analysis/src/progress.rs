//! What a long analysis or evaluation shows while it runs: on a terminal it owns, a bar over
//! the current stage's steps with the stage's name and the time so far; otherwise one plain
//! line per finished stage with its seconds ([`Display::Lines`]); or nothing.

use std::io::Write as _;
use std::time::Instant;

use credit_train::Display;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The progress of one command through its stages.
pub struct Progress {
    display: Display,
    /// What the command does, the lines' prefix ("analysis").
    what: String,
    started: Instant,
    stage: Option<(String, Instant)>,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Progress shown as `display` says, its lines prefixed with `what`.
    pub fn new(display: Display, what: &str) -> Self {
        Self {
            display,
            what: what.to_string(),
            started: Instant::now(),
            stage: None,
            bar: None,
        }
    }

    /// Progress that shows nothing.
    pub fn quiet() -> Self {
        Self::new(Display::Quiet, "")
    }

    /// The previous stage is done; `name` starts, with `steps` steps (1 for a stage that
    /// reports no steps of its own).
    pub fn stage(&mut self, name: &str, steps: usize) {
        self.end_stage();
        if self.display == Display::Dashboard {
            let bar = ProgressBar::with_draw_target(
                Some(steps.max(1) as u64),
                ProgressDrawTarget::stdout(),
            );
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:24}] {pos}/{len} {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!(
                "{} {:5.1} s",
                self.what,
                self.started.elapsed().as_secs_f64()
            ));
            bar.set_message(name.to_string());
            self.bar = Some(bar);
        }
        self.stage = Some((name.to_string(), Instant::now()));
    }

    /// One step of the current stage is done.
    pub fn step(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_prefix(format!(
                "{} {:5.1} s",
                self.what,
                self.started.elapsed().as_secs_f64()
            ));
        }
    }

    /// Seconds since the progress was made.
    pub fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The last stage is done: its line, and the bar removed.
    pub fn finish(&mut self) {
        self.end_stage();
    }

    fn end_stage(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if let Some((name, started)) = self.stage.take()
            && self.display == Display::Lines
        {
            // A closed standard output (`credit analyze | head`) must not stop the work.
            let _ = writeln!(
                std::io::stdout(),
                "{}: {name} ({:.1} s)",
                self.what,
                started.elapsed().as_secs_f64()
            );
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
