//! The structured strategies: low-frequency noise (plain and tinted), centroid differences and adversarial
//! (margin-gradient) directions. Each draws its directions one after another from its own
//! named stream, so the first k of K directions are the directions for k.

use super::unit_f32;
use crate::error::{Error, Result};
use crate::nn::{LayerSpec, Network, Shape, TrainCache};
use crate::rng::Rng;

/// The low 2-D DCT band of `low-frequency`: coefficients `(u, v)` with `u + v < 8`, that is
/// 36 of them on images of at least 8x8 (fewer on smaller ones). On 28x28 the shortest
/// wavelength is about 2 * 28 / 7 = 8 pixels: smooth, stroke-sized blobs.
pub const LOW_FREQUENCY_BAND: usize = 8;

/// Images per forward/backward pass of `adversarial`. Batches are fixed slices of the
/// seeded image order, whatever K is, so a direction never depends on K.
const ADVERSARIAL_BATCH: usize = 64;

/// Standard deviation of the pixel noise added to the training images in the second and
/// later passes of `adversarial` (only when K exceeds the number of training images).
const ADVERSARIAL_JITTER: f32 = 0.05;

/// `phi[u][x]`, the orthonormal DCT-II basis of length `n`, for `u < bands`.
fn dct_basis(n: usize, bands: usize) -> Vec<Vec<f64>> {
    (0..bands.min(n))
        .map(|u| {
            let alpha = if u == 0 { (1.0 / n as f64).sqrt() } else { (2.0 / n as f64).sqrt() };
            (0..n)
                .map(|x| alpha * (std::f64::consts::PI * (2 * x + 1) as f64 * u as f64 / (2 * n) as f64).cos())
                .collect()
        })
        .collect()
}

/// The low DCT band of an `h x w` image, in draw order: by total frequency, then vertical
/// frequency.
struct LowBand {
    rows: Vec<Vec<f64>>,
    cols: Vec<Vec<f64>>,
    band: Vec<(usize, usize)>,
}

impl LowBand {
    fn new(h: usize, w: usize) -> Self {
        let (rows, cols) = (dct_basis(h, LOW_FREQUENCY_BAND), dct_basis(w, LOW_FREQUENCY_BAND));
        let mut band = Vec::new();
        for s in 0..LOW_FREQUENCY_BAND {
            for u in 0..=s {
                if u < rows.len() && s - u < cols.len() {
                    band.push((u, s - u));
                }
            }
        }
        LowBand { rows, cols, band }
    }

    /// Adds one smooth pattern (fresh coefficients from `rng`) into channel `ch` of the HWC
    /// image `d` of `channels` channels.
    fn draw_into(&self, rng: &mut Rng, d: &mut [f64], channels: usize, ch: usize) {
        let w = self.cols.first().map_or(0, |c| c.len());
        for &(u, v) in &self.band {
            let c = rng.normal() as f64;
            for (x, row) in d.chunks_mut(w * channels).enumerate() {
                let cu = c * self.rows[u][x];
                for (px, b) in row.chunks_mut(channels).zip(&self.cols[v]) {
                    px[ch] += cu * b;
                }
            }
        }
    }
}

/// i.i.d. standard normal coefficients on the low DCT band, inverse DCT-II, unit norm. Each
/// channel of a colour image gets its own coefficients (drawn channel after channel), so a
/// direction is smooth in space and independent across channels; a single channel draws
/// exactly what it always drew.
pub(super) fn low_frequency(k: usize, seed: u64, shape: Shape) -> Result<Vec<f32>> {
    let band = LowBand::new(shape.h, shape.w);
    let len = shape.len();
    let mut rng = Rng::derive(seed, "directions/low-frequency");
    let mut data = Vec::with_capacity(k * len);
    let mut d = vec![0.0f64; len];
    while data.len() < k * len {
        d.fill(0.0);
        for ch in 0..shape.c {
            band.draw_into(&mut rng, &mut d, shape.c, ch);
        }
        // a zero draw has probability zero; should it happen, the next draw replaces it
        if let Some(unit) = unit_f32(&d) {
            data.extend(unit);
        }
    }
    Ok(data)
}

