//! The boundary-distance baseline, re-implemented after HopSkipJump (Chen, Jordan and
//! Wainwright, "HopSkipJumpAttack: A Query-Efficient Decision-Based Attack", IEEE S&P 2020)
//! as label-only membership inference uses it (Choquette-Choo et al., ICML 2021; Li and
//! Zhang, CCS 2021): a directed search for the smallest perturbation that changes the
//! decision, whose length (and here also its direction) is the feature.
//!
//! The search is HopSkipJump's untargeted L2 loop (binary search to the boundary, gradient
//! sign estimate from random probes around the boundary point, geometric step, repeat), run in
//! *perturbation* space: the adversary never sees the secret, so a probe is a perturbation and
//! nothing is clipped to the pixel range. Its initial point is a random direction scaled up
//! until the decision changes (HopSkipJump draws random images instead, which needs the input).
//!
//! Like `search.rs`, the loop is pure: it asks a closure for change bits of explicit
//! perturbations and never sees an oracle. One run serves every budget: the result at budget
//! `b` is the search's point after its last query that fits in `b`.

use crate::error::{Error, Result};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// How the directed search spends its queries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoundaryConfig {
    /// L2 norm of the first random perturbation tried; doubled until the decision changes.
    pub start_norm: f32,
    /// Doublings along one random direction before another is drawn.
    pub doublings: usize,
    /// Gradient-estimate probes of the first iteration (HopSkipJump's B0; iteration t uses
    /// B0 sqrt(t), fewer where a budget would otherwise be passed).
    pub grad_queries: usize,
    /// HopSkipJump's gamma: binary searches stop at a blend precision of gamma / d^1.5, and
    /// gradient probes lie at gamma / d of the distance from the boundary point.
    pub gamma: f32,
}

impl BoundaryConfig {
    /// HopSkipJump's defaults (B0 = 100, gamma = 1), starting at `start_norm`.
    pub fn hop_skip_jump(start_norm: f32) -> Self {
        BoundaryConfig { start_norm, doublings: 24, grad_queries: 100, gamma: 1.0 }
    }

    fn validate(&self) -> Result<()> {
        let ok = self.start_norm.is_finite()
            && self.start_norm > 0.0
            && self.doublings > 0
            && self.grad_queries > 0
            && self.gamma.is_finite()
            && self.gamma > 0.0;
        if ok {
            Ok(())
        } else {
            Err(Error::invalid("boundary search", format!("{self:?}: every value must be positive and finite")))
        }
    }
}

/// The finest binary-search precision (a blend of the perturbation, near 1).
const MIN_THETA: f32 = 1e-6;

/// Step halvings tried before an iteration gives up its step (HopSkipJump halves until the
/// point is past the boundary again; a wrong gradient sign can make that take long).
const MAX_HALVINGS: usize = 20;

/// The fewest gradient probes an iteration shrunk to fit a budget may use.
const MIN_GRADIENT: u64 = 10;

/// What the search knows at one budget.
#[derive(Clone, Debug, PartialEq)]
pub struct BoundaryPoint {
    /// The nearest decision-changing perturbation found (when `found`), or the largest one
    /// tried without a change.
    pub perturbation: Vec<f32>,
    /// Whether any probe changed the decision.
    pub found: bool,
    /// Queries spent by the budget this point is reported at.
    pub queries: u64,
}

impl BoundaryPoint {
    /// The decoder's features: ln of the perturbation's L2 norm, then its unit direction
    /// (zeros when no change was found).
    pub fn features(&self) -> Vec<f32> {
        let norm = l2(&self.perturbation);
        let mut f = Vec::with_capacity(self.perturbation.len() + 1);
        f.push(norm.max(1e-12).ln());
        if self.found && norm > 0.0 {
            f.extend(self.perturbation.iter().map(|v| v / norm));
        } else {
            f.resize(self.perturbation.len() + 1, 0.0);
        }
        f
    }
}

/// Runs the directed search on perturbations of `len` values until the largest of `budgets`
/// (ascending) is spent, and returns its point at each budget. `ask` answers a batch of
/// explicit perturbations (rows of `len`) with one change bit each; `seed` fixes the draws.
pub fn boundary_search(
    len: usize,
    cfg: &BoundaryConfig,
    budgets: &[u64],
    seed: u64,
    ask: impl FnMut(&[f32]) -> Result<Vec<bool>>,
) -> Result<Vec<BoundaryPoint>> {
    cfg.validate()?;
    if len == 0 || budgets.is_empty() || budgets[0] == 0 || budgets.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::invalid(
            "boundary search",
            format!("{len} values per perturbation and budgets {budgets:?} (need ascending, positive budgets)"),
        ));
    }
    let mut s =
        Spender { ask, len, spent: 0, budgets, next: 0, points: Vec::new(), current: vec![0.0; len], found: false };
    hop_skip_jump(&mut s, cfg, &mut Rng::new(seed))?;
    while s.points.len() < budgets.len() {
        s.points.push(s.at_budget());
    }
    Ok(s.points)
}

