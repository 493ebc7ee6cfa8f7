//! Finding a data set on disk (and fetching it when allowed).
//!
//! The environment is read through a closure so the search order can be
//! tested without mutating process-wide environment variables.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::cifar;
use crate::download::download;
use crate::error::{DataError, Result};
use crate::known::{known, known_names, Published};

/// File-name stems of a data-set directory: (images, labels) for train and test.
pub const TRAIN_FILES: (&str, &str) = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte");
/// See [`TRAIN_FILES`].
pub const TEST_FILES: (&str, &str) = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte");

/// Path of `stem.gz` or `stem` in `dir`, preferring the compressed copy
/// (that is what downloads produce, so it is the one that was verified).
pub fn find_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    let gz = dir.join(format!("{stem}.gz"));
    if gz.is_file() {
        return Some(gz);
    }
    let raw = dir.join(stem);
    raw.is_file().then_some(raw)
}

/// Environment variable naming a directory that holds `<name>/` data-set folders.
pub const DATA_DIR_ENV: &str = "APSIG_DATA_DIR";
/// Where Debian's `dataset-*` packages install data sets.
pub const SYSTEM_DATA_DIR: &str = "/usr/share/datasets";

/// How to find data: the CLI maps `--data-dir`, `--download` and
/// `--no-verify` onto this.
#[derive(Clone, Debug)]
pub struct DataOptions {
    /// A directory holding `<name>/` folders; searched before anything else
    /// and, when given, the download destination.
    pub data_dir: Option<PathBuf>,
    /// Allow fetching from the known mirrors when no local copy exists.
    pub download: bool,
    /// Check MD5 of the decompressed files of known data sets.
    pub verify: bool,
}

impl Default for DataOptions {
    fn default() -> Self {
        DataOptions { data_dir: None, download: false, verify: true }
    }
}

type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

fn process_env(key: &str) -> Option<OsString> {
    std::env::var_os(key)
}

fn non_empty(v: Option<OsString>) -> Option<PathBuf> {
    v.filter(|s| !s.is_empty()).map(PathBuf::from)
}

/// Per-user download cache: `$XDG_CACHE_HOME/apsig/datasets`, else
/// `$HOME/.cache/apsig/datasets`; `None` when neither is set.
pub fn default_cache_dir() -> Option<PathBuf> {
    cache_dir_with(&process_env)
}

fn cache_dir_with(env: Env) -> Option<PathBuf> {
    let base = non_empty(env("XDG_CACHE_HOME"))
        .filter(|p| p.is_absolute())
        .or_else(|| non_empty(env("HOME")).map(|h| h.join(".cache")))?;
    Some(base.join("apsig").join("datasets"))
}

/// Every directory [`locate`] inspects for `name`, in priority order; public
/// so a CLI can print where it would look.
pub fn search_dirs(name: &str, opts: &DataOptions) -> Vec<PathBuf> {
    search_dirs_with(name, opts, &process_env, Path::new(SYSTEM_DATA_DIR))
}

fn search_dirs_with(name: &str, opts: &DataOptions, env: Env, system: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = &opts.data_dir {
        dirs.push(d.join(name));
    }
    if let Some(d) = non_empty(env(DATA_DIR_ENV)) {
        dirs.push(d.join(name));
    }
    if let Some(d) = cache_dir_with(env) {
        dirs.push(d.join(name));
    }
    dirs.push(system.join(name));
    dirs
}

/// Files of a complete copy of data set `name` that are absent from `dir`: the four IDX files
/// (`[.gz]`) for an IDX set or a name we do not know, the batch files for CIFAR.
fn missing_files(dir: &Path, name: &str) -> Vec<String> {
    match known(name).map(|ds| &ds.published) {
        Some(Published::CifarArchive { kind, .. }) => cifar::missing_files(dir, *kind),
        Some(Published::Idx(_)) | None => [TRAIN_FILES.0, TRAIN_FILES.1, TEST_FILES.0, TEST_FILES.1]
            .into_iter()
            .filter(|stem| find_file(dir, stem).is_none())
            .map(|stem| format!("{stem}[.gz]"))
            .collect(),
    }
}

/// Whether `dir` holds a complete copy of data set `name` (see [`locate`]); a partial
/// directory is skipped so an interrupted copy does not shadow a good one.
pub fn is_complete(dir: &Path, name: &str) -> bool {
    missing_files(dir, name).is_empty()
}

/// Returns the first complete directory for `name` (the four IDX files; for CIFAR its batch
/// files, directly or in the folder the archive unpacks to), downloading into the data dir
/// (or the cache) if none exists and `opts.download` allows it.
///
/// Order: `opts.data_dir/<name>`, `$APSIG_DATA_DIR/<name>`,
/// [`default_cache_dir`]`/<name>`, `/usr/share/datasets/<name>`.
pub fn locate(name: &str, opts: &DataOptions) -> Result<PathBuf> {
    locate_with(name, opts, &process_env, Path::new(SYSTEM_DATA_DIR))
}

