//! apsig's progress reports forwarded to a Python callback `callback(stage, done, total)`
//! (the package turns it into tqdm bars). Reports come from Rust worker threads with the GIL
//! released; the callback is called at most every 0.2 s per stage, plus at each stage's
//! start and end, so it costs nothing measurable.

use pyo3::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(200);

pub struct PyProgress {
    callback: Option<Py<PyAny>>,
    stage: Mutex<(String, u64, Instant)>,
    done: AtomicU64,
}

impl PyProgress {
    /// `progress` as the package takes it: a callable, or `True` for tqdm bars when tqdm is
    /// installed (the package's `apsig._progress` makes them), or `False` / `None` for none.
    pub fn new(py: Python<'_>, progress: Option<Bound<'_, PyAny>>) -> PyResult<Self> {
        let callback = match progress {
            Some(p) if p.is_callable() => Some(p.unbind()),
            Some(p) if p.is_truthy()? => {
                let bars = py.import("apsig")?.getattr("_progress")?.call1((true,))?;
                (!bars.is_none()).then(|| bars.unbind())
            }
            _ => None,
        };
        Ok(PyProgress { callback, stage: Mutex::new((String::new(), 0, Instant::now())), done: AtomicU64::new(0) })
    }

    fn report(&self, stage: &str, done: u64, total: u64) {
        if let Some(cb) = &self.callback {
            Python::attach(|py| {
                // a failing progress callback must not end the work it reports on
                if let Err(e) = cb.call1(py, (stage, done, total)) {
                    e.print(py);
                }
            });
        }
    }
}

impl apsig::Progress for PyProgress {
    fn begin(&self, stage: &str, total: u64) {
        self.done.store(0, Ordering::Relaxed);
        *self.stage.lock().expect("progress lock") = (stage.to_string(), total, Instant::now());
        self.report(stage, 0, total);
    }

    fn advance(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        let due = {
            let mut s = self.stage.lock().expect("progress lock");
            let due = s.2.elapsed() >= EVERY;
            if due {
                s.2 = Instant::now();
            }
            due.then(|| (s.0.clone(), s.1))
        };
        if let Some((stage, total)) = due {
            self.report(&stage, done, total);
        }
    }

    fn message(&self, msg: &str) {
        self.report(msg, 0, 0);
    }

    fn end(&self) {
        let (stage, total) = {
            let s = self.stage.lock().expect("progress lock");
            (s.0.clone(), s.1)
        };
        self.report(&stage, self.done.load(Ordering::Relaxed).max(total), total);
    }
}
