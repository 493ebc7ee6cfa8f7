//! The GEMMs of one training step of the paper's decoder (batch 128, 200 inputs), each timed
//! alone on hot operands: GFLOP/s per shape and milliseconds per step, to set beside the whole
//! step's rate from `train_profile` (`cargo run --release -p apsig --example gemm_shapes`).
//! The first transposed convolution works a chunk of 20 images at a time (see
//! `nn/training.rs`), so its shapes have 980 rows and run 6.4 times per step.
use apsig::kernels::{matmul, Threads, Trans};

fn main() {
    let per_step_ct1 = 128.0 / 20.0;
    let shapes = [
        ("linear forward", 128, 6272, 200, Trans::No, Trans::No, 1.0),
        ("linear weight gradient", 200, 6272, 128, Trans::Yes, Trans::No, 1.0),
        ("convT 1 forward", 980, 1024, 128, Trans::No, Trans::Yes, per_step_ct1),
        ("convT 1 weight gradient", 1024, 128, 980, Trans::Yes, Trans::No, per_step_ct1),
        ("convT 1 input gradient", 980, 128, 1024, Trans::No, Trans::No, per_step_ct1),
        ("convT 2 forward", 25088, 16, 64, Trans::No, Trans::Yes, 1.0),
        ("convT 2 weight gradient", 16, 64, 25088, Trans::Yes, Trans::No, 1.0),
        ("convT 2 input gradient", 25088, 64, 16, Trans::No, Trans::No, 1.0),
    ];
    let mut step_ms = 0.0;
    for (name, m, n, k, ta, tb, per_step) in shapes {
        let (a, b, mut c) = (vec![0.5f32; m * k], vec![0.25f32; k * n], vec![0f32; m * n]);
        let flop = 2.0 * (m * n * k) as f64;
        let reps = (2e9 / flop).max(3.0) as usize;
        matmul(m, n, k, &a, ta, &b, tb, &mut c, false, Threads::All);
        let t = std::time::Instant::now();
        for _ in 0..reps {
            matmul(m, n, k, &a, ta, &b, tb, &mut c, true, Threads::All);
        }
        let secs = t.elapsed().as_secs_f64() / reps as f64;
        let ms = secs * 1e3 * per_step;
        step_ms += ms;
        println!("{name:<24} {m:>6} x {n:>5} x {k:>6}: {:>6.1} GFLOP/s, {ms:>6.2} ms per step", flop / secs / 1e9);
    }
    println!("all GEMMs of a step: {step_ms:.1} ms, at most {:.0} images/s if nothing else took time", 128e3 / step_ms);
}
