//! Replays every input the fuzzers kept (fuzz/corpus/<target>/ and fuzz/regressions/<target>/)
//! through the same entry points, so what fuzzing found stays fixed in CI.

use std::path::PathBuf;

fn replay(target: &str, f: fn(&[u8])) -> usize {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for dir in [root.join("corpus").join(target), root.join("regressions").join(target)] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let bytes = std::fs::read(e.path()).unwrap();
            f(&bytes);
            n += 1;
        }
    }
    n
}

#[test]
fn idx_corpus_replays_without_panic() {
    assert!(replay("idx", apsig::fuzzing::idx) > 0, "no idx corpus found");
}

#[test]
fn model_corpus_replays_without_panic() {
    assert!(replay("model", apsig::fuzzing::model) > 0, "no model corpus found");
}

#[test]
fn signatures_corpus_replays_without_panic() {
    assert!(replay("signatures", apsig::fuzzing::signatures) > 0, "no signatures corpus found");
}
