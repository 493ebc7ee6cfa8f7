use apsig::kernels::{matmul, matmul_strided, Threads, Trans};
fn main() {
    let hidden: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let shapes = [
        ("fwd", 128, 6272, hidden, Trans::No, Trans::No),
        ("wgrad", hidden, 6272, 128, Trans::Yes, Trans::No),
        ("igrad", 128, hidden, 6272, Trans::No, Trans::Yes),
        ("fwd1", 128, hidden, 200, Trans::No, Trans::No),
        ("wgrad1", 200, hidden, 128, Trans::Yes, Trans::No),
    ];
    let mut tot = [0.0; 2];
    for (name, m, n, k, ta, tb) in shapes {
        let (a, b, mut c) = (vec![0.5f32; m * k], vec![0.25f32; k * n], vec![0f32; m * n]);
        let flop = 2.0 * (m * n * k) as f64;
        let reps = (4e9 / flop).max(3.0) as usize;
        for (vi, strided) in [false, true].into_iter().enumerate() {
            let run = |c: &mut [f32]| {
                if strided {
                    let lda = if ta == Trans::No { k } else { m };
                    let ldb = if tb == Trans::No { n } else { k };
                    matmul_strided(m, n, k, (&a, lda, ta), (&b, ldb, tb), (c, n), true, Threads::All)
                } else {
                    matmul(m, n, k, &a, ta, &b, tb, c, true, Threads::All)
                }
            };
            run(&mut c);
            let t = std::time::Instant::now();
            for _ in 0..reps {
                run(&mut c);
            }
            let secs = t.elapsed().as_secs_f64() / reps as f64;
            tot[vi] += secs * 1e3;
            println!("{name:<8} strided={strided} {m}x{n}x{k}: {:.1} GFLOP/s, {:.2} ms", flop / secs / 1e9, secs * 1e3);
        }
    }
    println!("total ms per step: plain {:.2} strided {:.2}", tot[0], tot[1]);
    // adam-like stream
    let np = 6272 * hidden + hidden * 200;
    let mut p = vec![0.1f32; np];
    let mut g = vec![0.01f32; np];
    let mut adam = apsig::nn::Adam::new(0.001);
    let t = std::time::Instant::now();
    for _ in 0..20 {
        adam.step(vec![(&mut p, &mut g)]);
    }
    println!("adam over {np}: {:.2} ms per step", t.elapsed().as_secs_f64() * 1e3 / 20.0);
}
