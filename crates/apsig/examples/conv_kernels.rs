//! The second convolution of TargetNet-S (12x12x16 -> 8x8x32, 5x5) on one thread, by the direct
//! kernel and by Winograd's F(2x2, 5x5): images/s of each, alternated in rounds
//! (`cargo run --release -p apsig --example conv_kernels`); with `--weight-gradients`, the
//! GFLOP/s of both convolutions' weight gradients read in place, at several images per call.
use apsig::kernels::{PackedConv, WinogradConv};
use std::time::Instant;

fn main() {
    if std::env::args().any(|a| a == "--weight-gradients") {
        return weight_gradients();
    }
    let (n, h, w, cin, cout, k) = (32, 12, 12, 16, 32, 5);
    let x: Vec<f32> = (0..n * h * w * cin).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
    let wt: Vec<f32> = (0..k * k * cin * cout).map(|i| ((i * 13 % 29) as f32 - 14.0) / 30.0).collect();
    let mut y = vec![0.0; n * 8 * 8 * cout];
    let rate = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        let mut reps = 0;
        while t.elapsed().as_secs_f64() < 1.0 {
            f();
            reps += 1;
        }
        (reps * n) as f64 / t.elapsed().as_secs_f64()
    };
    for round in 0..3 {
        let d = rate(&mut || PackedConv::new(&wt, None, k, cin, cout).unwrap().forward(&x, n, h, w, &mut y));
        let wn = rate(&mut || WinogradConv::new(&wt, None, k, cin, cout).unwrap().forward(&x, n, h, w, &mut y));
        let wc = WinogradConv::new(&wt, None, k, cin, cout).unwrap();
        let wp = rate(&mut || wc.forward(&x, n, h, w, &mut y));
        println!("round {round}: direct {d:.0}/s, winograd {wn:.0}/s with its weight transform, {wp:.0}/s without: {:.2}x, {:.2}x", wn / d, wp / d);
    }
}

/// The weight gradients of TargetNet-S's two convolutions read in place, at several images per
/// call (the training step's blocks): GFLOP/s on one thread.
fn weight_gradients() {
    use apsig::kernels::conv_weight_grad;
    for (h, cin, cout) in [(28usize, 1usize, 16usize), (12, 16, 32)] {
        for images in [2usize, 4, 8, 16, 32] {
            let (k, o) = (5, h - 4);
            let x: Vec<f32> = (0..images * h * h * cin).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
            let dy: Vec<f32> = (0..images * o * o * cout).map(|i| ((i * 13 % 29) as f32 - 14.0) / 30.0).collect();
            let mut dw = vec![0.0; k * k * cin * cout];
            let t = Instant::now();
            let mut reps = 0;
            while t.elapsed().as_secs_f64() < 0.5 {
                conv_weight_grad(&x, &dy, images, h, h, cin, k, cout, &mut dw);
                reps += 1;
            }
            let flop = 2.0 * (images * o * o * k * k * cin * cout) as f64 * reps as f64;
            println!(
                "weight gradient {h}x{h}x{cin} -> {cout}, {images} images: {:.1} GFLOP/s",
                flop / t.elapsed().as_secs_f64() / 1e9
            );
        }
    }
}
