//! Replays every input the wire fuzzer kept (fuzz/corpus/wire/ and fuzz/regressions/wire/)
//! through the same entry point, so what fuzzing found stays fixed in CI.

use std::path::PathBuf;

#[test]
fn wire_corpus_replays_without_panic() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for dir in [root.join("corpus/wire"), root.join("regressions/wire")] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            apsig_serve::fuzzing::wire(&std::fs::read(e.path()).unwrap());
            n += 1;
        }
    }
    assert!(n > 0, "no wire corpus found");
}
