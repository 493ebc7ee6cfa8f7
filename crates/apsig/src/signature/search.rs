//! `EpsSearch`: the smallest eps > 0 that flips the decision along each direction.
//!
//! One state machine serves both routes. With change bits only (the secret's route) it
//! brackets on a geometric grid and bisects geometrically. When margins are available (the
//! adversary's own data, white-box) the same brackets are refined by interpolating the
//! margin's zero (inverse quadratic through the bracket and the last point it dropped): one
//! probe at it, then probes just either side of the next, or only on the far side of an end
//! already within tolerance. On MNIST's TargetNet-S that takes 5.9 probes per eps with the
//! pilot's starts (6.9 when every round probed both sides), against 8.5 for bisection on
//! change bits (`examples/white_box_search.rs`).
//!
//! Guarantee (tested with proptest): unless censored or floored, the returned `eps` is a
//! probed point where the decision changed, and a probed point `lo >= eps / (1 + rel_tol)`
//! did not change; moreover every grid point `start * growth^j` below `lo` that was probed
//! during bracketing did not change. For a classifier with a single flip threshold `t` along
//! the ray this means `t <= eps <= t * (1 + rel_tol)`. A flip region lying strictly between
//! two grid points is not seen: that is the bracket's blind spot, bounded by `growth`.
//!
//! A predicted search with anchors (`EpsPredictor::with_anchors`) keeps the single-threshold
//! guarantee to the bit (a censored direction may cost the anchor and `ANCHOR_WALK_STEPS`
//! probes more). Where a ray changes its decision more than once, it reports the
//! crossing that the walk from the anchor finds (where its prediction jumped past the anchor),
//! which need not be the smallest flip it probed: it still ends on a probed flip with an
//! unflipped probe within the tolerance below it.

use super::predict::{normal_cdf, normal_quantile, EpsPredictor};
use crate::error::{Error, Result};
use crate::oracle::Probe;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// The eps search: where to start, how to bracket, when to stop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// First eps probed (overridden per direction by a prior, when one is given).
    pub start: f32,
    /// Geometric factor of the bracketing grid (> 1).
    pub growth: f32,
    /// Largest eps probed; a direction that does not flip by then is censored.
    pub eps_max: f32,
    /// Smallest eps probed when shrinking; a flip even there is recorded as `eps_min`.
    pub eps_min: f32,
    /// Stop when `hi / lo <= 1 + rel_tol`.
    pub rel_tol: f32,
}

impl SearchConfig {
    /// The paper-style search: start 0.5, doubling, bisection to 1e-3 relative.
    pub fn plain(eps_max: f32) -> Self {
        SearchConfig { start: 0.5, growth: 2.0, eps_max, eps_min: 1e-4, rel_tol: 1e-3 }
    }

    /// The tolerance the decoder actually needs: a finer growth factor (fewer wasted bracket
    /// probes when the start is a good prior) and 1% relative precision.
    pub fn decoder_grade(eps_max: f32) -> Self {
        SearchConfig { start: 0.5, growth: 1.6, eps_max, eps_min: 1e-4, rel_tol: 1e-2 }
    }

    /// The secrets' search with predicted brackets (`EpsPredictor`): 10% relative precision,
    /// which costs the decoder nothing measurable on MNIST (`apsig query-curve`), and the
    /// decoder-grade growth where a prediction is far off.
    pub fn predicted(eps_max: f32) -> Self {
        SearchConfig { rel_tol: 0.1, ..Self::decoder_grade(eps_max) }
    }

