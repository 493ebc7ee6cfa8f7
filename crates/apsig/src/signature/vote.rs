//! The attacker's answer to randomised answers: an oracle wrapper that asks every probe
//! `votes` times (odd) in the same batch and keeps the majority. Attack-side code, so it sees
//! only what the wrapped oracle answers; each repetition is a query and is counted.

use crate::directions::Directions;
use crate::error::{Error, Result};
use crate::oracle::{ChangeOracle, Probe};

/// A `ChangeOracle` that answers each probe by majority over `votes` repeats of it.
pub struct MajorityVote<'a> {
    inner: &'a dyn ChangeOracle,
    votes: usize,
}

impl<'a> MajorityVote<'a> {
    /// A voter over `inner`; `votes` must be odd.
    pub fn new(inner: &'a dyn ChangeOracle, votes: usize) -> Result<Self> {
        if votes == 0 || votes.is_multiple_of(2) {
            return Err(Error::invalid("votes", format!("{votes} (must be odd)")));
        }
        Ok(MajorityVote { inner, votes })
    }

    fn vote(&self, bits: Vec<bool>, n: usize) -> Vec<bool> {
        (0..n).map(|i| (0..self.votes).filter(|r| bits[r * n + i]).count() * 2 > self.votes).collect()
    }
}

impl ChangeOracle for MajorityVote<'_> {
    fn input_len(&self) -> usize {
        self.inner.input_len()
    }
    fn changed(&self, perturbations: &[f32]) -> Result<Vec<bool>> {
        let n = perturbations.len() / self.input_len().max(1);
        let all: Vec<f32> = (0..self.votes).flat_map(|_| perturbations.iter().copied()).collect();
        Ok(self.vote(self.inner.changed(&all)?, n))
    }
    fn changed_along(&self, dirs: &Directions, probes: &[Probe]) -> Result<Vec<bool>> {
        let all: Vec<Probe> = (0..self.votes).flat_map(|_| probes.iter().copied()).collect();
        Ok(self.vote(self.inner.changed_along(dirs, &all)?, probes.len()))
    }
    fn queries(&self) -> u64 {
        self.inner.queries()
    }
    fn queries_per_answer(&self) -> u64 {
        self.votes as u64 * self.inner.queries_per_answer()
    }
}
