//! `--download` of CIFAR against a local mirror: the archive's MD5 is checked before anything
//! is unpacked, the batch folder appears whole or not at all, and `load` finds it by name.

mod common;

use apsig_data::{download, known, load, md5_hex, CifarKind, DataOptions, KnownArchive, KnownDataset, Published};
use common::assert_err_contains;
use common::formats::*;
use std::path::Path;

const ARCHIVE: &str = "cifar-10-binary.tar.gz";

/// A CIFAR-10 entry like the real one but with the digest of the test's own archive (the
/// table's `&'static` strings are what the published sets use; a test leaks its one string).
fn test_cifar10(md5: String) -> KnownDataset {
    KnownDataset {
        name: "cifar10",
        mirrors: &[],
        published: Published::CifarArchive {
            archive: KnownArchive { name: ARCHIVE, md5: md5.leak() },
            kind: CifarKind::Cifar10,
        },
    }
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[test]
fn downloads_verifies_unpacks_and_loads() {
    let t = tempfile::tempdir().unwrap();
    let c10 = cifar10_files(2, 3);
    let mut members = c10.files.clone();
    members.push(("readme.html".into(), b"<p>not needed</p>".to_vec()));
    let archive = tar_gz("cifar-10-batches-bin", &members);
    let mirror = t.path().join("mirror");
    write_files(&mirror, &[(ARCHIVE.into(), archive.clone())]);
    let ds = test_cifar10(md5_hex(&archive));

    let root = t.path().join("data");
    let dest = root.join("cifar10");
    download(&ds, &dest, &[format!("file://{}/", mirror.display())]).unwrap();
    // the batch files and the class names, nothing else: no archive, no .part, no temp folder
    let mut want = vec!["cifar-10-batches-bin".to_string()];
    want.extend(c10.files.iter().map(|(n, _)| format!("cifar-10-batches-bin/{n}")));
    want.sort();
    assert_eq!(tree(&dest), want);
    let data = load("cifar10", &DataOptions { data_dir: Some(root), ..Default::default() }).unwrap();
    assert_eq!((data.train.n, data.test.n, data.train.labels.clone()), (10, 3, c10.train.1));
    // a rerun finds the copy complete and fetches nothing (the mirror is gone)
    download(&ds, &dest, &[s(&t.path().join("gone"))]).unwrap();
}

#[test]
fn wrong_md5_is_refused_and_leaves_nothing() {
    let t = tempfile::tempdir().unwrap();
    let archive = tar_gz("cifar-10-batches-bin", &cifar10_files(1, 1).files);
    let mirror = t.path().join("mirror");
    write_files(&mirror, &[(ARCHIVE.into(), archive.clone())]);
    let dest = t.path().join("cifar10");
    // the published digest cannot match the test's archive
    let e = download(known("cifar10").unwrap(), &dest, &[s(&mirror)]).unwrap_err();
    assert_err_contains(
        e,
        &[
            &format!("{}", dest.join(ARCHIVE).display()),
            "download failed from every mirror",
            "MD5 mismatch of the archive: expected c32a1d4ab5d03f1284b67883e8d87530",
            &md5_hex(&archive),
        ],
    );
    assert_eq!(tree(&dest), Vec::<String>::new());
    // also from a URL-style mirror, then a good mirror after a bad one succeeds
    let bad = t.path().join("bad");
    write_files(&bad, &[(ARCHIVE.into(), archive[..archive.len() / 2].to_vec())]);
    let ds = test_cifar10(md5_hex(&archive));
    let e = download(&ds, &dest, &[s(&bad)]).unwrap_err();
    assert_err_contains(e, &["MD5 mismatch"]);
    assert_eq!(tree(&dest), Vec::<String>::new());
    download(&ds, &dest, &[s(&bad), s(&mirror)]).unwrap();
    assert!(dest.join("cifar-10-batches-bin/test_batch.bin").is_file());
}

#[test]
fn verified_archive_missing_a_batch_unpacks_nothing() {
    let t = tempfile::tempdir().unwrap();
    let mut files = cifar10_files(1, 1).files;
    let batch3 = files.iter().position(|(n, _)| n == "data_batch_3.bin").unwrap();
    // only direct members of the batch folder count: a nested copy is skipped
    files[batch3].0 = "nested/data_batch_3.bin".into();
    let archive = tar_gz("cifar-10-batches-bin", &files);
    let mirror = t.path().join("mirror");
    write_files(&mirror, &[(ARCHIVE.into(), archive.clone())]);
    let dest = t.path().join("out").join("cifar10");
    let e = download(&test_cifar10(md5_hex(&archive)), &dest, &[s(&mirror)]).unwrap_err();
    assert_err_contains(e, &[ARCHIVE, "archive lacks cifar-10-batches-bin/data_batch_3.bin"]);
    assert_eq!(tree(&t.path().join("out")), vec!["cifar10".to_string()]);
}

#[test]
fn not_found_says_which_batch_files_it_wanted() {
    let t = tempfile::tempdir().unwrap();
    let opts = DataOptions { data_dir: Some(t.path().to_path_buf()), ..Default::default() };
    std::fs::create_dir_all(t.path().join("cifar100")).unwrap();
    let e = load("cifar100", &opts).unwrap_err();
    assert_err_contains(e, &["cifar100", "lacks cifar-100-binary/train.bin, cifar-100-binary/test.bin", "--download"]);
}
