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

/// The machine's fp32 peak as measured: every thread runs independent FMA chains in registers
/// (no memory traffic), so shares of it say how close a kernel comes to what this CPU, at its
/// clock of the moment, can do. The nominal clock (`cpu MHz`) is kept for reference only:
/// turbo and power states make a peak read from it wrong in both directions.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// The CPU's model name.
    pub cpu: String,
    /// Worker threads (rayon's pool).
    pub cores: usize,
    /// Nominal clock in MHz from /proc/cpuinfo (reference only).
    pub mhz: f64,
    /// Measured f32 GFLOP/s of FMA chains on all threads.
    pub peak_gflops: f64,
}

impl Machine {
    /// Reads the CPU's name and measures the peak for about `secs` seconds.
    pub fn measure(secs: f64) -> Self {
        let mhz = cpuinfo("cpu MHz").and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
        Machine { cpu: cpu_name(), cores: rayon::current_num_threads(), mhz, peak_gflops: measured_peak_gflops(secs) }
    }
}

/// The first value of a `/proc/cpuinfo` field (Linux; `None` elsewhere).
fn cpuinfo(field: &str) -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with(field))?;
    Some(line.split(':').nth(1)?.trim().to_string())
}

/// The CPU's model name, as `lscpu` prints it: figures of time name the machine they came from.
pub fn cpu_name() -> String {
    cpuinfo("model name").unwrap_or_else(|| "unknown CPU".into())
}

/// Independent accumulators: enough to cover FMA latency x ports on current x86 cores.
const CHAINS: usize = 12;

/// FLOPs of one `fma_chains` iteration: CHAINS FMAs (2 FLOPs) per lane, as wide as the GEMM
/// kernels run on this CPU.
fn flop_per_iter() -> f64 {
    (CHAINS * 2 * if crate::kernels::has_avx512() { 16 } else { 8 }) as f64
}

/// `iters` rounds of CHAINS independent FMAs, as wide as the CPU allows (16 lanes with AVX-512,
/// which the GEMM kernels then use, else 8); returns a value so nothing is elided.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"))]
fn fma_chains(iters: u64, seed: f32) -> f32 {
    if crate::kernels::has_avx512() {
        // SAFETY: the CPU has AVX-512F (checked at run time just above).
        return unsafe { fma_chains_avx512(iters, seed) };
    }
    // SAFETY: the build enables AVX2 and FMA (the cfg above), so every CPU it runs on has them.
    unsafe { fma_chains_avx2(iters, seed) }
}

#[cfg(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"))]
#[target_feature(enable = "avx512f")]
fn fma_chains_avx512(iters: u64, seed: f32) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm512_set1_ps(0.999_99), _mm512_set1_ps(1e-6));
    let mut acc = [_mm512_set1_ps(seed); CHAINS];
    for _ in 0..iters {
        for r in acc.iter_mut() {
            *r = _mm512_fmadd_ps(*r, a, b);
        }
    }
    let sum = acc.iter().fold(_mm512_setzero_ps(), |s, r| _mm512_add_ps(s, *r));
    _mm512_reduce_add_ps(sum)
}

#[cfg(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"))]
#[target_feature(enable = "avx2,fma")]
fn fma_chains_avx2(iters: u64, seed: f32) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm256_set1_ps(0.999_99), _mm256_set1_ps(1e-6));
    let mut acc = [_mm256_set1_ps(seed); CHAINS];
    for _ in 0..iters {
        for r in acc.iter_mut() {
            *r = _mm256_fmadd_ps(*r, a, b);
        }
    }
    let mut lanes = [0.0f32; 8];
    let sum = acc.iter().fold(_mm256_setzero_ps(), |s, r| _mm256_add_ps(s, *r));
    // SAFETY: `lanes` holds 8 f32, the unaligned store writes exactly 8.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
    lanes.iter().sum()
}

/// Portable fallback: the same chains as multiply-add pairs (what the compiler vectorises).
#[cfg(not(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma")))]
fn fma_chains(iters: u64, seed: f32) -> f32 {
    let mut acc = [[seed; 8]; CHAINS];
    for _ in 0..iters {
        for r in acc.iter_mut() {
            for v in r.iter_mut() {
                *v = *v * 0.999_99 + 1e-6;
            }
        }
    }
    acc.iter().flatten().sum()
}

/// GFLOP/s of FMA chains on all rayon threads at once, best of a few rounds of `secs / 4`.
pub fn measured_peak_gflops(secs: f64) -> f64 {
    let threads = rayon::current_num_threads();
    // calibrate the iterations of one round on one thread
    let mut iters = 1u64 << 16;
    loop {
        let t0 = Instant::now();
        std::hint::black_box(fma_chains(iters, 1.0));
        let t = t0.elapsed().as_secs_f64();
        if t > 0.02 || iters > 1 << 40 {
            iters = ((iters as f64) * (secs / 4.0 / t.max(1e-9))).max(1.0) as u64;
            break;
        }
        iters *= 4;
    }
    let mut best = 0.0f64;
    for _ in 0..4 {
        let t0 = Instant::now();
        let sink: f32 = rayon::broadcast(|c| fma_chains(iters, 1.0 + c.index() as f32)).iter().sum();
        let t = t0.elapsed().as_secs_f64();
        std::hint::black_box(sink);
        best = best.max(threads as f64 * iters as f64 * flop_per_iter() / t / 1e9);
    }
    best
}

/// One throughput figure of the bench.
#[derive(Clone, Debug, Serialize)]
pub struct Throughput {
    /// What was measured.
    pub what: String,
    /// Batch size.
    pub batch: usize,
    /// Items (images or queries) per second.
    pub per_sec: f64,
    /// FLOPs actually performed per second, in GFLOP/s.
    pub gflops: f64,
    /// Share of the measured peak.
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

/// The uniform-noise batch every forward measurement here reads.
fn bench_images(net: &Network, batch: usize) -> Vec<f32> {
    let mut rng = Rng::new(5);
    (0..batch * net.in_len()).map(|_| rng.uniform()).collect()
}

/// Images/s of the plain forward pass at a batch size, timed over at least `min_secs`.
pub fn forward_rate(net: &Network, batch: usize, min_secs: f64) -> f64 {
    let x = bench_images(net, batch);
    rate(min_secs, || {
        std::hint::black_box(net.forward(&x, batch));
    }) * batch as f64
}

/// TargetNet-S forward throughput at a batch size: the plain forward pass, and the oracle's
/// probe path (first layer replaced by an AXPY along lifted directions).
pub fn forward(net: &Network, batch: usize, machine: &Machine, min_secs: f64) -> Vec<Throughput> {
    let x = bench_images(net, batch);
    let flop_full = net.infer_flops() as f64;
    let plain = forward_rate(net, batch, min_secs);
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
    // the probe path skips the first (linear) layer: it costs an AXPY over that layer's output
    let first = net.specs[0].macs(net.input) as f64 * 2.0;
    let first_out = net.specs[0].out_shape(net.input).expect("a built network has valid shapes").len() as f64;
    let flop_probe = flop_full - first + 2.0 * first_out;
    let mk = |what: &str, per_sec: f64, flop: f64| Throughput {
        what: what.into(),
        batch,
        per_sec,
        gflops: per_sec * flop / 1e9,
        share_of_peak: per_sec * flop / 1e9 / machine.peak_gflops,
    };
    vec![mk("forward (images/s)", plain, flop_full), mk("oracle probes (queries/s)", probe, flop_probe)]
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
