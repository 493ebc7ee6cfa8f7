//! Progress bars for the library's long stages (drawn on stderr, hidden when not a terminal).

use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Mutex;

pub struct Bars {
    bar: Mutex<Option<ProgressBar>>,
    quiet: bool,
}

impl Bars {
    pub fn new(quiet: bool) -> Self {
        Bars { bar: Mutex::new(None), quiet }
    }
}

impl apsig::Progress for Bars {
    fn begin(&self, stage: &str, total: u64) {
        if self.quiet {
            return;
        }
        let pb = ProgressBar::new(total);
        pb.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{elapsed_precise}] {bar:40} {pos}/{len} ({per_sec}, eta {eta}) {msg}",
            )
            .expect("valid template"),
        );
        pb.set_prefix(stage.to_string());
        *self.bar.lock().unwrap() = Some(pb);
    }
    fn advance(&self, n: u64) {
        if let Some(b) = self.bar.lock().unwrap().as_ref() {
            b.inc(n);
        }
    }
    fn message(&self, msg: &str) {
        match self.bar.lock().unwrap().as_ref() {
            Some(b) if !b.is_finished() => b.set_message(msg.to_string()),
            _ => tracing::info!("{msg}"),
        }
    }
    fn end(&self) {
        if let Some(b) = self.bar.lock().unwrap().take() {
            b.finish();
        }
    }
}