/// Query accounting around `ask`: records the current point at each budget before a batch
/// would pass it, and refuses batches (returns `None`) once the last budget is reached.
struct Spender<'b, F> {
    ask: F,
    len: usize,
    spent: u64,
    budgets: &'b [u64],
    next: usize,
    points: Vec<BoundaryPoint>,
    /// The search's point now, and whether it changes the decision.
    current: Vec<f32>,
    found: bool,
}

impl<F: FnMut(&[f32]) -> Result<Vec<bool>>> Spender<'_, F> {
    fn ask(&mut self, batch: &[f32]) -> Result<Option<Vec<bool>>> {
        let rows = (batch.len() / self.len) as u64;
        while self.next < self.budgets.len() && self.spent + rows > self.budgets[self.next] {
            self.points.push(self.at_budget());
            self.next += 1;
        }
        if self.next == self.budgets.len() {
            return Ok(None);
        }
        self.spent += rows;
        let bits = (self.ask)(batch)?;
        if bits.len() as u64 != rows {
            return Err(Error::invalid("boundary search", format!("{} answers to {rows} probes", bits.len())));
        }
        Ok(Some(bits))
    }

    /// The current point, with every query spent so far.
    fn at_budget(&self) -> BoundaryPoint {
        BoundaryPoint { perturbation: self.current.clone(), found: self.found, queries: self.spent }
    }

    /// Gradient probes for this iteration: `full`, or fewer where that leaves the step and the
    /// binary search (`reserve` queries) room before the next budget that can still take an
    /// iteration of at least `MIN_GRADIENT` probes (a budget with less room left is passed).
    fn gradient_probes(&self, full: u64, reserve: u64) -> u64 {
        let room = self.budgets[self.next.min(self.budgets.len())..]
            .iter()
            .map(|b| b.saturating_sub(self.spent))
            .find(|&r| r >= reserve + MIN_GRADIENT);
        match room {
            Some(r) if r < full + reserve => r - reserve,
            _ => full,
        }
    }

    /// Keeps the largest perturbation tried without a change, until one changes the decision.
    fn record_unchanged(&mut self, perturbation: Vec<f32>) {
        if !self.found && l2(&perturbation) > l2(&self.current) {
            self.current = perturbation;
        }
    }

    /// Keeps a decision-changing perturbation when it is the nearest found so far.
    fn record_if_nearer(&mut self, perturbation: Vec<f32>) {
        if !self.found || l2(&perturbation) < l2(&self.current) {
            (self.current, self.found) = (perturbation, true);
        }
    }
}

/// HopSkipJump's loop; returns when the budget is spent.
fn hop_skip_jump<F: FnMut(&[f32]) -> Result<Vec<bool>>>(
    s: &mut Spender<'_, F>,
    cfg: &BoundaryConfig,
    rng: &mut Rng,
) -> Result<()> {
    let d = s.len as f32;
    // floored so that a binary search of f32 blends ends (images of more than about 40,000
    // values would ask for a finer precision than f32 holds near 1)
    let theta = (cfg.gamma / d.powf(1.5)).max(MIN_THETA);
    let Some(mut delta) = initial_point(s, cfg, rng)? else { return Ok(()) };
    let Some(b) = to_boundary(s, &delta, theta)? else { return Ok(()) };
    delta = b;
    // a binary search from [0, 1] to precision theta, plus a few step halvings
    let reserve = (1.0 / theta).log2().ceil() as u64 + 3;
    for t in 1.. {
        let dist = l2(&delta);
        let r = d.sqrt() * theta * dist;
        let full = (cfg.grad_queries as f32 * (t as f32).sqrt()).round() as u64;
        // shrink the estimate rather than pass the next budget with the step unmade
        let m = s.gradient_probes(full, reserve);
        let mut probes = Vec::with_capacity(m as usize * s.len);
        let mut units = Vec::with_capacity(m as usize * s.len);
        for _ in 0..m {
            let u = unit_gaussian(s.len, rng);
            probes.extend(delta.iter().zip(&u).map(|(a, b)| a + r * b));
            units.extend(u);
        }
        let Some(bits) = s.ask(&probes)? else { return Ok(()) };
        let phi: Vec<f32> = bits.iter().map(|&b| if b { 1.0 } else { -1.0 }).collect();
        let mean = phi.iter().sum::<f32>() / phi.len() as f32;
        // baseline-subtracted mean of the signs (HopSkipJump's variance reduction), except
        // where every probe agrees
        let centre = if mean.abs() == 1.0 { 0.0 } else { mean };
        let mut v = vec![0.0f32; s.len];
        for (u, p) in units.chunks(s.len).zip(&phi) {
            v.iter_mut().zip(u).for_each(|(a, b)| *a += (p - centre) * b);
        }
        let norm = l2(&v);
        if norm > 0.0 {
            v.iter_mut().for_each(|a| *a /= norm);
            // geometric step: halve until the point is still past the boundary
            let mut xi = dist / (t as f32).sqrt();
            for _ in 0..MAX_HALVINGS {
                let cand: Vec<f32> = delta.iter().zip(&v).map(|(a, b)| a + xi * b).collect();
                let Some(bit) = s.ask(&cand)? else { return Ok(()) };
                if bit[0] {
                    // back to the boundary from the new point
                    let Some(b) = to_boundary(s, &cand, theta)? else { return Ok(()) };
                    delta = b;
                    break;
                }
                xi /= 2.0;
            }
        }
    }
    Ok(())
}