    /// Refuses settings the search cannot work with.
    pub fn validate(&self) -> Result<()> {
        let ok = self.growth > 1.0
            && self.rel_tol > 0.0
            && self.eps_min > 0.0
            && self.start > 0.0
            && self.eps_max > self.eps_min
            && [self.start, self.growth, self.eps_max, self.eps_min, self.rel_tol].iter().all(|v| v.is_finite());
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(
                "search config",
                format!("{self:?}: need growth > 1, 0 < eps_min < eps_max, start > 0, rel_tol > 0"),
            ))
        }
    }

    /// Upper bound on the probes one direction can take with this configuration when every
    /// answer is a bare change bit. With margins, refinement alternates interpolation (two
    /// probes) with bisection (one), so it takes at most three times the bisection share.
    pub fn max_probes(&self, start: f32) -> u32 {
        let start = start.clamp(self.eps_min, self.eps_max);
        let g = self.growth.ln();
        let up = ((self.eps_max / start).ln() / g).ceil().max(0.0) as u32 + 1;
        let down = ((start / self.eps_min).ln() / g).ceil().max(0.0) as u32 + 1;
        let bisect = (g / (1.0 + self.rel_tol).ln()).log2().ceil().max(0.0) as u32 + 1;
        up.max(down) + bisect
    }

    /// The bound when answers carry margins (the white-box route): one probe at the first
    /// interpolated zero, then an interpolation round (at most two probes) that does not halve
    /// the bracket is followed by a bisection step, so refinement takes at most one probe more
    /// than three per bisection step it replaces.
    pub fn max_probes_with_margins(&self, start: f32) -> u32 {
        let bisect = self.max_probes(start) - self.max_probes_bracket(start);
        self.max_probes_bracket(start) + 1 + 3 * bisect
    }

    fn max_probes_bracket(&self, start: f32) -> u32 {
        let start = start.clamp(self.eps_min, self.eps_max);
        let g = self.growth.ln();
        let up = ((self.eps_max / start).ln() / g).ceil().max(0.0) as u32 + 1;
        let down = ((start / self.eps_min).ln() / g).ceil().max(0.0) as u32 + 1;
        up.max(down)
    }
}

/// The outcome for one direction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpsOutcome {
    /// The flip point (eps_max where censored).
    pub eps: f32,
    /// No flip up to eps_max.
    pub censored: bool,
    /// Probes spent.
    pub queries: u32,
}

/// Grid steps walked up from an anchor that did not change either, before the direction ends
/// censored. The adversary's own walk found a change for 0.34% of seed 3's MNIST secrets'
/// entries that the search had censored this way, mostly 1.1 to 2.9 times the anchor (10th
/// to 90th percentile); two steps (x1.6, x2.56) reach most of them for about 19 queries per
/// secret, three (x4.1) gain a little more for 8 more (docs/results/paper/three-seeds).
pub const ANCHOR_WALK_STEPS: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Up,
    Down,
    Refine,
    /// Bisecting in probability under a prediction of `ln eps` (see `predict`).
    Guided,
    /// Probing a guided direction's anchor, where the prediction jumped past it (see
    /// `EpsPredictor::with_anchors`).
    Anchor,
    Done,
}

#[derive(Clone, Copy, Debug)]
struct Dir {
    phase: Phase,
    next: f32,
    lo: f32,
    hi: f32,
    m_lo: f32,
    m_hi: f32,
    /// The last end of the bracket that was replaced, with its margin: a third point for
    /// interpolating a curved margin.
    far: f32,
    m_far: f32,
    /// The log-width `ln(hi / lo)` of the bracket when the last round interpolated the margin
    /// (0 when it bisected). Interpolation goes on while each round at least halves that width;
    /// otherwise the next round bisects, so a misleading (kinked) margin costs at most one
    /// probe per bisection.
    interpolated_at: f32,
    /// Whether refinement has spent its one single-probe round (see `EpsSearch::probes`).
    pointed: bool,
    /// The predicted `(mean, sd)` of `ln eps`, on a predicted search.
    guess: Option<(f32, f32)>,
    /// Where the adversary's own search started this direction, while it is still to be
    /// checked (NaN otherwise).
    anchor: f32,
    /// The smallest eps probed so far.
    lowest: f32,
    /// Unflipped probes a walk up may still take before it ends censored (`None`: up to
    /// `eps_max`).
    walk_left: Option<u32>,
    out: EpsOutcome,
}

impl Dir {
    fn set_lo(&mut self, eps: f32, m: f32) {
        if self.lo > 0.0 {
            (self.far, self.m_far) = (self.lo, self.m_lo);
        }
        (self.lo, self.m_lo) = (eps, m);
    }

