//! The Winograd transposed convolution's stages timed apart, at the MNIST decoder's first
//! layer (7x7x128 -> 14x14x64, batch 128): `cargo run --release -p apsig --example
//! convt_winograd`. Prints each stage's share and GFLOP/s of the products.
use apsig::kernels::WinogradConvT;
use std::time::Instant;

fn main() {
    let (n, h, w, cin, cout) = (128, 7, 7, 128, 64);
    let k = WinogradConvT::new(h, w, cin, cout, 4, 2, 1).expect("applies");
    let mut rng = apsig::rng::Rng::new(1);
    let mut vals = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.normal()).collect() };
    let (x, wt, bias, dy) = (vals(n * h * w * cin), vals(16 * cin * cout), vals(cout), vals(n * 4 * h * w * cout));
    let mut u = vec![0.0; k.weight_len()];
    let mut v = vec![0.0; k.input_len(n)];
    let mut m = vec![0.0; k.product_len(n)];
    let mut y = vec![0.0; n * 4 * h * w * cout];
    let mut dm = vec![0.0; k.product_len(n)];
    let mut dv = vec![0.0; k.input_len(n)];
    let mut dx = vec![0.0; x.len()];
    let mut du = vec![0.0; k.weight_len()];
    let mut dw = vec![0.0; wt.len()];
    let reps = 40;
    let mut t = [0.0f64; 8];
    for rep in 0..reps + 3 {
        let mut lap = Instant::now();
        let mut stage = |i: usize, lap: &mut Instant| {
            if rep >= 3 {
                t[i] += lap.elapsed().as_secs_f64();
            }
            *lap = Instant::now();
        };
        k.transform_weights(&wt, &mut u);
        stage(0, &mut lap);
        k.transform_inputs(&x, n, &mut v);
        stage(1, &mut lap);
        k.products(&v, &u, n, &mut m);
        stage(2, &mut lap);
        k.transform_outputs(&m, n, &bias, &mut y);
        stage(3, &mut lap);
        k.transform_output_grads(&dy, n, &mut dm);
        stage(4, &mut lap);
        k.weight_grads(&v, &dm, n, &mut du, &mut dw);
        stage(5, &mut lap);
        k.input_grad_products(&dm, &u, n, &mut dv);
        stage(6, &mut lap);
        k.transform_input_grads(&dv, n, &mut dx);
        stage(7, &mut lap);
    }
    let total: f64 = t.iter().sum();
    let names = [
        "weights",
        "inputs",
        "products",
        "outputs",
        "output grads",
        "weight grads",
        "input grad products",
        "input grads",
    ];
    for (name, s) in names.iter().zip(t) {
        println!("{name:>20}: {:6.1} us per image, {:4.1}%", s / (reps * n) as f64 * 1e6, 100.0 * s / total);
    }
    let gemm = (n as u64 * k.product_flops()) as f64 * reps as f64;
    println!(
        "products {:.1} GFLOP/s; all stages {:.1} us per image ({:.0} images/s through all three passes)",
        gemm / t[2] / 1e9,
        total / (reps * n) as f64 * 1e6,
        (reps * n) as f64 / total
    );
}
