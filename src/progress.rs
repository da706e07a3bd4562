//! Progress bars on stderr (only when it is a terminal and not `--quiet`).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ware_store::pack::Progress;

/// A byte-count progress bar, hidden unless stderr is a terminal.
pub struct Bar(ProgressBar);

impl Bar {
    /// A bar labelled `what` ("packing", …); hidden when `quiet` or stderr is not a terminal.
    pub fn new(what: &str, quiet: bool) -> Bar {
        let pb = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        if quiet || !std::io::stderr().is_terminal() {
            pb.set_draw_target(ProgressDrawTarget::hidden());
        }
        pb.set_style(
            ProgressStyle::with_template(
                "{msg:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_message(what.to_string());
        Bar(pb)
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Bar {
    fn total(&self, bytes: u64) {
        self.0.set_length(bytes);
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
        if self.0.length().is_some_and(|l| self.0.position() > l) {
            self.0.set_length(self.0.position());
        }
    }
}
