//! Fetching a known data set from mirrors, with verification before a file
//! ever appears under its final name.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};

use crate::cifar::{self, CifarKind};
use crate::error::{DataError, Result};
use crate::idx::{read_maybe_gz, MAX_PAYLOAD_BYTES};
use crate::known::{verify_md5, KnownArchive, KnownDataset, KnownFile, Published};

/// Fetches `ds` into `dest`, trying `mirrors` in order for each file.
///
/// A mirror is an `http(s)://` base URL, a `file:///abs/dir/` URL, or a
/// plain directory path (offline installs and tests). Each file is written to
/// `<name>.part`, its MD5 checked, and only then put in place, so a final name never holds
/// partial or unverified bytes:
/// - IDX files: the decompressed MD5, then a rename; files already present and valid are
///   kept, so a rerun resumes an interrupted set;
/// - a CIFAR archive: the MD5 of the archive as published, then its batch files are unpacked
///   into a temporary folder renamed to `dest/<archive folder>` (the archive is not kept).
///
/// The digests come from `ds`, so a caller (a test, a private mirror of other data) can pass
/// its own [`KnownDataset`].
pub fn download(ds: &KnownDataset, dest: &Path, mirrors: &[String]) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(|e| DataError::io(dest, "create directory", e))?;
    match &ds.published {
        Published::Idx(files) => files.iter().try_for_each(|file| download_file(file, dest, mirrors)),
        Published::CifarArchive { archive, kind } => download_archive(archive, *kind, dest, mirrors),
    }
}

fn download_archive(archive: &KnownArchive, kind: CifarKind, dest: &Path, mirrors: &[String]) -> Result<()> {
    if cifar::missing_files(dest, kind).is_empty() {
        tracing::debug!(dest = %dest.display(), "already unpacked");
        return Ok(());
    }
    let part = dest.join(format!("{}.part", archive.name));
    let mut reasons = Vec::new();
    for mirror in mirrors {
        tracing::info!(file = archive.name, mirror = %mirror, "downloading");
        match fetch(mirror, archive.name, &part).and_then(|()| archive_md5(&part, archive.md5)) {
            Ok(()) => {
                let unpacked = cifar::unpack_archive(&part, kind, dest);
                let _ = std::fs::remove_file(&part);
                return unpacked;
            }
            Err(reason) => {
                let _ = std::fs::remove_file(&part);
                tracing::warn!(file = archive.name, mirror = %mirror, %reason, "mirror failed");
                reasons.push(format!("{mirror}: {reason}"));
            }
        }
    }
    if reasons.is_empty() {
        reasons.push("no mirrors given".to_string());
    }
    Err(DataError::Download { path: dest.join(archive.name), reasons: reasons.join("; ") })
}

/// Checks the MD5 of a file's bytes as they are (an archive is not decompressed first).
fn archive_md5(path: &Path, expected: &str) -> std::result::Result<(), String> {
    let mut file = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = io::Read::read(&mut file, &mut buf).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let actual: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(format!("MD5 mismatch of the archive: expected {expected}, got {actual} (not the published file; refused)"))
    }
}

fn download_file(file: &KnownFile, dest: &Path, mirrors: &[String]) -> Result<()> {
    let final_path = dest.join(file.name);
    if final_path.is_file() && verify(&final_path, file).is_ok() {
        tracing::debug!(path = %final_path.display(), "already present and verified");
        return Ok(());
    }
    let part = dest.join(format!("{}.part", file.name));
    let mut reasons = Vec::new();
    for mirror in mirrors {
        tracing::info!(file = file.name, mirror = %mirror, "downloading");
        match fetch(mirror, file.name, &part).and_then(|()| verify(&part, file).map_err(|e| e.to_string())) {
            Ok(()) => {
                return std::fs::rename(&part, &final_path).map_err(|e| {
                    let _ = std::fs::remove_file(&part);
                    DataError::io(&part, format!("rename to {}", final_path.display()), e)
                });
            }
            Err(reason) => {
                let _ = std::fs::remove_file(&part);
                tracing::warn!(file = file.name, mirror = %mirror, %reason, "mirror failed");
                reasons.push(format!("{mirror}: {reason}"));
            }
        }
    }
    if reasons.is_empty() {
        reasons.push("no mirrors given".to_string());
    }
    Err(DataError::Download { path: final_path, reasons: reasons.join("; ") })
}

fn verify(path: &Path, file: &KnownFile) -> Result<()> {
    verify_md5(&read_maybe_gz(path)?, file.md5_uncompressed, path)
}

/// Fetches `name` from `mirror` into `part` (replacing any stale copy); the error is a one-line
/// reason to collect per mirror.
fn fetch(mirror: &str, name: &str, part: &Path) -> std::result::Result<(), String> {
    match std::fs::remove_file(part) {
        Ok(()) => tracing::debug!(part = %part.display(), "removed stale partial download"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot remove stale {}: {e}", part.display())),
    }
    let mut out = File::create(part).map_err(|e| format!("cannot create {}: {e}", part.display()))?;
    match Source::parse(mirror) {
        Source::Http(base) => {
            let url = format!("{}/{}", base.trim_end_matches('/'), name);
            let response = agent().get(&url).call().map_err(|e| format!("GET {url}: {e}"))?;
            let mut body = response.into_body().into_with_config().limit(MAX_PAYLOAD_BYTES + 1024).reader();
            io::copy(&mut body, &mut out).map_err(|e| format!("GET {url}: {e}"))?;
        }
        Source::Dir(dir) => {
            let src = dir.join(name);
            let mut input = File::open(&src).map_err(|e| format!("cannot open {}: {e}", src.display()))?;
            io::copy(&mut input, &mut out).map_err(|e| format!("cannot copy {}: {e}", src.display()))?;
        }
    }
    out.sync_all().map_err(|e| format!("cannot write {}: {e}", part.display()))
}

enum Source {
    Http(String),
    Dir(PathBuf),
}

impl Source {
    fn parse(mirror: &str) -> Source {
        if mirror.starts_with("http://") || mirror.starts_with("https://") {
            Source::Http(mirror.to_string())
        } else if let Some(rest) = mirror.strip_prefix("file://") {
            Source::Dir(PathBuf::from(rest.strip_prefix("localhost").unwrap_or(rest)))
        } else {
            Source::Dir(PathBuf::from(mirror))
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_recv_body(Some(Duration::from_secs(600)))
        .build()
        .new_agent()
}