    fn set_hi(&mut self, eps: f32, m: f32) {
        if self.hi.is_finite() {
            (self.far, self.m_far) = (self.hi, self.m_hi);
        }
        (self.hi, self.m_hi) = (eps, m);
    }

    fn fresh(next: f32) -> Dir {
        Dir {
            phase: Phase::Up,
            next,
            lo: 0.0,
            hi: f32::INFINITY,
            m_lo: f32::NAN,
            m_hi: f32::NAN,
            far: f32::NAN,
            m_far: f32::NAN,
            interpolated_at: 0.0,
            pointed: false,
            guess: None,
            anchor: f32::NAN,
            lowest: f32::INFINITY,
            walk_left: None,
            out: EpsOutcome { eps: f32::NAN, censored: false, queries: 0 },
        }
    }

    fn guided(mean: f32, sd: f32, anchor: Option<f32>) -> Dir {
        let anchor = anchor.unwrap_or(f32::NAN);
        Dir { phase: Phase::Guided, guess: Some((mean, sd)), anchor, ..Dir::fresh(mean.exp()) }
    }

    /// After a guided answer, whether the training walk from the anchor could have ended
    /// elsewhere: no change up to `eps_max` though the walk would have started more than a
    /// grid step below every probe, or a first change more than two grid steps below it
    /// (where the walk would have started above a stretch the prediction landed in).
    fn needs_anchor_check(&self, cfg: &SearchConfig, flip: bool, eps: f32) -> bool {
        let m = self.anchor;
        if m.is_nan() {
            return false;
        }
        if flip {
            self.lo == 0.0 && !self.hi.is_finite() && eps * cfg.growth * cfg.growth < m
        } else {
            eps >= cfg.eps_max && m * cfg.growth <= self.lowest
        }
    }

    /// The anchor's answer: where it agrees with a single threshold, the guided search goes
    /// on (or ends censored); where it does not, the direction is walked from the anchor as
    /// the adversary's own search walked it, the anchor's answer being that walk's first.
    fn take_anchor_answer(&mut self, cfg: &SearchConfig, flip: bool, m: f32, margin: f32) {
        self.anchor = f32::NAN;
        match (flip, self.hi.is_finite()) {
            // consistent with one threshold below the first change: go on guided
            (true, true) if self.hi <= cfg.eps_min => {
                self.phase = Phase::Done;
                self.out.eps = self.hi;
            }
            (true, true) => self.phase = Phase::Guided,
            // a change below where the guided probes saw none, or none at the anchor above a
            // change: walk from the anchor; no change at the anchor either: only the walk's
            // first grid steps, where a stretch that changes the decision and changes it back
            // hides from probes above
            _ => {
                let walk_left = (!flip && !self.hi.is_finite()).then_some(ANCHOR_WALK_STEPS);
                *self = Dir { guess: self.guess, out: self.out, walk_left, ..Dir::fresh(m) };
                self.take_up_answer(cfg, flip, m, margin);
            }
        }
    }

    /// An answer while walking up from the start: a first change turns the walk down (or
    /// into refinement, once a probe without change lies below it); none at `eps_max` is
    /// censored.
    fn take_up_answer(&mut self, cfg: &SearchConfig, flip: bool, eps: f32, m: f32) {
        if flip {
            self.set_hi(eps, m);
            if self.lo != 0.0 {
                self.phase = Phase::Refine;
            } else if eps <= cfg.eps_min {
                // floored at the first probe (a start at or below eps_min)
                self.phase = Phase::Done;
                self.out.eps = cfg.eps_min;
            } else {
                // shrinking never probes below eps_min
                self.phase = Phase::Down;
                self.next = (eps / cfg.growth).max(cfg.eps_min);
            }
        } else if eps >= cfg.eps_max || self.walk_left == Some(0) {
            self.phase = Phase::Done;
            self.out.eps = cfg.eps_max;
            self.out.censored = true;
        } else {
            self.walk_left = self.walk_left.map(|w| w - 1);
            self.set_lo(eps, m);
            self.next = (eps * cfg.growth).min(cfg.eps_max);
        }
    }
}

