//! Sharded extraction merges to the unsharded result, and the white-box route agrees with
//! the change-bit search on a trained TargetNet-S and real MNIST images.

use apsig::data::DataOptions;
use apsig::directions::{DirectionConfig, Directions, Strategy};
use apsig::model::{train, Arch, Targets, TrainConfig};
use apsig::nn::{Network, Shape};
use apsig::signature::{extract, ExtractConfig, Method, SearchConfig, Shard, SignatureSet};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

fn setup() -> (apsig::data::Dataset, Arc<Network>, Directions) {
    let opts = DataOptions { data_dir: Some(testkit::data_dir()), ..Default::default() };
    let data = apsig::data::load("mnist", &opts).unwrap();
    let s = Shape::new(28, 28, 1);
    let mut net = Network::new(s, Arch::TargetNetS.layers(s, 10, 0), 5).unwrap();
    let n = 6000;
    let cfg = TrainConfig { final_lr_frac: 0.1, ..TrainConfig::new(1, 64, 2e-3, 5) };
    train(
        &mut net,
        &data.train.images[..n * 784],
        Targets::Labels(&data.train.labels[..n]),
        &cfg,
        None,
        &apsig::NoProgress,
    )
    .unwrap();
    let dirs = Directions::generate(&DirectionConfig { strategy: Strategy::Gaussian, k: 12, seed: 9 }, s).unwrap();
    (data, Arc::new(net), dirs)
}

#[test]
fn shards_merge_to_the_unsharded_run_and_gaps_are_refused() {
    let (data, net, dirs) = setup();
    let cfg = ExtractConfig { method: Method::ChangeBit, search: SearchConfig::plain(128.0) };
    let prov = BTreeMap::new();
    let run = |shard| {
        extract(net.clone(), &dirs, &data.test, &prov, 100..400, shard, None, &cfg, None, &apsig::NoProgress).unwrap()
    };
    let whole = run(None);
    let shards: Vec<(PathBuf, SignatureSet)> =
        (0..3).map(|i| (PathBuf::from(format!("shard{i}")), run(Some(Shard { index: i, count: 3 })))).collect();
    let merged = SignatureSet::merge_shards(shards.clone()).unwrap();
    assert_eq!(merged.indices, whole.indices);
    assert_eq!(merged.eps, whole.eps);
    assert_eq!(merged.queries, whole.queries);
    assert_eq!(merged.censored, whole.censored);
    let mut without_shard = whole.provenance.clone();
    without_shard.remove("shard");
    assert_eq!(merged.provenance, without_shard);
    // a missing shard (here the last) and an overlap are both refused, naming the problem
    let err = SignatureSet::merge_shards(shards[..2].to_vec()).unwrap_err().to_string();
    assert!(err.contains("missing"), "{err}");
    let err = SignatureSet::merge(vec![shards[0].clone(), shards[0].clone()]).unwrap_err().to_string();
    assert!(err.contains("overlaps"), "{err}");
    let err = SignatureSet::merge(vec![shards[0].clone(), shards[2].clone()]).unwrap_err().to_string();
    assert!(err.contains("gap"), "{err}");
}

#[test]
fn white_box_route_agrees_with_the_change_bit_search() {
    let (data, net, dirs) = setup();
    let prov = BTreeMap::new();
    let search = SearchConfig::plain(128.0);
    let get = |method| {
        extract(
            net.clone(),
            &dirs,
            &data.test,
            &prov,
            0..60,
            None,
            None,
            &ExtractConfig { method, search: search.clone() },
            None,
            &apsig::NoProgress,
        )
        .unwrap()
    };
    let (bits, wb) = (get(Method::ChangeBit), get(Method::WhiteBox));
    let pairs = bits.eps.len();
    let agree = bits.eps.iter().zip(&wb.eps).filter(|(a, b)| (*a / *b - 1.0).abs() <= 2.0 * search.rel_tol).count();
    // the routes can differ only where the ray re-enters the original class inside a bracket
    assert!(agree as f64 >= 0.98 * pairs as f64, "{agree} of {pairs} agree");
    assert_eq!(bits.censored, wb.censored);
    assert!(
        wb.queries_per_eps() < 0.9 * bits.queries_per_eps(),
        "white-box {} vs change-bit {}",
        wb.queries_per_eps(),
        bits.queries_per_eps()
    );
    eprintln!(
        "agreement {agree}/{pairs}; queries per eps: change bit {:.2}, white box {:.2}",
        bits.queries_per_eps(),
        wb.queries_per_eps()
    );
}