/// One smooth pattern (as one channel of `low_frequency`) painted in one colour: pixel
/// `(x, y, c) = p(x, y) * t_c` with `t` a standard normal vector over the channels, unit norm.
/// Every channel sees the same shape, so on colour images the model's answer to a direction
/// factors into where it pushes and which colour axis it pushes along. Grey images draw the
/// same directions as `low_frequency`.
pub(super) fn low_frequency_tinted(k: usize, seed: u64, shape: Shape) -> Result<Vec<f32>> {
    if shape.c == 1 {
        return low_frequency(k, seed, shape);
    }
    let band = LowBand::new(shape.h, shape.w);
    let (len, plane) = (shape.len(), shape.h * shape.w);
    let mut rng = Rng::derive(seed, "directions/low-frequency-tinted");
    let mut data = Vec::with_capacity(k * len);
    let (mut p, mut d) = (vec![0.0f64; plane], vec![0.0f64; len]);
    while data.len() < k * len {
        p.fill(0.0);
        band.draw_into(&mut rng, &mut p, 1, 0);
        let tint: Vec<f64> = (0..shape.c).map(|_| rng.normal() as f64).collect();
        for (px, v) in d.chunks_mut(shape.c).zip(&p) {
            px.iter_mut().zip(&tint).for_each(|(o, t)| *o = v * t);
        }
        if let Some(unit) = unit_f32(&d) {
            data.extend(unit);
        }
    }
    Ok(data)
}

/// Mean training image of every class that occurs, in class order.
fn centroids(len: usize, images: &[f32], labels: &[u8]) -> Vec<Vec<f64>> {
    let mut sums = vec![vec![0.0f64; len]; 256];
    let mut counts = [0usize; 256];
    for (img, &y) in images.chunks(len).zip(labels) {
        counts[y as usize] += 1;
        for (s, v) in sums[y as usize].iter_mut().zip(img) {
            *s += *v as f64;
        }
    }
    sums.into_iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| s.into_iter().map(|v| v / n as f64).collect())
        .collect()
}

/// Per direction: `w ~ N(0, I)` over the classes, projected to zero sum, `d = sum_c w_c mu_c`.
pub(super) fn centroid_differences(k: usize, seed: u64, len: usize, images: &[f32], labels: &[u8]) -> Result<Vec<f32>> {
    let mu = centroids(len, images, labels);
    if mu.len() < 2 {
        return Err(Error::invalid(
            "directions",
            "strategy `centroid-differences` needs training images of at least two classes",
        ));
    }
    let spread = mu.iter().map(|m| m.iter().zip(&mu[0]).map(|(a, b)| (a - b) * (a - b)).sum::<f64>()).sum::<f64>();
    if spread <= 1e-20 {
        return Err(Error::invalid("directions", "strategy `centroid-differences`: all class centroids are equal"));
    }
    let mut rng = Rng::derive(seed, "directions/centroid-differences");
    let mut data = Vec::with_capacity(k * len);
    let mut d = vec![0.0f64; len];
    while data.len() < k * len {
        let mut wts: Vec<f64> = mu.iter().map(|_| rng.normal() as f64).collect();
        let mean = wts.iter().sum::<f64>() / wts.len() as f64;
        wts.iter_mut().for_each(|v| *v -= mean);
        d.fill(0.0);
        for (wc, m) in wts.iter().zip(&mu) {
            for (a, b) in d.iter_mut().zip(m) {
                *a += wc * b;
            }
        }
        // |d| ~ 0 only for weights (nearly) orthogonal to every centroid difference: redraw
        if super::norm64(&d) > 1e-9 * spread.sqrt() {
            data.extend(unit_f32(&d).expect("nonzero finite"));
        }
    }
    Ok(data)
}