/// The next probe of a guided direction: the median of its prediction restricted to what is
/// left of the bracket, so each answer halves the predicted probability that remains. Where
/// the prediction puts (almost) no mass it falls back to the plain search's moves. The probe
/// always lies strictly inside the bracket and shrinks it by a tenth of its log-width at least,
/// so the search ends whatever the prediction says.
fn guided_probe(d: &Dir, cfg: &SearchConfig) -> f32 {
    let (mean, sd) = d.guess.unwrap_or((0.0, 1.0));
    let (m, s) = (mean as f64, (sd as f64).max(1e-6));
    let a = if d.lo > 0.0 { normal_cdf(((d.lo as f64).ln() - m) / s) } else { 0.0 };
    let b = if d.hi.is_finite() { normal_cdf(((d.hi as f64).ln() - m) / s) } else { 1.0 };
    let median = if b - a > 1e-9 {
        (m + s * normal_quantile(0.5 * (a + b))).exp() as f32
    } else if !d.hi.is_finite() {
        d.lo * cfg.growth
    } else if d.lo == 0.0 {
        d.hi / cfg.growth
    } else {
        (d.lo * d.hi).sqrt()
    };
    let tol = 1.0 + cfg.rel_tol;
    let eps = match (d.lo > 0.0, d.hi.is_finite()) {
        (true, true) => {
            let q = (d.hi / d.lo).powf(0.1);
            median.clamp(d.lo * q, d.hi / q)
        }
        // one side open: at least half a predicted sd out, so a wrong prediction's tail is
        // crossed in a few probes rather than crawled
        (true, false) => median.max(d.lo * (0.5 * s).exp() as f32).max(d.lo * tol),
        (false, true) => median.min(d.hi / (0.5 * s).exp() as f32).min(d.hi / tol),
        (false, false) => median,
    };
    if eps.is_finite() {
        eps.clamp(cfg.eps_min, cfg.eps_max)
    } else {
        cfg.eps_max
    }
}

/// Where the margin's zero in `(lo, hi)` is expected: inverse quadratic interpolation through
/// the bracket's ends and the last end replaced (a margin along a ray bends at every ReLU that
/// switches), or the straight line through the ends when that lands outside the bracket.
fn margin_root(d: &Dir) -> f32 {
    let (a, b, c) = (d.m_lo as f64, d.m_hi as f64, d.m_far as f64);
    let line = d.lo + (d.hi - d.lo) * d.m_lo / (d.m_lo - d.m_hi);
    if !(c.is_finite() && (a - c).abs() > 1e-12 && (b - c).abs() > 1e-12) {
        return line;
    }
    let q = d.lo as f64 * b * c / ((a - b) * (a - c))
        + d.hi as f64 * a * c / ((b - a) * (b - c))
        + d.far as f64 * a * b / ((c - a) * (c - b));
    if q > d.lo as f64 && q < d.hi as f64 {
        q as f32
    } else {
        line
    }
}

/// An answer to a probe: the change bit and, on the white-box route, the margin.
pub type Answer = (bool, Option<f32>);

/// What a search knows about a signature before its first probe.
#[derive(Clone, Copy, Debug)]
pub enum Prior<'a> {
    /// A first eps per direction (a pilot's or the training signatures' median); every
    /// direction is searched from the first round.
    Starts(&'a [f32]),
    /// A model of the signature: directions measured in groups, each group predicted from the
    /// eps already measured on the same image.
    Predicted(&'a EpsPredictor),
}

impl Prior<'_> {
    /// Number of directions.
    pub fn k(&self) -> usize {
        match self {
            Prior::Starts(s) => s.len(),
            Prior::Predicted(p) => p.k(),
        }
    }

    /// A search from this prior.
    pub fn search(&self, cfg: &SearchConfig) -> Result<EpsSearch> {
        match self {
            Prior::Starts(s) => EpsSearch::new(cfg, s),
            Prior::Predicted(p) => EpsSearch::predicted(cfg, p),
        }
    }

    /// What a signature set records as its starting point.
    pub fn fingerprint(&self) -> String {
        match self {
            Prior::Starts(s) => crate::io::fingerprint_f32(s),
            Prior::Predicted(p) => p.fingerprint().to_string(),
        }
    }
}

