//! Faults of the environment rather than of the inputs: an output place that cannot be
//! written, a full disk, missing data, an interrupted download. Each must end in exit
//! status 1 with an `error:` line naming the place, and leave nothing half-done behind.
//!
//! The tests run as root, for whom a `chmod 0o555` directory is still writable, so an
//! unwritable output directory is made in ways that stop root too: a parent that is a
//! regular file (EEXIST from creating the directory) and a place under `/proc` (no regular files can be created).

mod common;

use apsig::model::Arch;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `apsig directions --k 100`: a 313 KB output written without touching any data.
fn directions_to(home: &Path, out: &Path) -> Command {
    let mut c = apsig(home);
    c.args(["directions", "--k", "100", "--out"]).arg(out);
    c
}

#[test]
fn output_directory_is_a_regular_file() {
    let t = tempfile::tempdir().unwrap();
    let blocker = t.path().join("results");
    std::fs::write(&blocker, b"a file, not a directory").unwrap();
    let out = directions_to(t.path(), &blocker.join("d.safetensors")).output().unwrap();
    assert_clean_failure(&out, &[s(&blocker), "File exists"]);
    assert_eq!(std::fs::read(&blocker).unwrap(), b"a file, not a directory");
    assert_eq!(files_under(t.path()), vec![blocker]);
}

#[test]
fn output_directory_under_proc() {
    let t = tempfile::tempdir().unwrap();
    let target = Path::new("/proc/self/apsig-out/d.safetensors");
    let out = directions_to(t.path(), target).output().unwrap();
    assert_clean_failure(&out, &["/proc/self/apsig-out"]);
    assert!(!target.exists());
    assert_eq!(files_under(t.path()), Vec::<PathBuf>::new());
}

/// A 64 KiB tmpfs, unmounted again when dropped (also when the test fails).
struct SmallTmpfs(PathBuf);
impl SmallTmpfs {
    fn mount(dir: &Path) -> Option<SmallTmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount").args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"]).arg(dir).output().ok()?;
        if !st.status.success() {
            eprintln!("SKIPPED full-disk case: cannot mount a tmpfs ({})", String::from_utf8_lossy(&st.stderr).trim());
            return None;
        }
        Some(SmallTmpfs(dir.to_path_buf()))
    }
}
impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A real ENOSPC: the output does not fit on a 64 KiB tmpfs. Needs the right to mount
/// (root in a container usually has it); elsewhere the case is skipped with a message and
/// `file_size_limit_while_writing` below still covers a write that fails midway.
#[test]
fn disk_full_while_writing() {
    let t = tempfile::tempdir().unwrap();
    let Some(fs) = SmallTmpfs::mount(&t.path().join("small")) else {
        return;
    };
    let target = fs.0.join("d.safetensors");
    let out = directions_to(t.path(), &target).output().unwrap();
    assert_clean_failure(&out, &[s(&target), "No space left on device"]);
    // neither the output nor the temp file of its atomic write is left
    assert_eq!(files_under(&fs.0), Vec::<PathBuf>::new());
}

/// A write that fails midway, without privileges: a file size limit (`ulimit -f`, with
/// SIGXFSZ ignored so the write returns EFBIG instead of killing the process).
#[test]
fn file_size_limit_while_writing() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("out").join("d.safetensors");
    let out = Command::new("sh")
        .args(["-c", "ulimit -f 64; trap '' XFSZ; exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_apsig"))
        .args(["directions", "--k", "100", "--out"])
        .arg(&target)
        .env_remove("APSIG_LOG")
        .output()
        .unwrap();
    assert_clean_failure(&out, &[s(&target), "File too large"]);
    assert_eq!(files_under(&t.path().join("out")), Vec::<PathBuf>::new());
}

