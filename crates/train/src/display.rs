//! What training shows while it runs: a progress bar with the last epoch's numbers on a
//! terminal that the process has in the foreground, one plain line per epoch otherwise.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::metrics::EpochMetrics;

/// How training reports its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// A progress bar over each epoch's batches, epoch lines above it.
    Dashboard,
    /// One line per epoch.
    Lines,
    /// Nothing.
    Quiet,
}

impl Display {
    /// [`Display::Dashboard`] when standard output is a terminal whose foreground process
    /// group is this process's (a job put in the background with `&` or `bg` gets
    /// [`Display::Lines`], so it never waits for the terminal), else [`Display::Lines`].
    pub fn automatic() -> Self {
        if owns_terminal() {
            Display::Dashboard
        } else {
            Display::Lines
        }
    }
}

/// Whether standard output is a terminal and this process is in its foreground.
fn owns_terminal() -> bool {
    let stdout = std::io::stdout();
    if !stdout.is_terminal() {
        return false;
    }
    match rustix::termios::tcgetpgrp(&stdout) {
        Ok(group) => group == rustix::process::getpgrp(),
        Err(_) => false,
    }
}

/// The one-line summary of an epoch.
pub fn epoch_line(row: &EpochMetrics, total_epochs: usize) -> String {
    format!(
        "epoch {:>3}/{}  lr {:.3e}  train loss {:.4} acc {:6.2}%  test loss {:.4} acc {:6.2}%  {:.2} s",
        row.epoch,
        total_epochs,
        row.learning_rate,
        row.train_loss,
        row.train_accuracy_pct,
        row.test_loss,
        row.test_accuracy_pct,
        row.train_seconds
    )
}

/// The progress of one training session.
pub(crate) struct Progress {
    display: Display,
    total_epochs: usize,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub(crate) fn new(display: Display, total_epochs: usize) -> Self {
        Self {
            display,
            total_epochs,
            bar: None,
        }
    }

    /// Epoch `epoch`'s training starts, over `images` images.
    pub(crate) fn start_epoch(&mut self, epoch: usize, images: usize) {
        if self.display != Display::Dashboard {
            return;
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let bar = ProgressBar::with_draw_target(Some(images as u64), ProgressDrawTarget::stdout());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:32}] {pos}/{len} images, {elapsed}  (Ctrl-C stops; --resume continues)",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("epoch {epoch:>3}/{}", self.total_epochs));
        self.bar = Some(bar);
    }

    /// `images` of the epoch's training images are done.
    pub(crate) fn images_done(&self, images: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(images as u64);
        }
    }

    /// The epoch's row is complete (its checkpoint exists): its line, above the bar of the
    /// epoch training now, if any.
    pub(crate) fn epoch_done(&mut self, row: &EpochMetrics) {
        let line = epoch_line(row, self.total_epochs);
        match (self.display, &self.bar) {
            (Display::Quiet, _) => {}
            (_, Some(bar)) => bar.suspend(|| {
                // A closed standard output (`credit train | head`) must not stop training.
                let _ = writeln!(std::io::stdout(), "{line}");
            }),
            (_, None) => {
                let _ = writeln!(std::io::stdout(), "{line}");
            }
        }
    }

    /// Training ends (finished or stopped): the bar is removed.
    pub(crate) fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