/// A prior that owns what it holds: what the adversary's own signatures give a search on
/// secrets (`SignatureSet::search_prior`), or starts made up by the caller.
#[derive(Clone, Debug)]
pub enum OwnedPrior {
    /// See [`Prior::Starts`].
    Starts(Vec<f32>),
    /// See [`Prior::Predicted`].
    Predicted(EpsPredictor),
}

impl OwnedPrior {
    /// The prior to hand a search.
    pub fn as_prior(&self) -> Prior<'_> {
        match self {
            OwnedPrior::Starts(s) => Prior::Starts(s),
            OwnedPrior::Predicted(p) => Prior::Predicted(p),
        }
    }
}

impl<'a> From<&'a [f32]> for Prior<'a> {
    fn from(s: &'a [f32]) -> Self {
        Prior::Starts(s)
    }
}

impl<'a> From<&'a Vec<f32>> for Prior<'a> {
    fn from(s: &'a Vec<f32>) -> Self {
        Prior::Starts(s)
    }
}

impl<'a, const N: usize> From<&'a [f32; N]> for Prior<'a> {
    fn from(s: &'a [f32; N]) -> Self {
        Prior::Starts(s)
    }
}

impl<'a> From<&'a EpsPredictor> for Prior<'a> {
    fn from(p: &'a EpsPredictor) -> Self {
        Prior::Predicted(p)
    }
}

/// The search for a set of directions as a state machine: [`EpsSearch::probes`] says what
/// to ask next, [`EpsSearch::answer`] takes the answers. [`run_search`] drives one through a
/// closure; the lockstep driver drives many at once, so their probes share one batch.
#[derive(Clone, Debug)]
pub struct EpsSearch {
    cfg: SearchConfig,
    dirs: Vec<Dir>,
    /// Which direction asked each pending probe, in the order `probes` returned them.
    owners: Vec<usize>,
    pending: Vec<Probe>,
    /// The directions being searched now: all of them, or a predicted search's current group.
    active: Range<usize>,
    /// A predicted search's model and the whitened `ln eps` of the groups finished so far.
    predictor: Option<(EpsPredictor, Vec<f64>)>,
}

impl EpsSearch {
    /// A search for `starts.len()` directions, each starting at its own eps.
    pub fn new(cfg: &SearchConfig, starts: &[f32]) -> Result<Self> {
        cfg.validate()?;
        let dirs: Vec<Dir> = starts.iter().map(|&s| Dir::fresh(s.clamp(cfg.eps_min, cfg.eps_max))).collect();
        let active = 0..dirs.len();
        Ok(EpsSearch { cfg: cfg.clone(), dirs, owners: Vec::new(), pending: Vec::new(), active, predictor: None })
    }

    /// A predicted search: the directions in the predictor's groups, each bisected in
    /// probability under its prediction from the groups before.
    pub fn predicted(cfg: &SearchConfig, predictor: &EpsPredictor) -> Result<Self> {
        cfg.validate()?;
        let k = predictor.k();
        let mut dirs = vec![Dir::fresh(cfg.start); k];
        let w = vec![0f64; k];
        let active = predictor.next_group(0);
        for (i, (m, s)) in active.clone().zip(predictor.predict(active.clone(), &w)) {
            dirs[i] = Dir::guided(m, s, predictor.anchor(i));
        }
        Ok(EpsSearch {
            cfg: cfg.clone(),
            dirs,
            owners: Vec::new(),
            pending: Vec::new(),
            active,
            predictor: Some((predictor.clone(), w)),
        })
    }

    /// Marks the active directions whose bracket is narrow enough as done; on a predicted
    /// search whose group is then finished, moves on to the next group with its predictions.
    fn settle(&mut self) {
        let tol = 1.0 + self.cfg.rel_tol;
        for d in &mut self.dirs[self.active.clone()] {
            if matches!(d.phase, Phase::Refine | Phase::Guided) && d.hi <= d.lo * tol {
                d.phase = Phase::Done;
                d.out.eps = d.hi;
            }
        }
        while let Some((p, w)) = &mut self.predictor {
            if self.active.end >= self.dirs.len()
                || self.dirs[self.active.clone()].iter().any(|d| d.phase != Phase::Done)
            {
                break;
            }
            let eps: Vec<f32> = self.dirs.iter().map(|d| d.out.eps).collect();
            p.whiten(self.active.clone(), &eps, w);
            self.active = p.next_group(self.active.end);
            for (i, (m, s)) in self.active.clone().zip(p.predict(self.active.clone(), w)) {
                self.dirs[i] = Dir::guided(m, s, p.anchor(i));
            }
        }
    }

