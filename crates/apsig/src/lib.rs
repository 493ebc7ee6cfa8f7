//! apsig: how much a classifier leaks about its secret inputs through a change bit.
//!
//! The modules follow the data flow of an attack:
//! `data -> model (target M) -> oracle -> directions -> signature -> decoder -> eval -> report`.
#![warn(missing_docs)]

pub mod attributes;
pub mod error;
pub mod io;
pub mod kernels;
pub mod model;
pub mod nn;
pub mod rng;

pub use apsig_data as data;
pub use error::{Error, Result};

/// Index of the largest value (first one on ties), the top-1 decision.
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// Progress of long work, reported by the library and drawn by the CLI (progress bars).
pub trait Progress: Sync {
    /// A stage of `total` units starts.
    fn begin(&self, _stage: &str, _total: u64) {}
    /// `n` more units of the stage are done.
    fn advance(&self, _n: u64) {}
    /// A line for the user.
    fn message(&self, _msg: &str) {}
    /// The stage is over.
    fn end(&self) {}
}

/// Reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}
pub mod bench;
pub mod decoder;
pub mod defence;
pub mod directions;
pub mod eval;
pub mod fuzzing;
pub mod oracle;
pub mod pipeline;
pub mod signature;
pub mod study;
