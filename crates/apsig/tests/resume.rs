//! Kill-and-resume equivalence of the two long stages, at library level.
//!
//! Signature extraction keeps one part file per 256-image block and skips blocks whose part
//! is valid; training saves an atomic checkpoint after every epoch and resumes from it. A
//! run that was interrupted (files lost, half-written, stale) and then rerun must give
//! bit-for-bit what an uninterrupted run gives. True SIGKILLs of the CLI are tested in
//! `crates/apsig-cli/tests/resume_kill.rs` (the binary is only reachable from that crate).

use apsig::data::{DataOptions, Dataset};
use apsig::decoder::{Decoder, DecoderConfig};
use apsig::directions::{DirectionConfig, Directions, Strategy};
use apsig::io::TensorFile;
use apsig::model::{Arch, TrainConfig};
use apsig::nn::{Network, Shape};
use apsig::signature::{extract, ExtractConfig, Method, SearchConfig, SignatureSet};
use apsig::{NoProgress, Progress};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The MNIST image shape.
const MNIST: Shape = Shape::new(28, 28, 1);
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// MNIST, loaded once for all tests of this file.
fn mnist() -> &'static Dataset {
    static DATA: OnceLock<Dataset> = OnceLock::new();
    DATA.get_or_init(|| {
        let opts = DataOptions { data_dir: Some(testkit::data_dir()), ..Default::default() };
        apsig::data::load("mnist", &opts).expect("real MNIST under shared/data")
    })
}

/// Images measured by the extraction tests: blocks 0..256, 256..512, 512..520.
const N: usize = 520;
const K: usize = 4;

/// An untrained TargetNet-S with a fixed seed: a fixed ReLU classifier is all the
/// equivalence needs, and its flips are real (checked below).
fn target() -> Arc<Network> {
    let shape = Shape::new(28, 28, 1);
    Arc::new(Network::new(shape, Arch::TargetNetS.layers(shape, 10, 0), 7).unwrap())
}

fn directions() -> Directions {
    Directions::generate(&DirectionConfig { strategy: Strategy::Gaussian, k: K, seed: 3 }, Shape::new(28, 28, 1))
        .unwrap()
}

fn cfg() -> ExtractConfig {
    ExtractConfig {
        method: Method::ChangeBit,
        search: SearchConfig { start: 0.5, growth: 2.0, eps_max: 64.0, eps_min: 1e-4, rel_tol: 1e-2 },
    }
}

fn provenance() -> BTreeMap<String, String> {
    BTreeMap::from([("dataset".to_string(), "mnist".to_string()), ("split".to_string(), "test".to_string())])
}

fn run(parts: Option<&Path>) -> SignatureSet {
    extract(target(), &directions(), &mnist().test, &provenance(), 0..N, None, None, &cfg(), parts, &NoProgress)
        .unwrap()
}

/// The uninterrupted reference run, computed once.
fn reference() -> &'static SignatureSet {
    static A: OnceLock<SignatureSet> = OnceLock::new();
    A.get_or_init(|| {
        let a = run(None);
        assert_eq!(a.n(), N);
        // the classifier really flips: the comparison covers refined eps, not just censoring
        let flipped = a.censored.iter().filter(|&&c| c == 0).count();
        assert!(flipped > a.eps.len() / 2, "only {flipped} directions flipped");
        a
    })
}

/// Field by field (eps compared as bits), then as a whole.
fn assert_same(a: &SignatureSet, b: &SignatureSet) {
    assert_eq!(a.k, b.k);
    assert_eq!(a.indices, b.indices);
    let bits = |s: &SignatureSet| s.eps.iter().map(|e| e.to_bits()).collect::<Vec<_>>();
    assert!(bits(a) == bits(b), "eps differ");
    assert!(a.censored == b.censored, "censoring differs");
    assert!(a.queries == b.queries, "query counts differ");
    assert_eq!(a.provenance, b.provenance);
    assert!(a == b);
}

fn part(dir: &Path, a: usize, b: usize) -> PathBuf {
    dir.join(format!("part-{a:07}-{b:07}.safetensors"))
}

const BLOCKS: [(usize, usize); 3] = [(0, 256), (256, 512), (512, 520)];

#[test]
fn parts_run_equals_uninterrupted_run() {
    let t = tempfile::tempdir().unwrap();
    let parts = t.path().join("parts");
    let b = run(Some(&parts));
    assert_same(reference(), &b);
    for (a, e) in BLOCKS {
        let p = SignatureSet::load(&part(&parts, a, e)).unwrap();
        assert_eq!(p.indices, (a as u32..e as u32).collect::<Vec<_>>());
    }
    assert_eq!(std::fs::read_dir(&parts).unwrap().count(), BLOCKS.len());
}