#[test]
fn missing_data_directory_lists_every_place_looked() {
    if Path::new("/usr/share/datasets/mnist").exists() {
        eprintln!("SKIPPED: /usr/share/datasets/mnist exists here, so mnist is never missing");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out_dir = t.path().join("out");
    let out = apsig(&home)
        .args(["--data-dir", "/nonexistent", "train-target", "--dataset", "mnist"])
        .arg("--out")
        .arg(out_dir.join("m.safetensors"))
        .output()
        .unwrap();
    let cache = home.join(".cache/apsig/datasets/mnist");
    assert_clean_failure(
        &out,
        &[
            "data set 'mnist' not found",
            "/nonexistent/mnist (no such directory)",
            &format!("{} (no such directory)", cache.display()),
            "/usr/share/datasets/mnist",
            "--data-dir",
            "APSIG_DATA_DIR",
            "--download",
        ],
    );
    assert_eq!(files_under(t.path()), Vec::<PathBuf>::new());
}

const FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// `apsig --download --mirror M.. signatures --count 1` into `<root>/data`: a command that
/// reads the data set but does almost nothing with it.
fn fetch_and_use(root: &Path, mirrors: &[&Path]) -> std::process::Output {
    let (model, dirs) = (root.join("m.safetensors"), root.join("d.safetensors"));
    if !model.exists() {
        untrained(&model, Arch::TargetNetS, 1);
        let out = apsig(root).args(["directions", "--k", "2", "--out"]).arg(&dirs).output().unwrap();
        assert!(out.status.success());
    }
    let mut c = apsig(root);
    c.args(["--download", "--data-dir"]).arg(root.join("data"));
    for m in mirrors {
        c.arg("--mirror").arg(m);
    }
    c.args(["signatures", "--dataset", "mnist", "--count", "1"])
        .args(["--model", s(&model), "--directions", s(&dirs), "--out"])
        .arg(root.join("out/s.safetensors"))
        .output()
        .unwrap()
}

/// A download cut short (the mirror's copy of one file is truncated) fails cleanly: files
/// verified before it stay, the cut one never appears under its final name, no `.part`
/// file is left; a rerun that can reach a good mirror completes the set.
#[test]
fn interrupted_download_leaves_no_partial_file_and_resumes() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let (cut, good) = (root.join("cut"), root.join("good"));
    copy_mnist(&cut);
    copy_mnist(&good);
    let f = cut.join("t10k-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();

    let out = fetch_and_use(root, &[&cut]);
    let dest = root.join("data/mnist");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // tracing may warn once per failed mirror before the one error line
    let lines: Vec<&str> = stderr.lines().collect();
    let (last, before) = lines.split_last().unwrap();
    assert!(before.iter().all(|l| l.contains("mirror failed")), "{stderr}");
    // and, written to a pipe, no terminal colour codes
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
    assert!(last.starts_with("error: "), "{stderr}");
    for needle in [
        &format!("{}", dest.join("t10k-images-idx3-ubyte.gz").display()),
        "download failed from every mirror",
        s(&cut),
        "truncated gzip",
    ] {
        assert!(last.contains(needle), "{needle:?} not in {last:?}");
    }
    let present: Vec<String> =
        files_under(&dest).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(present, vec![FILES[0].to_string(), FILES[1].to_string()]);
    let mnist = apsig::data::known("mnist").unwrap();
    for (name, file) in present.iter().zip(mnist.idx_files().unwrap()) {
        let p = dest.join(name);
        let raw = apsig::data::read_maybe_gz(&p).unwrap();
        apsig::data::verify_md5(&raw, file.md5_uncompressed, &p).unwrap();
    }
    assert_eq!(files_under(&root.join("out")), Vec::<PathBuf>::new());

    // rerun: the cut mirror first, then a good one
    let out = fetch_and_use(root, &[&cut, &good]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let present: Vec<String> =
        files_under(&dest).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    let mut want: Vec<String> = FILES.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(present, want);
    assert!(root.join("out/s.safetensors").exists());
}
