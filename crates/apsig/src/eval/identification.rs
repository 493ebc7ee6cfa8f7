//! Identification: does the *specific* secret come back, not just its class?
//!
//! A reconstruction identifies its secret when, among all evaluated originals, its own is the
//! nearest by L2 (strictly: a tie with another original does not count). The within-class
//! share lets only originals of the secret's own class compete, so it measures style rather
//! than class. Chance is what a reconstruction that carries no information scores: `1 / n`
//! overall, and the mean of `1 / |class of i|` within class.

use crate::kernels::{matmul, Threads, Trans};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Identification shares of a set of reconstructions, with chance levels beside them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Identification {
    /// Share whose nearest original (all secrets compete) is their own.
    pub overall: f64,
    /// Share whose nearest original among those of the same class is their own.
    pub within_class: f64,
    /// Chance level of `overall`: `1 / n`.
    pub chance_overall: f64,
    /// Chance level of `within_class`: the mean over secrets of `1 / (secrets in its class)`.
    pub chance_within_class: f64,
}

/// Rows of reconstructions compared against all originals in one GEMM.
const BLOCK: usize = 128;

/// Identification of `n = labels.len()` reconstructions of `px` values each.
pub fn identification(recons: &[f32], originals: &[f32], labels: &[u8], px: usize) -> Identification {
    summarise(&identified_each(recons, originals, labels, px), labels)
}

/// The shares and chance levels of per-secret verdicts (`identified_each`).
pub fn summarise(each: &[[bool; 2]], labels: &[u8]) -> Identification {
    let n = labels.len();
    if n == 0 {
        return Identification { overall: 0.0, within_class: 0.0, chance_overall: 0.0, chance_within_class: 0.0 };
    }
    let mut class_size = [0usize; 256];
    for &l in labels {
        class_size[l as usize] += 1;
    }
    let share = |f: fn(&[bool; 2]) -> bool| each.iter().filter(|v| f(v)).count() as f64 / n as f64;
    let chance_within = labels.iter().map(|&l| 1.0 / class_size[l as usize] as f64).sum::<f64>() / n as f64;
    Identification {
        overall: share(|v| v[0]),
        within_class: share(|v| v[1]),
        chance_overall: 1.0 / n as f64,
        chance_within_class: chance_within,
    }
}

