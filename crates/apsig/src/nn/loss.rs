//! Losses: each returns the mean loss and writes the gradient w.r.t. its input.

/// Softmax cross-entropy on logits `[n, classes]`; returns (mean loss, correct count).
/// Softmax of each row of `[n, classes]` logits (shifted by the row maximum, so it never overflows).
pub fn softmax_rows(logits: &[f32], classes: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(logits.len());
    for z in logits.chunks(classes) {
        let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
        let s: f32 = e.iter().sum();
        out.extend(e.iter().map(|v| v / s));
    }
    out
}

/// Mean softmax cross-entropy of `logits` `[n, classes]` against `labels`, and how many top-1
/// decisions are right; writes the gradient of the mean into `grad`.
pub fn softmax_cross_entropy(logits: &[f32], labels: &[u8], classes: usize, grad: &mut [f32]) -> (f32, usize) {
    let n = labels.len();
    assert_eq!(logits.len(), n * classes);
    let mut loss = 0.0f64;
    let mut correct = 0;
    for (i, &y) in labels.iter().enumerate() {
        let z = &logits[i * classes..(i + 1) * classes];
        let g = &mut grad[i * classes..(i + 1) * classes];
        let max = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for (gj, &zj) in g.iter_mut().zip(z) {
            *gj = (zj - max).exp();
            sum += *gj;
        }
        let y = y as usize;
        loss += (sum.ln() - (z[y] - max)) as f64;
        if crate::argmax(z) == y {
            correct += 1;
        }
        for (j, gj) in g.iter_mut().enumerate() {
            *gj = (*gj / sum - if j == y { 1.0 } else { 0.0 }) / n as f32;
        }
    }
    ((loss / n as f64) as f32, correct)
}

/// Mean squared error over all elements; returns the mean loss.
pub fn mse(pred: &[f32], target: &[f32], grad: &mut [f32]) -> f32 {
    mean_of_terms(pred, target, grad, |d| (d * d, 2.0 * d))
}

/// Mean absolute error over all elements; returns the mean loss. Its minimiser is the
/// per-value median, where L2's is the mean: where the features leave a pixel uncertain
/// between a few values (two colours, stroke or background), L1 picks the likelier one
/// instead of painting their average.
fn mae(pred: &[f32], target: &[f32], grad: &mut [f32]) -> f32 {
    let sign = |d: f32| {
        if d > 0.0 {
            1.0
        } else if d < 0.0 {
            -1.0
        } else {
            0.0
        }
    };
    mean_of_terms(pred, target, grad, |d| (d.abs(), sign(d)))
}

/// The mean over all elements of `term(pred - target)`'s first value; writes the gradient of
/// that mean, its second value over the element count, into `grad`.
fn mean_of_terms(pred: &[f32], target: &[f32], grad: &mut [f32], term: impl Fn(f32) -> (f32, f32)) -> f32 {
    assert_eq!(pred.len(), target.len());
    // 1/n times an exact power of two (2d for L2) rounds as 2/n times d did
    let scale = 1.0 / pred.len() as f32;
    let mut loss = 0.0f64;
    for ((g, p), t) in grad.iter_mut().zip(pred).zip(target) {
        let (value, slope) = term(p - t);
        loss += value as f64;
        *g = scale * slope;
    }
    (loss / pred.len() as f64) as f32
}

/// The per-pixel loss an image-producing network is trained with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelLoss {
    /// Mean squared error (the paper's): paints the mean of what the input leaves open.
    #[default]
    L2,
    /// Mean absolute error: paints the median, so sharper strokes and purer colours, at some
    /// cost in MSE.
    L1,
}

impl PixelLoss {
    /// The mean loss of `pred` against `target`; writes its gradient into `grad`.
    pub fn apply(self, pred: &[f32], target: &[f32], grad: &mut [f32]) -> f32 {
        match self {
            PixelLoss::L2 => mse(pred, target, grad),
            PixelLoss::L1 => mae(pred, target, grad),
        }
    }

    /// Whether this is the paper's L2 (left out of configs and stamps).
    pub fn is_l2(&self) -> bool {
        *self == PixelLoss::L2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_absolute_error_and_its_gradient() {
        let (pred, target) = ([0.5f32, 0.0, 1.0, 0.25], [0.0f32, 0.0, 0.5, 1.0]);
        let mut grad = [9.0f32; 4];
        let loss = PixelLoss::L1.apply(&pred, &target, &mut grad);
        assert!((loss - (0.5 + 0.0 + 0.5 + 0.75) / 4.0).abs() < 1e-6, "{loss}");
        assert_eq!(grad, [0.25, 0.0, 0.25, -0.25]);
        let l2 = PixelLoss::L2.apply(&pred, &target, &mut grad);
        assert!((l2 - (0.25 + 0.0 + 0.25 + 0.5625) / 4.0).abs() < 1e-6, "{l2}");
    }
}
