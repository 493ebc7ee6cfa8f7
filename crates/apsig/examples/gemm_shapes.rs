use apsig::kernels::{matmul, Threads, Trans};
fn main() {
    let shapes: &[(&str, usize, usize, usize, Trans, Trans)] = &[
        ("lin fwd", 128, 6272, 200, Trans::No, Trans::No),
        ("lin dW", 200, 6272, 128, Trans::Yes, Trans::No),
        ("ct1 fwd", 980, 1024, 128, Trans::No, Trans::Yes),
        ("ct1 dW", 1024, 128, 980, Trans::Yes, Trans::No),
        ("ct1 dX", 980, 128, 1024, Trans::No, Trans::No),
        ("ct2 fwd", 25088, 16, 64, Trans::No, Trans::Yes),
        ("ct2 dW", 16, 64, 25088, Trans::Yes, Trans::No),
        ("ct2 dX", 25088, 64, 16, Trans::No, Trans::No),
    ];
    for &(name, m, n, k, ta, tb) in shapes {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut c = vec![0f32; m * n];
        let reps = (2e9 / (2.0 * (m * n * k) as f64)).max(3.0) as usize;
        matmul(m, n, k, &a, ta, &b, tb, &mut c, false, Threads::All);
        let t = std::time::Instant::now();
        for _ in 0..reps {
            matmul(m, n, k, &a, ta, &b, tb, &mut c, true, Threads::All);
        }
        let s = t.elapsed().as_secs_f64();
        let gf = 2.0 * (m * n * k * reps) as f64 / s / 1e9;
        let per128 = match name {
            n if n.starts_with("ct1") => 128.0 / 20.0,
            _ => 1.0,
        };
        println!(
            "{name:8} {m:6}x{n:5}x{k:6}: {gf:6.1} GFLOP/s, {:.3} ms per batch-128 step",
            s / reps as f64 * 1e3 * per128
        );
    }
}
