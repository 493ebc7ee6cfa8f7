//! Throughput measurements for `apsig bench`: forward passes, signature extraction and
//! decoder training, with FLOP/s against the machine's fp32 peak.

use crate::directions::Directions;
use crate::model::Arch;
use crate::nn::{Network, Shape};
use crate::oracle::{LiftedDirections, Probe};
use crate::rng::Rng;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// The machine's nominal fp32 peak: cores x clock x 32 FLOP/cycle (two 8-wide FMA units).
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Worker threads (rayon's pool).
    pub cores: usize,
    /// Clock in MHz.
    pub mhz: f64,
    /// Peak f32 GFLOP/s of all cores.
    pub peak_gflops: f64,
}

impl Machine {
    /// This machine: its worker threads and clock (from /proc/cpuinfo).
    pub fn read() -> Self {
        let cores = rayon::current_num_threads();
        let mhz = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("cpu MHz"))
                    .and_then(|l| l.split(':').nth(1))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(f64::NAN);
        Machine { cores, mhz, peak_gflops: cores as f64 * mhz / 1000.0 * 32.0 }
    }
}

/// A measured rate of one operation.
#[derive(Clone, Debug, Serialize)]
pub struct Throughput {
    /// What was measured.
    pub what: String,
    /// Inputs per call.
    pub batch: usize,
    /// Inputs per second.
    pub per_sec: f64,
    /// Achieved GFLOP/s.
    pub gflops: f64,
    /// `gflops` over the machine's peak.
    pub share_of_peak: f64,
}

/// Runs `f` repeatedly for at least `min_secs` (after one warm-up) and returns calls/s.
pub fn rate(min_secs: f64, mut f: impl FnMut()) -> f64 {
    f();
    let t0 = Instant::now();
    let mut calls = 0u64;
    while t0.elapsed().as_secs_f64() < min_secs || calls < 3 {
        f();
        calls += 1;
    }
    calls as f64 / t0.elapsed().as_secs_f64()
}

/// TargetNet-S forward throughput at a batch size: the plain forward pass, and the oracle's
/// probe path (first layer replaced by an AXPY along lifted directions).
pub fn forward(net: &Network, batch: usize, machine: &Machine, min_secs: f64) -> Vec<Throughput> {
    let mut rng = Rng::new(5);
    let x: Vec<f32> = (0..batch * net.in_len()).map(|_| rng.uniform()).collect();
    let flop_full = 2.0 * net.macs() as f64;
    let plain = rate(min_secs, || {
        std::hint::black_box(net.forward(&x, batch));
    }) * batch as f64;
    let dirs = Directions::generate(
        &crate::directions::DirectionConfig { strategy: crate::directions::Strategy::Gaussian, k: 100, seed: 1 },
        net.input,
    )
    .expect("valid");
    let lifted = Arc::new(LiftedDirections::new(net, &dirs));
    let oracle =
        crate::oracle::LocalOracle::new(Arc::new(net.clone()), &x[..net.in_len()], Some(lifted)).expect("valid secret");
    let probes: Vec<Probe> = (0..batch).map(|i| Probe { dir: (i % 100) as u32, eps: 1.0 + (i % 7) as f32 }).collect();
    use crate::oracle::ChangeOracle;
    let probe = rate(min_secs, || {
        std::hint::black_box(oracle.changed_along(&dirs, &probes).expect("valid probes"));
    }) * batch as f64;
    let first = net.specs[0].macs(net.input) as f64 * 2.0;
    let mk = |what: &str, per_sec: f64, flop: f64| Throughput {
        what: what.into(),
        batch,
        per_sec,
        gflops: per_sec * flop / 1e9,
        share_of_peak: per_sec * flop / 1e9 / machine.peak_gflops,
    };
    vec![mk("forward (images/s)", plain, flop_full), mk("oracle probes (queries/s)", probe, flop_full - first)]
}

/// A TargetNet-S with random weights for an input shape (speed does not depend on training).
pub fn targetnet(seed: u64) -> Network {
    let s = Shape::new(28, 28, 1);
    Network::new(s, Arch::TargetNetS.layers(s, 10, 0), seed).expect("valid architecture")
}

/// Peak resident memory of this process so far, in MiB (Linux; NaN elsewhere).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}