/// A network that computes `model`'s inference function and whose `backward` returns the
/// input gradient: an identity reshape goes first (the engine skips the data gradient of a
/// first convolution) and batch norms become the 1x1 convolutions of their running-statistics
/// affine maps (so training-mode forward passes use no batch statistics).
fn differentiable_copy(model: &Network) -> Result<Network> {
    let s = model.input;
    let mut specs = vec![LayerSpec::Reshape { h: s.h, w: s.w, c: s.c }];
    for (i, spec) in model.specs.iter().enumerate() {
        specs.push(match spec {
            LayerSpec::BatchNorm => LayerSpec::Conv { cout: model.shape_before(i).c, k: 1, stride: 1, pad: 0 },
            other => other.clone(),
        });
    }
    let mut net = Network::new(s, specs, 0)
        .map_err(|e| Error::invalid("directions", format!("cannot differentiate the adversary's model: {e}")))?;
    for (i, spec) in model.specs.iter().enumerate() {
        net.params[i + 1] = match spec {
            LayerSpec::BatchNorm => {
                // the inference map of `Network::apply_infer` (BN epsilon 1e-5)
                let c = model.shape_before(i).c;
                let (p, buf) = (&model.params[i], &model.buffers[i]);
                let mut weight = vec![0.0f32; c * c];
                let mut bias = vec![0.0f32; c];
                for j in 0..c {
                    let scale = p[0][j] / (buf[1][j] + 1e-5).sqrt();
                    weight[j * c + j] = scale;
                    bias[j] = p[1][j] - buf[0][j] * scale;
                }
                vec![weight, bias]
            }
            _ => model.params[i].clone(),
        };
    }
    Ok(net)
}

/// Margin gradients `-grad m(x) / |grad m(x)|` with `m(x) = z_y - max_{j != y} z_j` and `y`
/// the model's top-1 class at `x`. Returns the directions and each one's source image index.
pub(super) fn adversarial(
    k: usize,
    seed: u64,
    shape: Shape,
    images: &[f32],
    model: &Network,
) -> Result<(Vec<f32>, Vec<usize>)> {
    let len = shape.len();
    if model.input != shape {
        let m = model.input;
        return Err(Error::invalid(
            "directions",
            format!(
                "strategy `adversarial`: the model takes {}x{}x{} inputs, the directions are {}x{}x{}",
                m.h, m.w, m.c, shape.h, shape.w, shape.c
            ),
        ));
    }
    let classes = model.out_len();
    if classes < 2 {
        return Err(Error::invalid("directions", "strategy `adversarial` needs a model with at least two outputs"));
    }
    let mut net = differentiable_copy(model)?;
    let n = images.len() / len;
    let mut order: Vec<usize> = (0..n).collect();
    Rng::derive(seed, "directions/adversarial").shuffle(&mut order);
    let mut jitter = Rng::derive(seed, "directions/adversarial-jitter");
    let mut data = Vec::with_capacity(k * len);
    let mut sources = Vec::with_capacity(k);
    let mut round = 0;
    let mut cache = TrainCache::default();
    while sources.len() < k {
        let before = sources.len();
        for batch in order.chunks(ADVERSARIAL_BATCH) {
            if sources.len() >= k {
                break;
            }
            let b = batch.len();
            let mut x = Vec::with_capacity(b * len);
            for &i in batch {
                x.extend_from_slice(&images[i * len..(i + 1) * len]);
            }
            if round > 0 {
                x.iter_mut().for_each(|v| *v = (*v + ADVERSARIAL_JITTER * jitter.normal()).clamp(0.0, 1.0));
            }
            net.forward_train(&x, b, &mut cache);
            let mut dout = vec![0.0f32; b * classes];
            for (z, g) in cache.output().chunks(classes).zip(dout.chunks_mut(classes)) {
                let y = crate::argmax(z);
                let runner_up = (0..classes).filter(|&j| j != y).fold(None, |best: Option<usize>, j| match best {
                    Some(r) if z[r] >= z[j] => Some(r),
                    _ => Some(j),
                });
                g[y] = 1.0;
                g[runner_up.expect("two classes or more")] = -1.0;
            }
            let grad = net.backward(&mut cache, &dout);
            if grad.len() != b * len {
                return Err(Error::invalid("directions", "strategy `adversarial`: the model gave no input gradient"));
            }
            for (g, &i) in grad.chunks(len).zip(batch) {
                if sources.len() >= k {
                    break;
                }
                let d: Vec<f64> = g.iter().map(|v| -(*v as f64)).collect();
                // a zero gradient (e.g. every ReLU dead) gives no direction: skip the image
                if let Some(unit) = unit_f32(&d) {
                    data.extend(unit);
                    sources.push(i);
                }
            }
        }
        if sources.len() == before {
            return Err(Error::invalid(
                "directions",
                "strategy `adversarial`: the model's margin has zero (or non-finite) gradient at every training image",
            ));
        }
        round += 1;
    }
    Ok((data, sources))
}
