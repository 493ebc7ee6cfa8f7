//! `apsig bench` against stand-in peers (shell scripts that speak the peer's line protocol),
//! so the rounds, the JSON and the failures are tested without PyTorch: a peer that answers
//! gives one paired row per workload with one ratio per round; a peer that dies gives one
//! `error:` line that quotes the peer's last words.

mod common;

use common::*;
use std::path::Path;

/// A stand-in peer: `bench` runs it as `PEER torch_peer.py MODEL INPUTS`; it ignores its
/// arguments and answers every request with `rate` images/s (writing zero eps where asked).
const STEADY_PEER: &str = r#"#!/bin/sh
echo '{"ready": true, "torch_version": "stand-in", "threads": 2}'
while read -r line; do
  case "$line" in
    *signatures*)
      path=$(printf '%s' "$line" | sed 's/.*"eps_out":"\([^"]*\)".*/\1/')
      head -c 800 /dev/zero > "$path"
      echo '{"images": 2, "seconds": 1.0, "images_per_sec": 2.0, "queries_per_eps": 10.0}' ;;
    *) echo '{"images_per_sec": 1000.0, "variant": "stand-in variant", "variants": {"stand-in variant": 1000.0}}' ;;
  esac
done
"#;

const DYING_PEER: &str = "#!/bin/sh\necho 'ModuleNotFoundError: no module named torch' >&2\nexit 3\n";

fn script(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// `apsig bench` at the smallest sizes against the stand-in peer `peer_text`; returns the
/// directory (holding the peer script), where the JSON was asked for, and the outcome.
fn bench(peer_text: &str, rounds: &str) -> (tempfile::TempDir, std::path::PathBuf, std::process::Output) {
    let t = tempfile::tempdir().unwrap();
    let peer = script(t.path(), "peer.sh", peer_text);
    let json = t.path().join("bench.json");
    let out = apsig(t.path())
        .args(["-q", "--data-dir", s(&data_dir()), "bench", "--secs", "0.01", "--images", "2", "--rounds", rounds])
        .args(["--peer", s(&peer), "--json", s(&json)])
        .output()
        .unwrap();
    (t, json, out)
}

#[test]
fn rounds_alternate_with_the_peer_and_every_round_is_on_record() {
    let (_dir, json, out) = bench(STEADY_PEER, "2");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("2 rounds"), "{stdout}");
    assert!(stdout.contains("stand-in variant"), "{stdout}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["release_build"], !cfg!(debug_assertions));
    assert_eq!(v["peer"]["torch_version"], "stand-in");
    let paired = v["peer"]["paired"].as_array().unwrap();
    let names: Vec<&str> = paired.iter().map(|p| p["what"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["forward batch 256", "forward batch 1024", "forward batch 4096", "training TargetNet-S", "training decoder"]
    );
    for p in paired {
        let (ours, ratios) = (p["apsig"].as_array().unwrap(), p["ratios"].as_array().unwrap());
        assert_eq!((ours.len(), ratios.len()), (2, 2), "{p}");
        for (a, r) in ours.iter().zip(ratios) {
            let (a, r) = (a.as_f64().unwrap(), r.as_f64().unwrap());
            assert!(a > 0.0 && (r - a / 1000.0).abs() < 1e-9 * r, "ratio {r} of {a} against 1000");
        }
        let median = p["median_ratio"].as_f64().unwrap();
        assert!(p["min_ratio"].as_f64().unwrap() <= median && median <= p["max_ratio"].as_f64().unwrap());
    }
    // zero eps from the peer agree with none of apsig's
    assert_eq!(v["peer"]["eps_agreement"], 0.0);
}

#[test]
fn a_peer_that_dies_is_one_error_line_with_its_last_words() {
    let (_dir, json, out) = bench(DYING_PEER, "1");
    assert_clean_failure(&out, &["PyTorch peer stopped", "no module named torch"]);
    assert!(!json.exists(), "no JSON from a failed bench");
}

#[test]
fn zero_rounds_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let out = apsig(t.path()).args(["bench", "--rounds", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rounds"));
}