fn locate_with(name: &str, opts: &DataOptions, env: Env, system: &Path) -> Result<PathBuf> {
    let dirs = search_dirs_with(name, opts, env, system);
    if let Some(found) = dirs.iter().find(|d| is_complete(d, name)) {
        tracing::debug!(dir = %found.display(), name, "data set found");
        return Ok(found.clone());
    }
    if opts.download {
        let ds =
            known(name).ok_or_else(|| DataError::UnknownDataset { name: name.to_string(), known: known_names() })?;
        let dest = match &opts.data_dir {
            Some(d) => d.join(name),
            None => cache_dir_with(env).ok_or_else(|| DataError::NoCacheDir { name: name.to_string() })?.join(name),
        };
        let mirrors: Vec<String> = ds.mirrors.iter().map(|m| m.to_string()).collect();
        download(ds, &dest, &mirrors)?;
        return Ok(dest);
    }
    let looked = dirs
        .iter()
        .map(|d| {
            if !d.is_dir() {
                format!("{} (no such directory)", d.display())
            } else {
                format!("{} (lacks {})", d.display(), missing_files(d, name).join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    Err(DataError::NotFound { name: name.to_string(), looked })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn complete(root: &Path, name: &str) -> PathBuf {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in [TRAIN_FILES.0, TRAIN_FILES.1, TEST_FILES.0, TEST_FILES.1] {
            std::fs::write(d.join(format!("{f}.gz")), b"x").unwrap();
        }
        d
    }

    type FakeEnv = Box<dyn Fn(&str) -> Option<OsString>>;

    fn env_of(pairs: &[(&str, &Path)]) -> FakeEnv {
        let m: HashMap<String, OsString> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.as_os_str().to_owned())).collect();
        Box::new(move |k| m.get(k).cloned())
    }

    #[test]
    fn flag_beats_env_beats_cache_beats_system() {
        let t = tempfile::tempdir().unwrap();
        let (flag, envd, xdg, system) =
            (t.path().join("flag"), t.path().join("env"), t.path().join("xdg"), t.path().join("sys"));
        let cache = xdg.join("apsig").join("datasets");
        let env = env_of(&[(DATA_DIR_ENV, &envd), ("XDG_CACHE_HOME", &xdg), ("HOME", Path::new("/nonexistent-home"))]);
        let opts = DataOptions { data_dir: Some(flag.clone()), ..Default::default() };
        let order = search_dirs_with("mnist", &opts, &env, &system);
        assert_eq!(order, vec![flag.join("mnist"), envd.join("mnist"), cache.join("mnist"), system.join("mnist")]);

        // Only the system dir is complete, then add each higher-priority one.
        let sys_d = complete(&system, "mnist");
        assert_eq!(locate_with("mnist", &opts, &env, &system).unwrap(), sys_d);
        let cache_d = complete(&cache, "mnist");
        assert_eq!(locate_with("mnist", &opts, &env, &system).unwrap(), cache_d);
        let env_d = complete(&envd, "mnist");
        assert_eq!(locate_with("mnist", &opts, &env, &system).unwrap(), env_d);
        // An incomplete flag dir does not shadow the env dir.
        std::fs::create_dir_all(flag.join("mnist")).unwrap();
        std::fs::write(flag.join("mnist").join("train-images-idx3-ubyte"), b"x").unwrap();
        assert_eq!(locate_with("mnist", &opts, &env, &system).unwrap(), env_d);
        let flag_d = complete(&flag, "mnist");
        assert_eq!(locate_with("mnist", &opts, &env, &system).unwrap(), flag_d);
    }

    #[test]
    fn cache_dir_prefers_xdg_then_home() {
        let xdg = Path::new("/x");
        let home = Path::new("/h");
        assert_eq!(
            cache_dir_with(&env_of(&[("XDG_CACHE_HOME", xdg), ("HOME", home)])),
            Some(PathBuf::from("/x/apsig/datasets"))
        );
        assert_eq!(
            cache_dir_with(&env_of(&[("XDG_CACHE_HOME", Path::new("relative")), ("HOME", home)])),
            Some(PathBuf::from("/h/.cache/apsig/datasets"))
        );
        assert_eq!(cache_dir_with(&env_of(&[])), None);
    }

    #[test]
    fn not_found_lists_every_place_and_the_fixes() {
        let t = tempfile::tempdir().unwrap();
        let flag = t.path().join("flag");
        std::fs::create_dir_all(flag.join("mnist")).unwrap();
        let env = env_of(&[(DATA_DIR_ENV, &t.path().join("env")), ("HOME", &t.path().join("home"))]);
        let opts = DataOptions { data_dir: Some(flag.clone()), ..Default::default() };
        let e = locate_with("mnist", &opts, &env, &t.path().join("sys")).unwrap_err().to_string();
        for needle in [
            "flag/mnist (lacks train-images",
            "env/mnist (no such directory)",
            "home/.cache/apsig/datasets/mnist",
            "sys/mnist",
            "--data-dir",
            "APSIG_DATA_DIR",
            "--download",
        ] {
            assert!(e.contains(needle), "missing {needle:?} in {e}");
        }
        assert!(!e.contains('\n'));
    }

    #[test]
    fn download_of_unknown_name_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let opts = DataOptions { data_dir: Some(t.path().to_path_buf()), download: true, verify: true };
        let e = locate_with("kmnist", &opts, &env_of(&[]), t.path()).unwrap_err().to_string();
        assert!(e.contains("kmnist") && e.contains("mnist, fashion-mnist"), "{e}");
    }
}
