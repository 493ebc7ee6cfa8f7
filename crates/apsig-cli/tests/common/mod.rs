//! Helpers shared by the CLI's integration tests: running the built binary in a clean
//! environment, judging its failures, and tiny artefacts made through the library.
#![allow(dead_code)]

use apsig::decoder::{Decoder, DecoderConfig};
use apsig::model::{save_network, Arch, TrainConfig};
use apsig::nn::{Network, Shape};
use apsig::signature::SignatureSet;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use testkit::data_dir;

/// The built `apsig` binary with an environment that cannot find data by accident: no
/// `$APSIG_DATA_DIR`, no XDG cache, `$HOME` an empty directory, default log level.
pub fn apsig(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_apsig"));
    c.env_remove("APSIG_DATA_DIR")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("APSIG_LOG")
        .env_remove("RUST_BACKTRACE")
        .env("HOME", home);
    c
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The failure the CLI promises: exit status 1, stderr exactly one line `error: ...` that
/// contains every needle (the file and the problem), and no panic. Returns the line.
pub fn assert_clean_failure(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "status {:?}, stderr: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr is not one line: {stderr:?}");
    assert!(lines[0].starts_with("error: "), "{stderr:?}");
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} not in {:?}", lines[0]);
    }
    // no cause printed twice (a library message that embeds its source, then the source)
    let parts: Vec<&str> = lines[0].split(": ").collect();
    assert!(parts.windows(2).all(|w| w[0] != w[1]), "repeated cause in {:?}", lines[0]);
    lines[0].to_string()
}

/// Paths under `dir` (recursively), for "nothing was left behind" checks.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A small uncompressed IDX data set in `dir`: `(train images, train labels)` counts given,
/// 5 test images and labels.
pub fn write_idx_set(dir: &Path, train_images: u32, train_labels: u32, images_magic: u32) {
    std::fs::create_dir_all(dir).unwrap();
    use testkit::idx::{cycling, images, images_with_magic, labels};
    for (name, bytes) in [
        ("train-images-idx3-ubyte", images_with_magic(images_magic, train_images, 28, 28)),
        ("train-labels-idx1-ubyte", labels(&cycling(train_labels as usize, 10))),
        ("t10k-images-idx3-ubyte", images(5, 28, 28)),
        ("t10k-labels-idx1-ubyte", labels(&cycling(5, 10))),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// Copies the four real MNIST files into `dir` (any name but a known set's, so that no
/// MD5 check intervenes and the parser itself must notice damage).
pub fn copy_mnist(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for f in [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        std::fs::copy(data_dir().join("mnist").join(f), dir.join(f)).unwrap();
    }
}

/// A signature set of `n` test images with `k` eps each (deterministic, positive).
pub fn signatures(k: usize, n: usize, directions: &str) -> SignatureSet {
    SignatureSet {
        k,
        indices: (0..n as u32).collect(),
        eps: (0..n * k).map(|i| 0.1 + (i * 37 % 101) as f32 / 10.0).collect(),
        censored: (0..n * k).map(|i| (i % 7 == 0) as u8).collect(),
        queries: vec![12; n * k],
        provenance: BTreeMap::from([
            ("dataset".to_string(), "mnist".to_string()),
            ("split".to_string(), "test".to_string()),
            ("directions".to_string(), directions.to_string()),
        ]),
    }
}

/// A tiny decoder for K = `k`, trained briefly on 64 random images, saved at `path`.
pub fn tiny_decoder(path: &Path, k: usize, directions: &str) {
    let sigs = signatures(k, 64, directions);
    let mut st = 7u32;
    let images: Vec<f32> = (0..64 * 784)
        .map(|_| {
            st = st.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (st >> 8) as f32 / (1u32 << 24) as f32
        })
        .collect();
    let cfg = DecoderConfig {
        width: 4,
        hidden: 0,
        use_mask: false,
        class_weight: 0.0,
        class_noise: 0.0,
        loss: Default::default(),
        palette: false,
        train: TrainConfig { final_lr_frac: 0.1, ..TrainConfig::new(2, 32, 2e-3, 1) },
    };
    let (d, _) = Decoder::fit(&sigs, &images, Shape::new(28, 28, 1), &cfg, None, None, &apsig::NoProgress).unwrap();
    d.save(path, &BTreeMap::new()).unwrap();
}

/// An untrained classifier of `arch` for 28x28 MNIST, saved at `path`.
pub fn untrained(path: &Path, arch: Arch, seed: u64) {
    let shape = Shape::new(28, 28, 1);
    let net = Network::new(shape, arch.layers(shape, 10, 0), seed).unwrap();
    save_network(path, arch, &net, &BTreeMap::new()).unwrap();
}

/// `apsig serve --model MODEL` with `extra` flags on a free port of 127.0.0.1, up and healthy;
/// its stderr goes to `stderr`. Returns the child and the port.
pub fn serve(home: &Path, model: &Path, extra: &[&str], stderr: Stdio) -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = apsig(home)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--model", s(model)])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let up = Instant::now();
    while !healthy(port) {
        assert!(up.elapsed() < Duration::from_secs(30), "the server did not come up");
        assert!(child.try_wait().unwrap().is_none(), "the server exited early");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

/// Whether `apsig serve` on `port` answers its health check.
fn healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.starts_with("HTTP/1.1 200")
}