/// A random direction scaled up from `start_norm` until the decision changes (another
/// direction after `doublings`); `None` when the budget ends first.
fn initial_point<F: FnMut(&[f32]) -> Result<Vec<bool>>>(
    s: &mut Spender<'_, F>,
    cfg: &BoundaryConfig,
    rng: &mut Rng,
) -> Result<Option<Vec<f32>>> {
    loop {
        let u = unit_gaussian(s.len, rng);
        let mut norm = cfg.start_norm;
        for _ in 0..cfg.doublings {
            let p: Vec<f32> = u.iter().map(|v| v * norm).collect();
            let Some(bit) = s.ask(&p)? else { return Ok(None) };
            if bit[0] {
                s.record_if_nearer(p.clone());
                return Ok(Some(p));
            }
            s.record_unchanged(p);
            norm *= 2.0;
        }
    }
}

/// Binary search on the blend `alpha * delta` (0 is the secret, unchanged; `delta` changes
/// the decision) to precision `theta`; the changed end, or `None` when the budget ends (a
/// changed blend nearer than any found before is recorded either way).
fn to_boundary<F: FnMut(&[f32]) -> Result<Vec<bool>>>(
    s: &mut Spender<'_, F>,
    delta: &[f32],
    theta: f32,
) -> Result<Option<Vec<f32>>> {
    let (mut lo, mut hi) = (0.0f32, 1.0f32);
    while hi - lo > theta {
        let mid = 0.5 * (lo + hi);
        let p: Vec<f32> = delta.iter().map(|v| v * mid).collect();
        let Some(bit) = s.ask(&p)? else { return Ok(None) };
        if bit[0] {
            hi = mid;
            s.record_if_nearer(p);
        } else {
            lo = mid;
        }
    }
    Ok(Some(delta.iter().map(|v| v * hi).collect()))
}

fn unit_gaussian(len: usize, rng: &mut Rng) -> Vec<f32> {
    let mut u: Vec<f32> = (0..len).map(|_| rng.normal()).collect();
    let n = l2(&u).max(f32::MIN_POSITIVE);
    u.iter_mut().for_each(|v| *v /= n);
    u
}

