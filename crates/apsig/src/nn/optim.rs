//! Adam (Kingma & Ba), the optimiser every model here is trained with, with the decoupled
//! weight decay of AdamW (Loshchilov & Hutter, ICLR 2019) where asked for.

use rayon::prelude::*;

/// Adam state for one network's parameters, in the order `Network::params_mut` yields them.
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    /// Decay of the first-moment estimate.
    pub beta1: f32,
    /// Decay of the second-moment estimate.
    pub beta2: f32,
    /// Added to the root of the second moment.
    pub eps: f32,
    /// Decoupled weight decay: each step first shrinks a decayed tensor by `lr * weight_decay`.
    pub weight_decay: f32,
    /// Which parameters decay (in `step`'s order; empty: none).
    decayed: Vec<bool>,
    step: i32,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl Adam {
    /// Adam at rate `lr` with the usual betas and eps.
    pub fn new(lr: f32) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decayed: vec![],
            step: 0,
            m: vec![],
            v: vec![],
        }
    }

    /// AdamW: `weight_decay` on the parameters that `decayed` marks (e.g.
    /// `Network::weight_mask`).
    pub fn with_weight_decay(mut self, weight_decay: f32, decayed: Vec<bool>) -> Self {
        self.weight_decay = weight_decay;
        self.decayed = decayed;
        self
    }

    /// One update from the accumulated gradients, which it then clears.
    pub fn step(&mut self, params: Vec<(&mut [f32], &mut [f32])>) {
        if self.m.is_empty() {
            self.m = params.iter().map(|(p, _)| vec![0.0; p.len()]).collect();
            self.v = self.m.clone();
        }
        self.step += 1;
        let b1t = 1.0 - self.beta1.powi(self.step);
        let b2t = 1.0 - self.beta2.powi(self.step);
        let (b1, b2, lr, eps) = (self.beta1, self.beta2, self.lr, self.eps);
        for (i, (p, g)) in params.into_iter().enumerate() {
            let (m, v) = (&mut self.m[i], &mut self.v[i]);
            // AdamW shrinks before the step; 1.0 (no decay) leaves every bit as plain Adam's
            let shrink = if self.decayed.get(i) == Some(&true) { 1.0 - lr * self.weight_decay } else { 1.0 };
            // elementwise, so splitting across threads changes no bits
            p.par_iter_mut()
                .zip(g.par_iter_mut())
                .zip(m.par_iter_mut())
                .zip(v.par_iter_mut())
                .with_min_len(1 << 14)
                .for_each(|(((p, g), m), v)| {
                    *m = b1 * *m + (1.0 - b1) * *g;
                    *v = b2 * *v + (1.0 - b2) * *g * *g;
                    *p = *p * shrink - lr * (*m / b1t) / ((*v / b2t).sqrt() + eps);
                    *g = 0.0;
                });
        }
    }

    /// The state as flat vectors (for checkpoints): step count, then m and v per parameter.
    pub fn state(&self) -> (i32, &[Vec<f32>], &[Vec<f32>]) {
        (self.step, &self.m, &self.v)
    }

    /// Restores the step count and moments from a checkpoint.
    pub fn restore(&mut self, step: i32, m: Vec<Vec<f32>>, v: Vec<Vec<f32>>) {
        self.step = step;
        self.m = m;
        self.v = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_decay_shrinks_only_the_marked_tensors() {
        let (mut w, mut b) = (vec![1.0f32; 4], vec![1.0f32; 2]);
        let (mut gw, mut gb) = (vec![0.0f32; 4], vec![0.0f32; 2]);
        let mut adam = Adam::new(0.1).with_weight_decay(0.5, vec![true, false]);
        adam.step(vec![(&mut w, &mut gw), (&mut b, &mut gb)]);
        // zero gradients: Adam's own update is zero, so only the decay moves anything
        assert!(w.iter().all(|&v| (v - 0.95).abs() < 1e-7), "{w:?}");
        assert_eq!(b, vec![1.0; 2]);
        let mut plain = vec![1.0f32; 4];
        Adam::new(0.1).step(vec![(&mut plain, &mut [0.0; 4])]);
        assert_eq!(plain, vec![1.0; 4]);
    }
}
