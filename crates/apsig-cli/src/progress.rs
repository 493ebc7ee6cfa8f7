//! Progress of the library's long stages on stderr: bars on a terminal; on a pipe or a log
//! file, as cargo does, one line per stage start and end and a line with count, rate and ETA
//! every few seconds (`APSIG_PROGRESS_SECS`, default 15). `--quiet` silences both.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Bars {
    mode: Mode,
}

enum Mode {
    Quiet,
    Bar(Mutex<Option<ProgressBar>>),
    Lines(Mutex<Lines>),
}

/// The line printer's state: the stage under way and when it last printed.
struct Lines {
    every: Duration,
    started: Instant,
    stage: Option<Stage>,
}

struct Stage {
    name: String,
    total: u64,
    done: u64,
    began: Instant,
    printed: Instant,
}

impl Bars {
    pub fn new(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bar(Mutex::new(None))
        } else {
            let secs = std::env::var("APSIG_PROGRESS_SECS").ok().and_then(|s| s.parse::<f64>().ok());
            let every = Duration::from_secs_f64(secs.filter(|s| s.is_finite() && *s >= 0.0).unwrap_or(15.0));
            Mode::Lines(Mutex::new(Lines { every, started: Instant::now(), stage: None }))
        };
        Bars { mode }
    }
}

impl Lines {
    fn print(&self, text: &str) {
        eprintln!("[{:>7.1}s] {text}", self.started.elapsed().as_secs_f64());
    }
}

impl Stage {
    fn rate(&self) -> f64 {
        self.done as f64 / self.began.elapsed().as_secs_f64().max(1e-9)
    }
    fn status(&self) -> String {
        let rate = self.rate();
        let left = self.total.saturating_sub(self.done) as f64 / rate.max(1e-9);
        format!("{}: {}/{} ({:.1}/s, eta {})", self.name, self.done, self.total, rate, duration(left))
    }
}

/// `75 s`, `12m05s`, `1h02m`: short and exact enough for an ETA.
fn duration(secs: f64) -> String {
    let s = secs.round().min(1e9) as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

impl apsig::Progress for Bars {
    fn begin(&self, stage: &str, total: u64) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Bar(bar) => {
                let pb = ProgressBar::new(total);
                pb.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>12} [{elapsed_precise}] {bar:40} {pos}/{len} ({per_sec}, eta {eta}) {msg}",
                    )
                    .expect("valid template"),
                );
                pb.set_prefix(stage.to_string());
                *bar.lock().unwrap() = Some(pb);
            }
            Mode::Lines(lines) => {
                let mut l = lines.lock().unwrap();
                let now = Instant::now();
                l.print(&format!("{stage}: started, {total} to do"));
                l.stage = Some(Stage { name: stage.to_string(), total, done: 0, began: now, printed: now });
            }
        }
    }
    fn advance(&self, n: u64) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Bar(bar) => {
                if let Some(b) = bar.lock().unwrap().as_ref() {
                    b.inc(n);
                }
            }
            Mode::Lines(lines) => {
                let mut l = lines.lock().unwrap();
                let every = l.every;
                let Some(s) = l.stage.as_mut() else { return };
                s.done += n;
                if s.printed.elapsed() >= every && s.done < s.total {
                    s.printed = Instant::now();
                    let status = s.status();
                    l.print(&status);
                }
            }
        }
    }
    fn message(&self, msg: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Bar(bar) => match bar.lock().unwrap().as_ref() {
                Some(b) if !b.is_finished() => b.set_message(msg.to_string()),
                _ => tracing::info!("{msg}"),
            },
            Mode::Lines(lines) => lines.lock().unwrap().print(msg),
        }
    }
    fn end(&self) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Bar(bar) => {
                if let Some(b) = bar.lock().unwrap().take() {
                    b.finish();
                }
            }
            Mode::Lines(lines) => {
                let mut l = lines.lock().unwrap();
                if let Some(s) = l.stage.take() {
                    let secs = s.began.elapsed().as_secs_f64();
                    l.print(&format!(
                        "{}: done, {}/{} in {} ({:.1}/s)",
                        s.name,
                        s.done,
                        s.total,
                        duration(secs),
                        s.rate()
                    ));
                }
            }
        }
    }
}
