//! Adam (Kingma & Ba), the optimiser every model here is trained with.

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
    step: i32,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl Adam {
    /// Adam at rate `lr` with the usual betas and eps.
    pub fn new(lr: f32) -> Self {
        Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 0, m: vec![], v: vec![] }
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
            // elementwise, so splitting across threads changes no bits
            p.par_iter_mut()
                .zip(g.par_iter_mut())
                .zip(m.par_iter_mut())
                .zip(v.par_iter_mut())
                .with_min_len(1 << 14)
                .for_each(|(((p, g), m), v)| {
                    *m = b1 * *m + (1.0 - b1) * *g;
                    *v = b2 * *v + (1.0 - b2) * *g * *g;
                    *p -= lr * (*m / b1t) / ((*v / b2t).sqrt() + eps);
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
