//! Probes per eps of the white-box search against the change-bit one, on the adversary's own
//! images of a finished MNIST run, and how close each lands to a fine (1e-4) change-bit eps:
//! `APSIG_DATA_DIR=... cargo run --release -p apsig --example white_box_search -- runs/quick 512`.
use apsig::directions::Directions;
use apsig::model::{load_network, Classifier};
use apsig::pipeline::{pilot_starts, SignatureStage};
use apsig::signature::{extract, ExtractConfig, Method, Prior, SearchConfig};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let run = Path::new(&a[1]);
    let n: usize = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(512);
    let opts = apsig_data::DataOptions {
        data_dir: Some(std::env::var("APSIG_DATA_DIR").unwrap().into()),
        ..Default::default()
    };
    let data = apsig_data::load("mnist", &opts).unwrap();
    let model: Arc<dyn Classifier> = Arc::new(load_network(&run.join("target.safetensors"), None).unwrap().net);
    let dirs = Directions::load(&run.join("directions.safetensors")).unwrap();
    let search = SearchConfig::decoder_grade(256.0);
    let wb = ExtractConfig { method: Method::WhiteBox, search: search.clone() };
    let cb = ExtractConfig { method: Method::ChangeBit, search: search.clone() };
    let fine = ExtractConfig { method: Method::ChangeBit, search: SearchConfig { rel_tol: 1e-4, ..search.clone() } };
    let p = BTreeMap::new();
    let np = apsig::NoProgress;
    // the run's own starts: the median eps of a white-box pilot on the first training images
    let stage = SignatureStage { count: 0, augment: 0, permute_channels: false, extract: wb.clone() };
    let starts = pilot_starts(model.clone(), &dirs, &data.train, &stage).unwrap();
    let r = 1000..1000 + n;
    let t = std::time::Instant::now();
    let w =
        extract(model.clone(), &dirs, &data.train, &p, r.clone(), None, Some(Prior::Starts(&starts)), &wb, None, &np)
            .unwrap();
    let tw = t.elapsed().as_secs_f64();
    let c =
        extract(model.clone(), &dirs, &data.train, &p, r.clone(), None, Some(Prior::Starts(&starts)), &cb, None, &np)
            .unwrap();
    let f =
        extract(model.clone(), &dirs, &data.train, &p, r.clone(), None, Some(Prior::Starts(&starts)), &fine, None, &np)
            .unwrap();
    let k = dirs.k();
    let q = |s: &apsig::signature::SignatureSet| s.queries.iter().map(|&v| v as f64).sum::<f64>() / (n * k) as f64;
    let stats = |s: &apsig::signature::SignatureSet, name: &str| {
        let (mut within, mut far, mut cens) = (0usize, 0usize, 0usize);
        let mut sum_abs = 0.0f64;
        for i in 0..n * k {
            let (e, r) = (s.eps[i], f.eps[i]);
            if s.censored[i] != f.censored[i] {
                cens += 1;
                continue;
            }
            let d = (e as f64 / r as f64).ln().abs();
            sum_abs += d;
            if d <= (1.011f64).ln() {
                within += 1
            }
            if d > 0.1 {
                far += 1
            }
        }
        println!("{name:<10} q/eps {:.3}  within 1.1% of fine {:.4}  off >10% {:.4}  censor mismatch {}  mean |log ratio| {:.5}",
            q(s), within as f64 / (n * k) as f64, far as f64 / (n * k) as f64, cens, sum_abs / (n * k) as f64);
    };
    let br = ExtractConfig { method: Method::WhiteBox, search: SearchConfig { rel_tol: 0.7, ..search.clone() } };
    let b =
        extract(model.clone(), &dirs, &data.train, &p, r.clone(), None, Some(Prior::Starts(&starts)), &br, None, &np)
            .unwrap();
    println!("bracket only: q/eps {:.3}", q(&b));
    stats(&w, "white-box");
    let mut h = [0usize; 16];
    let mut hb = [0usize; 16];
    for i in 0..n * k {
        if w.censored[i] == 0 {
            let r = (w.queries[i] - b.queries[i]) as usize;
            h[r.min(15)] += 1;
            hb[(b.queries[i] as usize).min(15)] += 1;
        }
    }
    println!("refine probes histogram {:?}", h);
    println!("bracket probes histogram {:?}", hb);
    stats(&c, "change-bit");
    println!("white-box {:.1} s for {n} images", tw);
}
