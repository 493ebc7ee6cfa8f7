//! Change-bit throughput over loopback HTTP against the in-process oracle.
//!
//! `cargo run --release -p apsig-serve --example loopback_bench [-- MODEL.safetensors [BATCHES]]`
//!
//! Without a model it measures an untrained TargetNet-S (the oracle's cost does not depend on
//! the weights). Prints queries/s for binary probe batches of 1024 along K = 100 lifted
//! directions, both ways, their ratio, and the per-request overhead at batch size 1.

use apsig::directions::{DirectionConfig, Directions, Strategy};
use apsig::model::{load_network, save_network, Arch, Classifier};
use apsig::nn::{Network, Shape};
use apsig::oracle::{ChangeOracle, LiftedDirections, LocalOracle, Probe};
use apsig::rng::Rng;
use apsig_serve::{register_secret, spawn_for_tests, HttpOracle, ServeConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tmp = tempfile::tempdir()?;
    let model_path = match args.first() {
        Some(p) => PathBuf::from(p),
        None => {
            let shape = Shape::new(28, 28, 1);
            let net = Network::new(shape, Arch::TargetNetS.layers(shape, 10, 0), 1).map_err(anyhow::Error::msg)?;
            let p = tmp.path().join("target.safetensors");
            save_network(&p, Arch::TargetNetS, &net, &BTreeMap::new())?;
            p
        }
    };
    let batches: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(20);
    let model: Arc<dyn Classifier> = Arc::new(load_network(&model_path, Some(Arch::TargetNetS))?.net);
    let len = model.input_shape().len();
    let dirs =
        Directions::generate(&DirectionConfig { strategy: Strategy::Gaussian, k: 100, seed: 1 }, model.input_shape())?;
    let mut rng = Rng::new(7);
    let secret: Vec<f32> = (0..len).map(|_| rng.uniform()).collect();
    let probes: Vec<Probe> =
        (0..1024).map(|i| Probe { dir: (i % 100) as u32, eps: (rng.uniform() * 8.0 - 4.0).exp2() }).collect();

    let (_, srv) = spawn_for_tests(ServeConfig { model: model_path.clone(), ..Default::default() })?;
    let reg = register_secret(&srv.url(), &secret)?;
    let http = HttpOracle::new(&srv.url(), &reg.session, &reg.token, len);
    let lifted = Arc::new(LiftedDirections::new(model.as_ref(), &dirs));
    let local = LocalOracle::new(model.clone(), &secret, Some(lifted))?;

    // warm up both (registration of the directions, connection, caches) and check agreement
    assert_eq!(http.changed_along(&dirs, &probes)?, local.changed_along(&dirs, &probes)?);

    let time = |o: &dyn ChangeOracle, ps: &[Probe], reps: usize| -> anyhow::Result<f64> {
        let t = Instant::now();
        for _ in 0..reps {
            o.changed_along(&dirs, ps)?;
        }
        Ok(t.elapsed().as_secs_f64())
    };
    let n = (batches * probes.len()) as f64;
    let t_local = time(&local, &probes, batches)?;
    let t_http = time(&http, &probes, batches)?;
    println!("machine: {} threads", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    println!("batch 1024 probes (binary), K = 100, {batches} batches:");
    println!("  in-process  {:>10.0} queries/s", n / t_local);
    println!("  loopback    {:>10.0} queries/s", n / t_http);
    println!("  ratio       {:>10.3} (loopback / in-process)", t_local / t_http);

    let reps = 200;
    let one = &probes[..1];
    let t1_local = time(&local, one, reps)?;
    let t1_http = time(&http, one, reps)?;
    println!("batch 1, {reps} requests:");
    println!("  in-process  {:>10.3} ms per query", 1e3 * t1_local / reps as f64);
    println!("  loopback    {:>10.3} ms per request", 1e3 * t1_http / reps as f64);
    println!("  overhead    {:>10.3} ms per request", 1e3 * (t1_http - t1_local) / reps as f64);
    println!("server charged {} queries", srv.queries_used(&reg.session).unwrap_or(0));
    Ok(())
}