/// Per secret, whether its reconstruction identifies it: `[among all, within its class]`.
///
/// Distances come from one GEMM per block (`|o|^2 - 2 r.o`, in f32); only originals within a
/// safety margin of the secret's own distance (near ties) are re-measured exactly in f64, so
/// the verdict does not hang on f32 rounding and a baseline that paints one image for every
/// secret (half of all originals nearer) costs no more than the GEMM.
pub fn identified_each(recons: &[f32], originals: &[f32], labels: &[u8], px: usize) -> Vec<[bool; 2]> {
    let n = labels.len();
    assert_eq!(recons.len(), n * px, "reconstructions do not match the labels");
    assert_eq!(originals.len(), n * px, "originals do not match the labels");
    let norms: Vec<f32> = originals.par_chunks(px).map(|o| o.iter().map(|v| v * v).sum()).collect();
    recons
        .par_chunks(BLOCK * px)
        .enumerate()
        .flat_map_iter(|(b, block)| {
            let rows = block.len() / px;
            let mut dots = vec![0.0f32; rows * n];
            matmul(rows, n, px, block, Trans::No, originals, Trans::Yes, &mut dots, false, Threads::One);
            let norms = &norms;
            (0..rows)
                .map(move |r| {
                    let recon = &block[r * px..(r + 1) * px];
                    let (all, same_class) =
                        nearest_is_own(b * BLOCK + r, recon, &dots[r * n..(r + 1) * n], norms, originals, labels, px);
                    [all, same_class]
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether secret `i`'s own original is strictly nearest to `recon`, among all originals and
/// among those of its class. `dots[j] = recon . original_j`.
fn nearest_is_own(
    i: usize,
    recon: &[f32],
    dots: &[f32],
    norms: &[f32],
    originals: &[f32],
    labels: &[u8],
    px: usize,
) -> (bool, bool) {
    // Approximate squared distances up to the common |recon|^2 term.
    let approx = |j: usize| norms[j] - 2.0 * dots[j];
    let own = approx(i);
    // f32 error of a length-px dot product of values in [0, 1] is far below this margin.
    let margin = 1e-4 * px as f32;
    let exact = |j: usize| -> f64 {
        let o = &originals[j * px..(j + 1) * px];
        recon.iter().zip(o).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum()
    };
    let own_exact = exact(i);
    let (mut all, mut same_class) = (true, true);
    for j in (0..dots.len()).filter(|&j| j != i && approx(j) <= own + margin) {
        // clearly nearer by the GEMM distance, or nearer when measured exactly (near a tie)
        if approx(j) < own - margin || exact(j) <= own_exact {
            all = false;
            if labels[j] == labels[i] {
                same_class = false;
                break;
            }
        }
    }
    (all, same_class)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn images(n: usize, px: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..n * px).map(|_| rng.uniform()).collect()
    }

    #[test]
    fn originals_identify_themselves_and_a_shuffle_identifies_nobody() {
        let (n, px) = (300, 49);
        let o = images(n, px, 1);
        let labels: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
        let id = identification(&o, &o, &labels, px);
        assert_eq!((id.overall, id.within_class), (1.0, 1.0));
        assert!((id.chance_overall - 1.0 / 300.0).abs() < 1e-12);
        assert!((id.chance_within_class - 1.0 / 100.0).abs() < 1e-12);
        // Each reconstruction is the original of the next secret (same class: i + 3).
        let shifted: Vec<f32> = (0..n).flat_map(|i| o[((i + 3) % n) * px..((i + 3) % n + 1) * px].to_vec()).collect();
        let id = identification(&shifted, &o, &labels, px);
        assert_eq!((id.overall, id.within_class), (0.0, 0.0));
    }

    #[test]
    fn other_class_neighbour_counts_against_overall_only() {
        // Secret 0 (class 0) is reconstructed as exactly secret 1's original (class 1).
        let px = 4;
        let o = vec![0.4, 0.4, 0.4, 0.4, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0];
        let labels = [0u8, 1, 0];
        let mut r = o.clone();
        r[..4].copy_from_slice(&[0.9, 0.9, 0.9, 0.9]);
        let id = identification(&r, &o, &labels, px);
        // Secret 0 loses overall (secret 1 is nearer) but wins within class 0 against secret 2.
        assert!((id.overall - 2.0 / 3.0).abs() < 1e-12);
        assert!((id.within_class - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_tie_does_not_identify() {
        let px = 2;
        let o = vec![0.0, 0.0, 1.0, 1.0];
        let r = vec![0.5, 0.5, 1.0, 1.0];
        let id = identification(&r, &o, &[0, 0], px);
        assert!((id.overall - 0.5).abs() < 1e-12);
    }

    #[test]
    fn gemm_blocks_agree_with_brute_force() {
        let (n, px) = (BLOCK * 2 + 17, 30);
        let o = images(n, px, 2);
        let noise = images(n, px, 3);
        let r: Vec<f32> = o.iter().zip(&noise).map(|(a, b)| a + 1.5 * (b - 0.5)).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 5) as u8).collect();
        let id = identification(&r, &o, &labels, px);
        let d = |i: usize, j: usize| -> f64 {
            (0..px).map(|p| (f64::from(r[i * px + p]) - f64::from(o[j * px + p])).powi(2)).sum()
        };
        let (mut all, mut within) = (0, 0);
        for i in 0..n {
            all += usize::from((0..n).all(|j| j == i || d(i, j) > d(i, i)));
            within += usize::from((0..n).all(|j| j == i || labels[j] != labels[i] || d(i, j) > d(i, i)));
        }
        assert!(all > 0 && all < n, "test noise should make some but not all secrets fail: {all}");
        assert_eq!(id.overall, all as f64 / n as f64);
        assert_eq!(id.within_class, within as f64 / n as f64);
    }
}