    /// The next round of probes (empty when every direction is done). Each call replaces the
    /// previous round: answer it before asking again.
    pub fn probes(&mut self) -> &[Probe] {
        self.settle();
        let cfg = &self.cfg;
        let tol = 1.0 + cfg.rel_tol;
        self.pending.clear();
        self.owners.clear();
        let start = self.active.start;
        for (i, d) in self.dirs[self.active.clone()].iter_mut().enumerate() {
            let i = start + i;
            match d.phase {
                Phase::Done => {}
                Phase::Guided => {
                    self.pending.push(Probe { dir: i as u32, eps: guided_probe(d, cfg) });
                    self.owners.push(i);
                }
                Phase::Anchor => {
                    self.pending.push(Probe { dir: i as u32, eps: d.anchor.clamp(cfg.eps_min, cfg.eps_max) });
                    self.owners.push(i);
                }
                // the bracket that bracketing left is wide (up to `growth`), and a root
                // interpolated across it is rarely within `tol`: one probe at it first, whose
                // margin makes the next interpolation a close one
                Phase::Refine if d.m_lo > 0.0 && d.m_hi <= 0.0 && !d.pointed && d.hi > d.lo * tol * tol => {
                    d.pointed = true;
                    let q = (d.hi / d.lo).powf(0.05);
                    self.pending.push(Probe { dir: i as u32, eps: margin_root(d).clamp(d.lo * q, d.hi / q) });
                    self.owners.push(i);
                }
                Phase::Refine
                    if d.m_lo > 0.0
                        && d.m_hi <= 0.0
                        && (d.interpolated_at == 0.0 || (d.hi / d.lo).ln() <= 0.5 * d.interpolated_at) =>
                {
                    d.interpolated_at = (d.hi / d.lo).ln();
                    // probe just either side of the expected zero, close enough (s^2 < tol)
                    // that a good guess closes the bracket in one round
                    let r = margin_root(d);
                    let s = tol.powf(0.45).min((d.hi / d.lo).sqrt());
                    let a = (r / s).clamp(d.lo * s.sqrt(), d.hi / s);
                    let b = (r * s).clamp(d.lo * s, d.hi / s.sqrt());
                    // an end already within `tol` of the expected zero needs only the probe on
                    // the other side, as far out as still closes the bracket
                    let near = tol.powf(0.95);
                    let probes = if r * s <= d.lo * near {
                        vec![d.lo * near]
                    } else if r / s >= d.hi / near {
                        vec![d.hi / near]
                    } else if b > a {
                        vec![a, b]
                    } else {
                        vec![(d.lo * d.hi).sqrt()]
                    };
                    for eps in probes {
                        self.pending.push(Probe { dir: i as u32, eps });
                        self.owners.push(i);
                    }
                }
                Phase::Refine => {
                    d.interpolated_at = 0.0;
                    self.pending.push(Probe { dir: i as u32, eps: (d.lo * d.hi).sqrt() });
                    self.owners.push(i);
                }
                _ => {
                    self.pending.push(Probe { dir: i as u32, eps: d.next });
                    self.owners.push(i);
                }
            }
        }
        &self.pending
    }

    /// Takes the answers to the round `probes` returned, in the same order.
    pub fn answer(&mut self, answers: &[Answer]) -> Result<()> {
        let probes = &self.pending;
        if answers.len() != probes.len() {
            return Err(Error::Oracle(format!("{} answers for {} probes", answers.len(), probes.len())));
        }
        let mut k = 0;
        while k < probes.len() {
            let i = self.owners[k];
            let mut j = k;
            while j < probes.len() && self.owners[j] == i {
                j += 1;
            }
            update(&mut self.dirs[i], &self.cfg, &probes[k..j], &answers[k..j]);
            k = j;
        }
        self.pending.clear();
        self.owners.clear();
        Ok(())
    }