/// The part files an uninterrupted run leaves (checked equal to the real ones above), built
/// from the reference so that setting up a damaged parts directory costs no measuring.
fn parts_from_reference(parts: &Path) {
    let a = reference();
    for (s, e) in BLOCKS {
        slice(a, s, e).save(&part(parts, s, e)).unwrap();
    }
}

fn slice(a: &SignatureSet, s: usize, e: usize) -> SignatureSet {
    SignatureSet {
        k: a.k,
        indices: a.indices[s..e].to_vec(),
        eps: a.eps[s * a.k..e * a.k].to_vec(),
        censored: a.censored[s * a.k..e * a.k].to_vec(),
        queries: a.queries[s * a.k..e * a.k].to_vec(),
        provenance: a.provenance.clone(),
    }
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// A killed run leaves a lost part (killed before its rename: only a stale temp file is
/// there), a half-written part (e.g. a copy interrupted mid-way) and a good one; the rerun
/// re-measures the first two and equals the uninterrupted run bit for bit.
#[test]
fn rerun_after_kill_damage_equals_uninterrupted_run() {
    let t = tempfile::tempdir().unwrap();
    let parts = t.path().join("parts");
    parts_from_reference(&parts);
    // block 0: lost, with the temp file of its interrupted atomic write left behind
    let p0 = part(&parts, 0, 256);
    let bytes = std::fs::read(&p0).unwrap();
    std::fs::remove_file(&p0).unwrap();
    let tmp = parts.join(".part-0000000-0000256.safetensors.4242.tmp");
    std::fs::write(&tmp, &bytes[..bytes.len() / 3]).unwrap();
    // block 2: half-written
    let p2 = part(&parts, 512, 520);
    let bytes = std::fs::read(&p2).unwrap();
    std::fs::write(&p2, &bytes[..bytes.len() / 2]).unwrap();
    assert!(SignatureSet::load(&p2).is_err());

    let c = run(Some(&parts));
    assert_same(reference(), &c);
    // the damaged parts were replaced by good ones
    for (a, e) in BLOCKS {
        assert_same(&slice(reference(), a, e), &SignatureSet::load(&part(&parts, a, e)).unwrap());
    }
    assert!(file_names(&parts).len() == 4, "{:?}", file_names(&parts));
}

/// A part measured with another configuration (or other directions, data, range) is
/// detected by its provenance and re-measured, never merged in.
#[test]
fn part_of_another_configuration_is_remeasured() {
    let t = tempfile::tempdir().unwrap();
    let parts = t.path().join("parts");
    parts_from_reference(&parts);
    let p2 = part(&parts, 512, 520);
    let mut old = SignatureSet::load(&p2).unwrap();
    old.provenance.insert("extract".into(), "{\"older\":\"search config\"}".into());
    old.eps.iter_mut().for_each(|e| *e *= 3.0);
    old.save(&p2).unwrap();
    let c = run(Some(&parts));
    assert_same(reference(), &c);
    assert_same(&slice(reference(), 512, 520), &SignatureSet::load(&p2).unwrap());
}

/// Resuming really skips valid parts: a valid part with doctored values is taken as is
/// (which is why damaged or foreign parts must be, and are, detected by the checks above).
#[test]
fn valid_parts_are_reused_not_remeasured() {
    let t = tempfile::tempdir().unwrap();
    let parts = t.path().join("parts");
    parts_from_reference(&parts);
    let a = reference();
    let p1 = part(&parts, 256, 512);
    let mut doctored = slice(a, 256, 512);
    doctored.eps.iter_mut().for_each(|e| *e = 0.125);
    doctored.save(&p1).unwrap();
    let counted = Counter::default();
    let c = extract(
        target(),
        &directions(),
        &mnist().test,
        &provenance(),
        0..N,
        None,
        None,
        &cfg(),
        Some(&parts),
        &counted,
    )
    .unwrap();
    assert!(c.eps[256 * K..512 * K].iter().all(|&e| e == 0.125));
    assert_eq!(c.eps[..256 * K], a.eps[..256 * K]);
    assert_eq!(c.eps[512 * K..], a.eps[512 * K..]);
    assert_eq!(c.queries, a.queries);
    // progress still reports every image as done
    assert_eq!(counted.0.load(Ordering::Relaxed), N as u64);
}

#[derive(Default)]
struct Counter(AtomicU64);
impl Progress for Counter {
    fn advance(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

// ---- training: checkpoint after every epoch, resume after a kill ----

/// Panics (a stand-in for SIGKILL that the test can catch) at the given training step,
/// i.e. in the middle of an epoch, after earlier epochs' checkpoints were written.
struct KillAt {
    step: u64,
    seen: AtomicU64,
}
impl Progress for KillAt {
    fn advance(&self, n: u64) {
        if self.seen.fetch_add(n, Ordering::Relaxed) + n >= self.step {
            panic!("simulated kill at step {}", self.step);
        }
    }
}

const EPOCHS: usize = 4;
const SIGS: usize = 512;
const BATCH: usize = 64; // 8 steps per epoch

fn decoder_cfg() -> DecoderConfig {
    DecoderConfig {
        width: 8,
        hidden: 0,
        use_mask: true,
        class_weight: 0.0,
        class_noise: 0.0,
        loss: Default::default(),
        palette: false,
        train: TrainConfig::new(EPOCHS, BATCH, 2e-3, 11),
    }
}

/// Training pairs: the reference signatures of the first test images are as good as any.
fn training_pairs() -> (SignatureSet, Vec<f32>) {
    let a = reference();
    let mut s = a.clone();
    s.indices.truncate(SIGS);
    s.eps.truncate(SIGS * K);
    s.censored.truncate(SIGS * K);
    s.queries.truncate(SIGS * K);
    let images = apsig::pipeline::images_of(&mnist().test, &s).unwrap();
    (s, images)
}

fn weights(d: &Decoder) -> Vec<(String, Vec<u32>)> {
    d.net.named_tensors().into_iter().map(|(n, _, v)| (n, v.iter().map(|x| x.to_bits()).collect())).collect()
}

#[test]
fn training_resumed_after_a_kill_equals_uninterrupted_training() {
    let (sigs, images) = training_pairs();
    let (full, rep) = Decoder::fit(&sigs, &images, MNIST, &decoder_cfg(), None, None, &NoProgress).unwrap();
    assert_eq!(rep.resumed_from_epoch, 0);

    let t = tempfile::tempdir().unwrap();
    let ck = t.path().join("decoder.ckpt.safetensors");
    let steps_per_epoch = (SIGS / BATCH) as u64;
    // die in the middle of epoch 3 (after the checkpoint of epoch 2)
    let kill = KillAt { step: 2 * steps_per_epoch + 3, seen: AtomicU64::new(0) };
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Decoder::fit(&sigs, &images, MNIST, &decoder_cfg(), None, Some(&ck), &kill)
    }));
    assert!(died.is_err(), "the simulated kill did not happen");
    let f = TensorFile::read(&ck).unwrap();
    assert_eq!(f.meta("epoch").unwrap(), "2");
    // no temp file of the checkpoint's atomic write is left beside it
    let names: Vec<String> =
        std::fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec!["decoder.ckpt.safetensors".to_string()]);

    let (resumed, rep) = Decoder::fit(&sigs, &images, MNIST, &decoder_cfg(), None, Some(&ck), &NoProgress).unwrap();
    assert_eq!(rep.resumed_from_epoch, 2);
    assert!(weights(&full) == weights(&resumed), "weights differ after resume");
    assert_eq!(rep.final_loss.to_bits(), {
        // the last epoch's loss is the same number too
        let (_, r) = Decoder::fit(&sigs, &images, MNIST, &decoder_cfg(), None, None, &NoProgress).unwrap();
        r.final_loss.to_bits()
    });
    // and so are the reconstructions
    let test = {
        let mut s = reference().clone();
        s.indices = s.indices[SIGS..].to_vec();
        s.eps = s.eps[SIGS * K..].to_vec();
        s.censored = s.censored[SIGS * K..].to_vec();
        s.queries = s.queries[SIGS * K..].to_vec();
        s
    };
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
    assert!(
        bits(full.reconstruct(&test).unwrap()) == bits(resumed.reconstruct(&test).unwrap()),
        "reconstructions differ"
    );
}

/// A checkpoint of another configuration is refused, naming the file, not silently used.
#[test]
fn checkpoint_of_another_configuration_is_refused() {
    let (sigs, images) = training_pairs();
    let t = tempfile::tempdir().unwrap();
    let ck = t.path().join("decoder.ckpt.safetensors");
    let kill = KillAt { step: (SIGS / BATCH) as u64 + 1, seen: AtomicU64::new(0) };
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Decoder::fit(&sigs, &images, MNIST, &decoder_cfg(), None, Some(&ck), &kill)
    }));
    assert!(died.is_err());
    let mut other = decoder_cfg();
    other.train.lr = 1e-3;
    let e = Decoder::fit(&sigs, &images, MNIST, &other, None, Some(&ck), &NoProgress)
        .err()
        .expect("a foreign checkpoint must be refused")
        .to_string();
    assert!(e.contains("decoder.ckpt.safetensors") && e.contains("another configuration"), "{e}");
}