fn l2(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use proptest::prelude::{prop_assert, prop_assert_eq, proptest};

    /// A half-space decision: the perturbation changes it when `w . delta > b`. The smallest
    /// such perturbation is `b w / |w|^2`, at distance `b / |w|`.
    fn half_space(w: &[f32], b: f32) -> impl FnMut(&[f32]) -> Result<Vec<bool>> + '_ {
        move |batch| Ok(batch.chunks(w.len()).map(|p| p.iter().zip(w).map(|(a, c)| a * c).sum::<f32>() > b).collect())
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (l2(a) * l2(b))
    }

    #[test]
    fn finds_the_nearest_point_of_a_half_space_and_improves_with_budget() {
        let len = 64;
        let mut rng = Rng::new(3);
        let w: Vec<f32> = (0..len).map(|_| rng.normal()).collect();
        let b = 2.0 * l2(&w);
        let mut asked = 0u64;
        let mut oracle = half_space(&w, b);
        let points = boundary_search(len, &BoundaryConfig::hop_skip_jump(0.1), &[40, 400, 4000], 9, |p| {
            asked += (p.len() / len) as u64;
            oracle(p)
        })
        .unwrap();
        assert!(asked <= 4000, "spent {asked}");
        let cos: Vec<f32> = points.iter().map(|p| cosine(&p.perturbation, &w)).collect();
        let dist: Vec<f32> = points.iter().map(|p| l2(&p.perturbation)).collect();
        for (p, budget) in points.iter().zip([40, 400, 4000]) {
            // the budget is spent, not left over: an iteration shrinks to fit it
            assert!(
                p.found && p.queries <= budget && 4 * p.queries >= 3 * budget,
                "{:?} at {budget}",
                (p.found, p.queries)
            );
            let along: f32 = p.perturbation.iter().zip(&w).map(|(a, c)| a * c).sum();
            assert!(along > b, "every recorded point changes the decision");
        }
        // a random direction in 64 dimensions has |cos| about 0.1
        assert!(cos[2] > 0.95 && (dist[2] - 2.0).abs() < 0.1, "cos {cos:?}, distances {dist:?} (true 2)");
        assert!(cos[2] > cos[0] && dist[2] < dist[0], "more queries, nearer: cos {cos:?}, distances {dist:?}");
    }

    #[test]
    fn an_iteration_shrinks_to_fit_the_next_budget_it_can_still_use() {
        let spender = |spent| Spender {
            ask: |_: &[f32]| Ok(vec![]),
            len: 1,
            spent,
            budgets: &[100, 200, 1000],
            next: 0,
            points: Vec::new(),
            current: vec![0.0],
            found: false,
        };
        // 20 spent: 80 left before 100, room for 62 probes and an 18-query step
        assert_eq!(spender(20).gradient_probes(100, 18), 62);
        // 98 spent: 2 left before 100 is too few; shrink to fit 200 instead of passing it too
        assert_eq!(spender(98).gradient_probes(141, 18), 84);
        // room enough: the full estimate
        assert_eq!(spender(300).gradient_probes(141, 18), 141);
        // past every budget it could fit: the full estimate (the search stops at the budget)
        assert_eq!(spender(995).gradient_probes(141, 18), 141);
    }

    #[test]
    fn a_decision_that_never_changes_spends_the_budget_and_reports_not_found() {
        let points =
            boundary_search(8, &BoundaryConfig::hop_skip_jump(1.0), &[5, 50], 1, |p| Ok(vec![false; p.len() / 8]))
                .unwrap();
        assert_eq!(points.len(), 2);
        assert!(points.iter().all(|p| !p.found));
        assert_eq!(points[1].queries, 50);
        let f = points[1].features();
        assert_eq!(f.len(), 9);
        assert!(f[0] > 0.0 && f[1..].iter().all(|&v| v == 0.0), "{f:?}");
    }

    #[test]
    fn bad_budgets_and_configs_are_refused() {
        let cfg = BoundaryConfig::hop_skip_jump(1.0);
        let never = |p: &[f32]| Ok(vec![false; p.len()]);
        assert!(boundary_search(1, &cfg, &[], 1, never).is_err());
        assert!(boundary_search(1, &cfg, &[10, 10], 1, never).is_err());
        assert!(boundary_search(1, &cfg, &[0, 10], 1, never).is_err());
        assert!(boundary_search(0, &cfg, &[10], 1, never).is_err());
        let bad = BoundaryConfig { gamma: f32::NAN, ..cfg };
        assert!(boundary_search(1, &bad, &[10], 1, never).is_err());
    }

    proptest! {
        /// Never more queries than the last budget, every point within its budget, the same
        /// seed the same points, and a found point always changes the decision.
        #[test]
        fn budgets_are_kept_and_runs_repeat(seed in 0u64..1000, b in 0.1f32..5.0, first in 1u64..60, more in 1u64..300) {
            let len = 16;
            let mut rng = Rng::new(seed ^ 77);
            let w: Vec<f32> = (0..len).map(|_| rng.normal()).collect();
            let budgets = [first, first + more];
            let cfg = BoundaryConfig { grad_queries: 20, ..BoundaryConfig::hop_skip_jump(0.05) };
            let mut asked = 0u64;
            let mut oracle = half_space(&w, b);
            let run = boundary_search(len, &cfg, &budgets, seed, |p| { asked += (p.len() / len) as u64; oracle(p) }).unwrap();
            prop_assert!(asked <= budgets[1]);
            for (p, &budget) in run.iter().zip(&budgets) {
                prop_assert!(p.queries <= budget);
                if p.found {
                    prop_assert!(p.perturbation.iter().zip(&w).map(|(a, c)| a * c).sum::<f32>() > b);
                }
            }
            // a later budget never reports a farther point
            if run[0].found {
                prop_assert!(run[1].found && l2(&run[1].perturbation) <= l2(&run[0].perturbation));
            }
            let again = boundary_search(len, &cfg, &budgets, seed, half_space(&w, b)).unwrap();
            prop_assert_eq!(run, again);
        }
    }
}