    /// Out of queries: every unfinished direction keeps its best estimate so far; on a
    /// predicted search, the directions not reached get their prediction from all the eps
    /// measured (0 queries, not censored).
    pub fn stop(&mut self) {
        self.settle();
        let reached = self.active.end;
        self.dirs[..reached].iter_mut().for_each(|d| finish_unresolved(d, &self.cfg));
        if let Some((p, w)) = &mut self.predictor {
            let eps: Vec<f32> = self.dirs.iter().map(|d| d.out.eps).collect();
            p.whiten(self.active.clone(), &eps, w);
            for (d, (m, _)) in self.dirs[reached..].iter_mut().zip(p.predict(reached..eps.len(), w)) {
                d.phase = Phase::Done;
                d.out.eps = m.exp().clamp(self.cfg.eps_min, self.cfg.eps_max);
            }
        }
        self.active = self.dirs.len()..self.dirs.len();
        self.pending.clear();
        self.owners.clear();
    }

    /// Whether every direction is done.
    pub fn is_done(&self) -> bool {
        self.dirs.iter().all(|d| d.phase == Phase::Done)
    }

    /// The outcome of each direction (call when done).
    pub fn outcomes(&self) -> Vec<EpsOutcome> {
        self.dirs.iter().map(|d| d.out).collect()
    }
}

/// Runs the search for the prior's K directions; `ask` answers a batch of probes.
pub fn run_search<'a>(
    cfg: &SearchConfig,
    prior: impl Into<Prior<'a>>,
    mut ask: impl FnMut(&[Probe]) -> Result<Vec<Answer>>,
) -> Result<Vec<EpsOutcome>> {
    let mut search = prior.into().search(cfg)?;
    loop {
        let probes = search.probes();
        if probes.is_empty() {
            break;
        }
        match ask(probes) {
            Err(Error::Budget(_)) => {
                search.stop();
                break;
            }
            other => search.answer(&other?)?,
        }
    }
    Ok(search.outcomes())
}

/// The estimate of a direction the search could not finish: the geometric middle of its
/// bracket; without a flip seen, censored at the last eps that did not flip.
fn finish_unresolved(d: &mut Dir, cfg: &SearchConfig) {
    if d.phase == Phase::Done {
        return;
    }
    d.phase = Phase::Done;
    if d.guess.is_some() && !(d.lo > 0.0 && d.hi.is_finite()) {
        // the prediction's median beyond what was seen (never censored by a prediction alone)
        d.out.eps = guided_probe(d, cfg);
    } else if d.hi.is_finite() {
        d.out.eps = if d.lo > 0.0 { (d.lo * d.hi).sqrt() } else { d.hi };
    } else {
        d.out.eps = d.lo.max(cfg.eps_min);
        d.out.censored = true;
    }
}

