//! True SIGKILLs of the `apsig` binary in the middle of its long stages, then a rerun of the
//! same command: the result must equal an uninterrupted run's. (Library-level damage and
//! resume cases are in `crates/apsig/tests/resume.rs`; these need the binary, which only
//! this crate's tests can reach.)

mod common;

use apsig::decoder::Decoder;
use apsig::directions::{DirectionConfig, Directions, Strategy};
use apsig::model::Arch;
use apsig::signature::SignatureSet;
use common::*;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `cmd`, waits until `ready()` holds, then SIGKILLs it; asserts that the kill (not
/// a normal exit) ended it.
fn kill_when(mut cmd: Command, ready: impl Fn() -> bool) {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    while !ready() {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the process ended ({st}) before it could be killed");
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "never got ready");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    let st = child.wait().unwrap();
    assert_eq!(st.signal(), Some(9), "not killed: {st}");
}

fn run_ok(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn part_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("part-") && n.ends_with(".safetensors")
        })
        .collect()
}

/// 768 test images = three 256-image blocks, K = 4.
const COUNT: &str = "768";

#[test]
fn signatures_killed_then_rerun_equal_an_uninterrupted_run() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let (model, dirs) = (root.join("m.safetensors"), root.join("d.safetensors"));
    untrained(&model, Arch::TargetNetS, 7);
    Directions::generate(
        &DirectionConfig { strategy: Strategy::Gaussian, k: 4, seed: 3 },
        apsig::nn::Shape::new(28, 28, 1),
    )
    .unwrap()
    .save(&dirs)
    .unwrap();
    let cmd = |out: &Path, parts: &Path| {
        let mut c = apsig(root);
        c.args(["-q", "--data-dir", s(&data_dir()), "signatures"])
            .args(["--model", s(&model), "--directions", s(&dirs)])
            .args(["--count", COUNT, "--rel-tol", "0.01", "--eps-max", "64"])
            .args(["--out", s(out), "--parts", s(parts)]);
        c
    };
    let (reference, resumed) = (root.join("ref.safetensors"), root.join("s.safetensors"));
    run_ok(cmd(&reference, &root.join("ref.parts")));

    let parts = root.join("parts");
    kill_when(cmd(&resumed, &parts), || !part_files(&parts).is_empty());
    let done = part_files(&parts);
    assert!((1..3).contains(&done.len()), "{} of 3 blocks done at the kill", done.len());
    assert!(!resumed.exists(), "output written by a killed run");
    // what the killed run left is complete: each part equals that block of the reference
    let a = SignatureSet::load(&reference).unwrap();
    for p in &done {
        let part = SignatureSet::load(p).unwrap();
        let (from, to) = (part.indices[0] as usize, *part.indices.last().unwrap() as usize + 1);
        assert_eq!(part.indices, a.indices[from..to]);
        assert!(part.eps == a.eps[from * 4..to * 4] && part.queries == a.queries[from * 4..to * 4]);
    }

    let stdout = run_ok(cmd(&resumed, &parts));
    assert!(stdout.contains("768 images"), "{stdout}");
    let b = SignatureSet::load(&resumed).unwrap();
    assert!(a.censored.contains(&0), "nothing flipped");
    let bits = |s: &SignatureSet| s.eps.iter().map(|e| e.to_bits()).collect::<Vec<_>>();
    assert!(bits(&a) == bits(&b), "eps differ");
    assert!(a == b, "signature sets differ");
    // a finished run cleans its parts directory up
    assert!(!parts.exists());
}

#[test]
fn decoder_training_killed_then_rerun_equals_an_uninterrupted_run() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let sigs = root.join("train-sigs.safetensors");
    let mut set = signatures(4, 6144, "0123456789abcdef");
    set.provenance.insert("split".into(), "train".into());
    set.save(&sigs).unwrap();
    let cmd = |out: &Path| {
        let mut c = apsig(root);
        c.args(["-q", "--data-dir", s(&data_dir()), "train-decoder"])
            .args(["--signatures", s(&sigs), "--epochs", "4", "--width", "8"])
            .args(["--out", s(out)]);
        c
    };
    let (reference, resumed) = (root.join("ref/dec.safetensors"), root.join("dec.safetensors"));
    run_ok(cmd(&reference));

    let ckpt = root.join("dec.ckpt.safetensors");
    kill_when(cmd(&resumed), || ckpt.exists());
    assert!(!resumed.exists(), "decoder written by a killed run");
    let epoch: usize = apsig::io::TensorFile::read(&ckpt).unwrap().meta("epoch").unwrap().parse().unwrap();
    assert!((1..4).contains(&epoch), "checkpoint after epoch {epoch}");

    // the rerun really resumes (an unconditional restart would give the same weights)
    let out = cmd(&resumed).env("APSIG_LOG", "apsig=info").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("resuming training from {} after epoch {epoch}", ckpt.display())), "{stderr}");
    assert!(!ckpt.exists(), "checkpoint left after a finished run");
    let (a, b) = (Decoder::load(&reference).unwrap(), Decoder::load(&resumed).unwrap());
    let weights = |d: &Decoder| {
        d.net
            .named_tensors()
            .into_iter()
            .map(|(n, _, v)| (n, v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()))
            .collect::<Vec<_>>()
    };
    assert!(weights(&a) == weights(&b), "weights differ after the resumed run");
    // and the reconstructions (which also use the saved input statistics)
    let test = signatures(4, 32, "0123456789abcdef");
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
    assert!(bits(a.reconstruct(&test).unwrap()) == bits(b.reconstruct(&test).unwrap()));
}
