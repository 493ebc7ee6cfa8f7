//! Test helpers shared by the workspace's crates. A dev-dependency only (never published):
//! where the real data sets are, tiny IDX files, deterministic noise and (feature `onnx`) a
//! foreign ONNX model with its reference implementation.
#![warn(missing_docs)]

pub mod idx;
#[cfg(feature = "onnx")]
pub mod onnx;

use std::path::{Path, PathBuf};

/// The directory holding `mnist/` and `fashion-mnist/`: `<repo>/../shared/data`, else
/// `$APSIG_DATA_DIR`. `None` when neither has `mnist/` (a test may then skip).
pub fn shared_data() -> Option<PathBuf> {
    let rel = repo_relative_data();
    if rel.join("mnist").is_dir() {
        return Some(rel);
    }
    let env = std::env::var_os("APSIG_DATA_DIR").map(PathBuf::from)?;
    env.join("mnist").is_dir().then_some(env)
}

/// As [`shared_data`], for tests that need the data: falls back to `<repo>/../shared/data`
/// (so a missing data set fails the test with that path in the message).
pub fn data_dir() -> PathBuf {
    shared_data().unwrap_or_else(repo_relative_data)
}

fn repo_relative_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

/// `n` deterministic values in `[-scale, scale)` from `seed` (a 64-bit LCG).
pub fn noise(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_deterministic_and_in_range() {
        let a = noise(1000, 7, 0.5);
        assert_eq!(a, noise(1000, 7, 0.5));
        assert_ne!(a, noise(1000, 8, 0.5));
        assert!(a.iter().all(|v| (-0.5..0.5).contains(v)));
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        assert!(mean.abs() < 0.05, "mean {mean}");
    }
}