fn update(d: &mut Dir, cfg: &SearchConfig, probes: &[Probe], answers: &[Answer]) {
    d.out.queries += probes.len() as u32;
    for (p, &(flip, margin)) in probes.iter().zip(answers) {
        let m = margin.unwrap_or(f32::NAN);
        let eps = p.eps;
        d.lowest = d.lowest.min(eps);
        match d.phase {
            Phase::Up => d.take_up_answer(cfg, flip, eps, m),
            Phase::Down => {
                if flip {
                    d.set_hi(eps, m);
                    if eps <= cfg.eps_min {
                        d.phase = Phase::Done;
                        d.out.eps = eps;
                    } else {
                        d.next = (eps / cfg.growth).max(cfg.eps_min);
                    }
                } else {
                    d.set_lo(eps, m);
                    d.phase = Phase::Refine;
                }
            }
            Phase::Guided => {
                if d.needs_anchor_check(cfg, flip, eps) {
                    // the answer stands; the anchor's decides what it means
                    if flip {
                        d.set_hi(eps, m);
                    }
                    d.phase = Phase::Anchor;
                } else if flip {
                    d.set_hi(eps, m);
                    if eps <= cfg.eps_min {
                        d.phase = Phase::Done;
                        d.out.eps = eps;
                    }
                } else if eps >= cfg.eps_max {
                    d.phase = Phase::Done;
                    d.out = EpsOutcome { eps: cfg.eps_max, censored: true, queries: d.out.queries };
                } else {
                    d.set_lo(eps, m);
                }
            }
            Phase::Refine => {
                // probes arrive in increasing eps; a flip ends what this round can learn
                if eps <= d.lo || eps >= d.hi {
                    continue;
                }
                if flip {
                    d.set_hi(eps, m);
                    break;
                }
                d.set_lo(eps, m);
            }
            Phase::Anchor => d.take_anchor_answer(cfg, flip, eps, m),
            Phase::Done => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ray classifier with a single threshold per direction: flips iff eps >= t[dir].
    fn threshold_oracle(t: &[f32]) -> impl FnMut(&[Probe]) -> Result<Vec<Answer>> + '_ {
        move |ps| Ok(ps.iter().map(|p| (p.eps >= t[p.dir as usize], None)).collect())
    }

    #[test]
    fn finds_known_thresholds_within_tolerance() {
        let t = [0.003, 0.7, 1.0, 3.3, 24.0, 63.0, 100.0];
        let cfg = SearchConfig::plain(64.0);
        let out = run_search(&cfg, &[0.5; 7], threshold_oracle(&t)).unwrap();
        for (o, &t) in out.iter().zip(&t) {
            if t > 64.0 {
                assert!(o.censored && o.eps == 64.0);
            } else {
                assert!(!o.censored);
                assert!(o.eps >= t && o.eps <= t * 1.001 + 1e-6, "t {t} got {}", o.eps);
            }
            assert!(o.queries <= cfg.max_probes(0.5), "{} > bound {}", o.queries, cfg.max_probes(0.5));
        }
    }

    #[test]
    fn a_spent_budget_keeps_the_best_estimates() {
        let t = [0.7f32, 3.3, 24.0, 100.0];
        let cfg = SearchConfig::plain(64.0);
        let mut used = 0;
        let mut inner = threshold_oracle(&t);
        let out = run_search(&cfg, &[1.0; 4], |ps| {
            if used + ps.len() > 14 {
                return Err(Error::Budget(14));
            }
            used += ps.len();
            inner(ps)
        })
        .unwrap();
        assert!(used <= 14);
        assert_eq!(out.iter().map(|o| o.queries as usize).sum::<usize>(), used);
        for (o, &t) in out.iter().zip(&t) {
            if o.censored {
                assert!(o.eps < t, "censored at {} but the flip is at {t}", o.eps);
            } else {
                // bracketed: within the bracket's factor (growth 2) of the flip
                assert!(o.eps >= t / 2.0 && o.eps <= t * 2.0, "{} vs {t}", o.eps);
            }
        }
        assert!(!out[0].censored && out[3].censored);
    }

    #[test]
    fn margins_cut_the_refinement_short() {
        // linear margin 1 - eps/t: the white-box route interpolates it exactly
        let t = [0.7f32, 3.3, 24.0, 40.0];
        let cfg = SearchConfig::plain(64.0);
        let out = run_search(&cfg, &[0.5; 4], |ps| {
            Ok(ps
                .iter()
                .map(|p| {
                    let t = t[p.dir as usize];
                    (p.eps >= t, Some(1.0 - p.eps / t))
                })
                .collect())
        })
        .unwrap();
        let plain = run_search(&cfg, &[0.5; 4], threshold_oracle(&t)).unwrap();
        for ((o, p), &t) in out.iter().zip(&plain).zip(&t) {
            assert!(o.eps >= t && o.eps <= t * 1.001, "{} vs {t}", o.eps);
            assert!(o.queries + 5 <= p.queries, "white-box {} vs change-bit {}", o.queries, p.queries);
            // bracketing on the grid 0.5 * 2^j up to the first point past t, then one probe at
            // the interpolated zero (t itself) and one on the far side of it
            let bracket = (t / 0.5).log2().ceil() as u32 + 1;
            assert_eq!(o.queries, bracket + 2, "t {t}");
        }
    }
}
