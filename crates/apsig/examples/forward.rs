//! TargetNet-S forward passes at one batch size for a few seconds: a target for `perf record`
//! (`cargo run --release -p apsig --example forward -- 1024 5 [MODEL]`).
fn main() {
    let mut args = std::env::args().skip(1);
    let batch: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1024);
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    // a third argument: a TargetNet-S model file instead of random weights
    let net = match args.next() {
        Some(path) => apsig::model::load_network(std::path::Path::new(&path), None).expect("a model file").net,
        None => apsig::bench::targetnet(1),
    };
    let machine = apsig::bench::Machine::measure(0.5);
    for t in apsig::bench::forward(&net, batch, &machine, secs) {
        println!("{} batch {}: {:.0}/s, {:.1} GFLOP/s", t.what, t.batch, t.per_sec, t.gflops);
    }
}
