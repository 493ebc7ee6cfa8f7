//! `apsig attack` end to end against `apsig serve`: a test image registered as the secret, its
//! signature measured over HTTP with a predicted search from a prior, the reconstruction
//! written; a rerun answered from the journal; a prior of another K refused in one line.

mod common;

use apsig::directions::{DirectionConfig, Directions, Strategy};
use apsig::model::Arch;
use apsig::nn::Shape;
use apsig::signature::SignatureSet;
use common::*;
use std::path::Path;
use std::process::{Child, Output, Stdio};

const K: usize = 6;

/// `apsig serve` on a free port, killed when dropped.
struct Server(Child, u16);

impl Server {
    fn start(home: &Path, model: &Path) -> Server {
        let (child, port) = serve(home, model, &[], Stdio::null());
        Server(child, port)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.1)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn attack(home: &Path, args: &[&str]) -> Output {
    apsig(home).args(["--data-dir", s(&data_dir()), "--quiet", "attack"]).args(args).output().unwrap()
}

#[test]
fn attack_registers_measures_reconstructs_and_resumes_from_its_journal() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let model = root.join("m.safetensors");
    untrained(&model, Arch::TargetNetS, 3);
    let dirs_path = root.join("dirs.safetensors");
    let dirs =
        Directions::generate(&DirectionConfig { strategy: Strategy::Gaussian, k: K, seed: 2 }, Shape::new(28, 28, 1))
            .unwrap();
    dirs.save(&dirs_path).unwrap();
    let prior = root.join("prior.safetensors");
    signatures(K, 40, &dirs.fingerprint()).save(&prior).unwrap();
    let decoder = root.join("decoder.safetensors");
    tiny_decoder(&decoder, K, &dirs.fingerprint());
    let server = Server::start(root, &model);

    let (sig, png) = (root.join("secret.safetensors"), root.join("secret.png"));
    let url = server.url();
    let args = [
        "--oracle",
        &url,
        "--register-test-image",
        "3",
        "--directions",
        s(&dirs_path),
        "--prior",
        s(&prior),
        "--predict-group",
        "3",
        "--median-checks",
        "--rel-tol",
        "0.1",
        "--eps-max",
        "64",
        "--decoder",
        s(&decoder),
        "--png",
        s(&png),
        "--out",
        s(&sig),
    ];
    let out = attack(root, &args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("registered test image 3"), "{stdout}");
    assert!(stdout.contains("reconstruction MSE against the registered image"), "{stdout}");
    assert!(std::fs::metadata(&png).unwrap().len() > 0);
    let set = SignatureSet::load(&sig).unwrap();
    assert_eq!((set.k, set.n()), (K, 1));
    assert!(set.total_queries() > 0);
    // the shared search options: the attack's own defaults where not given, the flags where given
    let extract = &set.provenance["extract"];
    assert!(extract.contains("\"growth\":1.6") && extract.contains("\"rel_tol\":0.1"), "{extract}");
    assert!(extract.contains("\"eps_max\":64.0"), "{extract}");

    // the same session again: every batch is answered from the journal, nothing is asked
    let field =
        |name: &str| stdout.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string()).expect(name);
    let (session, token) = (field("session "), field("token "));
    let mut resumed_args: Vec<&str> = vec!["--oracle", &url, "--session", &session, "--token", &token];
    resumed_args.extend_from_slice(&args[4..]);
    let resumed = attack(root, &resumed_args);
    let text = String::from_utf8_lossy(&resumed.stdout).into_owned();
    assert!(resumed.status.success(), "{text}\n{}", String::from_utf8_lossy(&resumed.stderr));
    assert!(text.contains("resuming: ") && text.contains("; 0 new, "), "{text}");
    assert_eq!(SignatureSet::load(&sig).unwrap().eps, set.eps);

    // a new registration is another attack: its journal is refused, not replayed into it
    let other = attack(root, &args);
    assert_clean_failure(&other, &[s(&root.join("secret.journal")), "journal of another attack"]);

    // a prior measured along another number of directions: one line naming the file and both K
    let wrong = root.join("prior-k4.safetensors");
    signatures(4, 40, &dirs.fingerprint()).save(&wrong).unwrap();
    let out = attack(
        root,
        &[
            "--oracle",
            &url,
            "--register-test-image",
            "0",
            "--directions",
            s(&dirs_path),
            "--prior",
            s(&wrong),
            "--out",
            s(&root.join("never.safetensors")),
        ],
    );
    assert_clean_failure(&out, &[s(&wrong), "K = 4", &format!("K = {K}")]);
    assert!(!root.join("never.safetensors").exists());
    drop(server);
}
