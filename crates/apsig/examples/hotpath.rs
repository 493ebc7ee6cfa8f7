//! Breaks the oracle's probe path into its parts (single thread) to see where time goes.
use apsig::kernels::{im2col_nhwc, matmul, maxpool2_nhwc, ConvGeom, Threads, Trans};
/// CPU time of this thread (ns), so a busy machine does not distort the per-kernel figures.
struct Instant(u64);
impl Instant {
    fn now() -> Self {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
        Instant(s.split_whitespace().next().unwrap().parse().unwrap())
    }
    fn elapsed(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(Instant::now().0 - self.0)
    }
}

fn main() {
    let b: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(32);
    let reps = 20000 / b;
    let z = vec![0.5f32; b * 24 * 24 * 16];
    let mut p = vec![0.0f32; b * 12 * 12 * 16];
    let g = ConvGeom { big_h: 12, big_w: 12, channels: 16, k: 5, stride: 1, pad: 0 };
    let mut cols = vec![0.0f32; b * 64 * 400];
    let w = vec![0.01f32; 400 * 32];
    let mut y = vec![0.0f32; b * 64 * 32];
    let t = Instant::now();
    for _ in 0..reps {
        maxpool2_nhwc(b, 24, 24, 16, &z, &mut p, None);
    }
    let pool = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..reps {
        im2col_nhwc(&g, b, &p, &mut cols, false);
    }
    let i2c = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..reps {
        matmul(b * 64, 32, 400, &cols, Trans::No, &w, Trans::No, &mut y, false, Threads::One);
    }
    let gm = t.elapsed().as_secs_f64();
    let pc = apsig::kernels::PackedConv::new(&w, None, 5, 16, 32).expect("avx2 build");
    let t = Instant::now();
    for _ in 0..reps {
        pc.forward(&p, b, 12, 12, &mut y);
    }
    let direct = t.elapsed().as_secs_f64();
    let n = (reps * b) as f64;
    println!(
        "direct conv: {:.2} us per image ({:.1} GFLOP/s)",
        direct / n * 1e6,
        n * 2.0 * 64.0 * 400.0 * 32.0 / direct / 1e9
    );
    println!(
        "batch {b}: per image: pool1 {:.2} us, im2col {:.2} us, gemm {:.2} us ({:.1} GFLOP/s)",
        pool / n * 1e6,
        i2c / n * 1e6,
        gm / n * 1e6,
        n * 2.0 * 64.0 * 400.0 * 32.0 / gm / 1e9
    );
}
