//! Training passes: the forward pass with batch statistics and the hand-written backward pass.
//!
//! Every buffer a step needs lives in a [`TrainCache`] that the caller keeps from step to step.
//! A fresh 25 MB column matrix per step costs more in page faults and zeroing than the GEMM
//! around it saves; reused buffers are written in full by each step, so nothing is zeroed
//! that is about to be overwritten. Elementwise layers and the reductions (batch statistics,
//! bias gradients) run across rayon's threads; reductions sum fixed blocks and add the block
//! sums in order, so a seed gives the same bits whatever the thread count.

use super::kernel_cache::Kernel;
use super::layer::LayerSpec;
use super::network::{add_channel_bias, affine, crop_into, sigmoid, Network, BN_EPS, BN_MOMENTUM};
use crate::kernels::{
    col2im_nhwc, conv_weight_grad, conv_weight_grad_applies, im2col_nhwc, matmul, maxpool2_nhwc, ConvGeom, Threads,
    Trans,
};
use rayon::prelude::*;

/// Elementwise work is split into pieces of at least this many values (smaller ones are not
/// worth a task).
const PAR_MIN: usize = 1 << 14;

/// What the backward pass needs from a training forward pass, and the scratch both reuse.
#[derive(Default)]
pub struct TrainCache {
    n: usize,
    /// Input of every layer, then the output.
    acts: Vec<Vec<f32>>,
    /// Per layer: im2col matrix (a convolution off the direct kernel; a transposed
    /// convolution's chunk scratch), Winograd's transformed input (a transposed convolution
    /// it serves), normalised input (BN).
    extra: Vec<Vec<f32>>,
    pool_idx: Vec<Vec<u32>>,
    bn_inv_std: Vec<Vec<f32>>,
    /// Backward: the gradient of the loss w.r.t. the output, then w.r.t. each layer's input.
    out_grad: Vec<f32>,
    layer_grads: Vec<Vec<f32>>,
    /// Backward: a column matrix.
    dcols: Vec<f32>,
    /// Backward of a convolution: its input's column matrix, made a block of images at a time.
    cols: Vec<f32>,
    /// Backward of a convolution: each block's weight gradient, added in block order; of a
    /// Winograd transposed convolution: the transformed weights' gradient.
    partial_dw: Vec<f32>,
    /// Per layer: a Winograd transposed convolution's transformed weights, made by the
    /// forward pass and read by the backward pass.
    transformed_w: Vec<Vec<f32>>,
}

impl TrainCache {
    /// The network's output for the cached batch.
    pub fn output(&self) -> &[f32] {
        self.acts.last().expect("cache has an output")
    }
}

/// `v` resized to `len` values, keeping its allocation. What it held is left in place: every
/// caller overwrites all `len` values.
fn sized<T: Copy + Default>(v: &mut Vec<T>, len: usize) -> &mut [T] {
    if v.len() != len {
        v.clear();
        v.resize(len, T::default());
    }
    v
}

/// The first `len` values of `v`, which grows when it must and never shrinks: scratch that
/// layers of different sizes share. `sized` would refill it with zeros at every change of
/// length, twice a step (14% of TargetNet-S's step when the two convolutions shared it).
/// Callers write all `len` values before they read any.
fn scratch(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len {
        v.resize(len, 0.0);
    }
    &mut v[..len]
}

/// A convolution's backward pass works blocks of images of at most this many column-matrix
/// values each (1 MiB), one block per task. Fixed by the layer's shape, not the thread count,
/// so that the weight gradient's block sums give the same bits on any number of threads.
const CONV_BLOCK_COLS: usize = 1 << 18;

/// Images per block of a transposed convolution's column route: column matrices of at most
/// [`CONVT_BLOCK_COLS`] values, so that a block's stay in cache between the GEMM and the
/// scatter, and several blocks per batch for the threads to share. Fixed by the layer's shape
/// and the batch, not the thread count.
fn convt_block(n: usize, per_image: usize) -> usize {
    (CONVT_BLOCK_COLS / per_image.max(1)).clamp(1, n.max(1))
}

/// See [`convt_block`]: 256 KiB.
const CONVT_BLOCK_COLS: usize = 1 << 16;

/// `y[j] = f(x[j])` across threads.
fn map_into(x: &[f32], y: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    y.par_iter_mut().zip(x.par_iter()).with_min_len(PAR_MIN).for_each(|(y, x)| *y = f(*x));
}

/// `d[j] = f(d[j], v[j])` across threads.
fn update_with(d: &mut [f32], v: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) {
    d.par_iter_mut().zip(v.par_iter()).with_min_len(PAR_MIN).for_each(|(d, v)| *d = f(*d, *v));
}

/// Batch norm's forward over rows of `c = mean.len()` channels, across threads:
/// `xhat = (x - mean) * inv_std` and `y = xhat * gamma + beta`, in one pass.
fn normalise(x: &[f32], xhat: &mut [f32], y: &mut [f32], mean: &[f32], inv_std: &[f32], gamma: &[f32], beta: &[f32]) {
    let c = mean.len();
    let (inv_std, gamma, beta) = (&inv_std[..c], &gamma[..c], &beta[..c]);
    let block = (PAR_MIN / c).max(1) * c;
    (y.par_chunks_mut(block), xhat.par_chunks_mut(block), x.par_chunks(block)).into_par_iter().for_each(
        |(yb, hb, xb)| {
            for ((yr, hr), xr) in yb.chunks_exact_mut(c).zip(hb.chunks_exact_mut(c)).zip(xb.chunks_exact(c)) {
                // equal lengths let the compiler drop the bounds checks and vectorise
                let (yr, hr, xr) = (&mut yr[..c], &mut hr[..c], &xr[..c]);
                for j in 0..c {
                    let h = (xr[j] - mean[j]) * inv_std[j];
                    hr[j] = h;
                    yr[j] = h * gamma[j] + beta[j];
                }
            }
        },
    );
}

impl Network {
    /// Training forward pass of `n` samples into `cache` (batch norm uses and updates batch
    /// statistics). Reusing one cache across steps reuses its buffers.
    pub fn forward_train(&mut self, x: &[f32], n: usize, cache: &mut TrainCache) {
        assert_eq!(x.len(), n * self.in_len(), "input length");
        let layers = self.specs.len();
        cache.n = n;
        cache.acts.resize_with(layers + 1, Vec::new);
        for v in [&mut cache.extra, &mut cache.bn_inv_std, &mut cache.transformed_w] {
            v.resize_with(layers, Vec::new);
        }
        cache.pool_idx.resize_with(layers, Vec::new);
        cache.acts[0].clear();
        cache.acts[0].extend_from_slice(x);
        for i in 0..layers {
            let (s, o) = (self.shapes[i], self.shapes[i + 1]);
            let (done, rest) = cache.acts.split_at_mut(i + 1);
            let x = &done[i][..];
            let bn_stats = (self.specs[i] == LayerSpec::BatchNorm).then(|| self.bn_batch_stats(i, x));
            let y = sized(&mut rest[0], n * o.len());
            let extra = &mut cache.extra[i];
            let p = &self.params[i];
            match self.specs[i] {
                LayerSpec::Conv { k, stride, pad, .. } => {
                    let g = ConvGeom { big_h: s.h, big_w: s.w, channels: s.c, k, stride, pad };
                    let rows = n * o.h * o.w;
                    let direct = (stride, pad) == (1, 0);
                    match direct.then(|| Kernel::conv(&p[0], Some(&p[1]), k, s.c, o.c)).flatten() {
                        // inference's kernel, a few images per task: these layers are too
                        // narrow (16 or 32 outputs) for the GEMM to run near its peak
                        Some(kernel) => x
                            .par_chunks(4 * s.len())
                            .zip(y.par_chunks_mut(4 * o.len()))
                            .for_each(|(xc, yc)| kernel.forward(xc, xc.len() / s.len(), s.h, s.w, yc)),
                        None => {
                            let cols = sized(extra, rows * g.patch());
                            im2col_nhwc(&g, n, x, cols, true);
                            affine(cols, rows, g.patch(), &p[0], &p[1], o.c, y, Threads::All, true)
                        }
                    }
                }
                LayerSpec::ConvT { k, stride, pad, .. } => {
                    if let Some(wino) = self.winograd_convt(i) {
                        let u = sized(&mut cache.transformed_w[i], wino.weight_len());
                        wino.transform_weights(&p[0], u);
                        let v = sized(extra, wino.input_len(n));
                        wino.transform_inputs(x, n, v);
                        let m = scratch(&mut cache.dcols, wino.product_len(n));
                        wino.products(v, u, n, m);
                        wino.transform_outputs(m, n, &p[1], y);
                        continue;
                    }
                    // the column route, a block of images per task: this layer is narrow
                    // (one output channel) and its GEMMs too skinny to split well themselves
                    let g = ConvGeom { big_h: o.h, big_w: o.w, channels: o.c, k, stride, pad };
                    let (per_rows, patch) = (s.h * s.w, g.patch());
                    let block = convt_block(n, per_rows * patch);
                    let cols = sized(extra, n * per_rows * patch);
                    (
                        x.par_chunks(block * s.len()),
                        y.par_chunks_mut(block * o.len()),
                        cols.par_chunks_mut(block * per_rows * patch),
                    )
                        .into_par_iter()
                        .for_each(|(xb, yb, cb)| {
                            let images = xb.len() / s.len();
                            matmul(
                                images * per_rows,
                                patch,
                                s.c,
                                xb,
                                Trans::No,
                                &p[0],
                                Trans::Yes,
                                cb,
                                false,
                                Threads::One,
                            );
                            col2im_nhwc(&g, images, cb, yb);
                        });
                    add_channel_bias(y, &p[1]);
                }
                LayerSpec::Linear { out } => affine(x, n, s.len(), &p[0], &p[1], out, y, Threads::All, true),
                LayerSpec::MaxPool2 => {
                    let idx = sized(&mut cache.pool_idx[i], n * o.len());
                    maxpool2_nhwc(n, s.h, s.w, s.c, x, y, Some(idx));
                }
                LayerSpec::BatchNorm => {
                    let (mean, inv_std) = bn_stats.expect("computed for batch norm");
                    let xhat = sized(extra, x.len());
                    normalise(x, xhat, y, &mean, &inv_std, &p[0], &p[1]);
                    cache.bn_inv_std[i] = inv_std;
                }
                LayerSpec::Relu => map_into(x, y, |v| v.max(0.0)),
                LayerSpec::Sigmoid => map_into(x, y, sigmoid),
                LayerSpec::Crop { top, left, .. } => crop_into(x, y, s, o, top, left),
                LayerSpec::Reshape { .. } => y.copy_from_slice(x),
            }
        }
    }

    /// Batch mean and `1 / sqrt(var + eps)` of layer `i`'s input per channel (sums in f64, see
    /// [`column_sums`]); updates the running statistics.
    fn bn_batch_stats(&mut self, i: usize, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let c = self.shapes[i].c;
        let rows = x.len() / c;
        let [mean, sq] = column_sums(x, None, c, |v, _| [v as f64, (v as f64) * (v as f64)]);
        let mut inv_std = vec![0.0f32; c];
        let mut meanf = vec![0.0f32; c];
        for j in 0..c {
            let m = mean[j] / rows as f64;
            let var = (sq[j] / rows as f64 - m * m).max(0.0);
            meanf[j] = m as f32;
            inv_std[j] = 1.0 / ((var as f32) + BN_EPS).sqrt();
            let unbiased = var * rows as f64 / (rows.max(2) - 1) as f64;
            let buf = &mut self.buffers[i];
            buf[0][j] = (1.0 - BN_MOMENTUM) * buf[0][j] + BN_MOMENTUM * m as f32;
            buf[1][j] = (1.0 - BN_MOMENTUM) * buf[1][j] + BN_MOMENTUM * unbiased as f32;
        }
        (meanf, inv_std)
    }

    /// Backward pass: accumulates parameter gradients from `dout` (gradient of the loss
    /// w.r.t. the network output). Returns the gradient w.r.t. the input, or nothing when the
    /// first layer has parameters (nobody needs the data's gradient; a caller who does puts a
    /// `Reshape` first).
    pub fn backward<'c>(&mut self, cache: &'c mut TrainCache, dout: &[f32]) -> &'c [f32] {
        self.backward_pass(cache, dout, true)
    }

    /// The gradient of the loss w.r.t. the input of the cached batch, leaving the parameter
    /// gradients alone: a frozen network that judges another network's output (the decoder's
    /// class guide) passes its gradient down without learning from it.
    pub fn input_gradient<'c>(&mut self, cache: &'c mut TrainCache, dout: &[f32]) -> &'c [f32] {
        self.backward_pass(cache, dout, false)
    }

    /// With `learn`, accumulates parameter gradients and stops at a first layer with
    /// parameters; without, skips them and always reaches the input.
    fn backward_pass<'c>(&mut self, cache: &'c mut TrainCache, dout: &[f32], learn: bool) -> &'c [f32] {
        let n = cache.n;
        let layers = self.specs.len();
        cache.layer_grads.resize_with(layers, Vec::new);
        let mut dy = std::mem::take(&mut cache.out_grad);
        dy.clear();
        dy.extend_from_slice(dout);
        // where dy's buffer goes back when a layer replaces it: the slot of the layer that made
        // it (None: the output's). Each buffer returns to its own slot, so every slot keeps
        // one length from step to step and is never refilled with zeros.
        let mut dy_slot = None;
        let mut reached_input = true;
        for i in (0..layers).rev() {
            let mut dx = std::mem::take(&mut cache.layer_grads[i]);
            let mut swapped = false;
            let (s, o) = (self.shapes[i], self.shapes[i + 1]);
            let x = &cache.acts[i];
            let p = &self.params[i];
            let winograd = self.winograd_convt(i);
            let gr = &mut self.grads[i];
            let first = learn && i == 0;
            match self.specs[i] {
                LayerSpec::Conv { k, stride, pad, .. } => {
                    let g = ConvGeom { big_h: s.h, big_w: s.w, channels: s.c, k, stride, pad };
                    let (per_rows, patch) = (o.h * o.w, g.patch());
                    // blocks of images across threads, each GEMM on one thread: the weight
                    // gradient's GEMMs are skinny (25 x 16 or 400 x 32 outputs over thousands
                    // of rows), which the GEMM itself splits poorly; each block's column
                    // matrices are made and used while they are in cache
                    let block = (CONV_BLOCK_COLS / (per_rows * patch).max(1)).clamp(1, n.max(1));
                    let (blocks, block_cols) = (n.div_ceil(block), block * per_rows * patch);
                    // the weight gradient read in place where the kernel applies, else
                    // from the block's column matrix
                    let direct = (stride, pad) == (1, 0) && conv_weight_grad_applies(k, s.c, o.c);
                    // every buffer has one chunk per block, used or not, so the zip below
                    // runs all blocks (the first layer makes no input gradient; a direct
                    // weight gradient needs no columns, so they get one unused float a block)
                    let (col_chunk, col_len) = if direct { (1, blocks) } else { (block_cols, n * per_rows * patch) };
                    let cols = scratch(&mut cache.cols, col_len);
                    let dcols = scratch(&mut cache.dcols, n * per_rows * patch);
                    let partial = scratch(&mut cache.partial_dw, blocks * patch * o.c);
                    let d = sized(&mut dx, x.len());
                    (
                        x.par_chunks(block * s.len()),
                        dy.par_chunks(block * o.len()),
                        cols.par_chunks_mut(col_chunk),
                        dcols.par_chunks_mut(block_cols),
                        partial.par_chunks_mut(patch * o.c),
                        d.par_chunks_mut(block * s.len()),
                    )
                        .into_par_iter()
                        .for_each(|(xb, dyb, cb, dcb, pb, db)| {
                            let images = xb.len() / s.len();
                            if learn && direct {
                                conv_weight_grad(xb, dyb, images, s.h, s.w, s.c, k, o.c, pb);
                            } else if learn {
                                im2col_nhwc(&g, images, xb, cb, false);
                                let rows = images * per_rows;
                                matmul(patch, o.c, rows, cb, Trans::Yes, dyb, Trans::No, pb, false, Threads::One);
                            }
                            if !first {
                                let rows = images * per_rows;
                                matmul(rows, patch, o.c, dyb, Trans::No, &p[0], Trans::Yes, dcb, false, Threads::One);
                                col2im_nhwc(&g, images, dcb, db);
                            }
                        });
                    if learn {
                        // the blocks' sums in block order: the same bits for any thread count
                        for pb in partial.chunks(patch * o.c) {
                            gr[0].iter_mut().zip(pb).for_each(|(w, v)| *w += v);
                        }
                        add_col_sums(&dy, o.c, &mut gr[1]);
                    }
                    if first {
                        reached_input = false;
                        cache.layer_grads[i] = dx;
                        break;
                    }
                    std::mem::swap(&mut dy, &mut dx);
                    swapped = true;
                }
                LayerSpec::ConvT { k, stride, pad, .. } => {
                    // the full length even for a first layer: the block route zips one chunk
                    // of it per block
                    let d = sized(&mut dx, x.len());
                    if let Some(wino) = winograd {
                        let dm = scratch(&mut cache.dcols, wino.product_len(n));
                        wino.transform_output_grads(&dy, n, dm);
                        if learn {
                            let du = scratch(&mut cache.partial_dw, wino.weight_len());
                            wino.weight_grads(&cache.extra[i], dm, n, du, &mut gr[0]);
                        }
                        if !first {
                            let dv = scratch(&mut cache.cols, wino.input_len(n));
                            wino.input_grad_products(dm, &cache.transformed_w[i], n, dv);
                            wino.transform_input_grads(dv, n, d);
                        }
                    } else {
                        let g = ConvGeom { big_h: o.h, big_w: o.w, channels: o.c, k, stride, pad };
                        let (per_rows, patch) = (s.h * s.w, g.patch());
                        let block = convt_block(n, per_rows * patch);
                        let blocks = n.div_ceil(block);
                        let dcols = scratch(&mut cache.dcols, n * per_rows * patch);
                        let partial = scratch(&mut cache.partial_dw, blocks * patch * s.c);
                        (
                            x.par_chunks(block * s.len()),
                            dy.par_chunks(block * o.len()),
                            dcols.par_chunks_mut(block * per_rows * patch),
                            partial.par_chunks_mut(patch * s.c),
                            d.par_chunks_mut(block * s.len()),
                        )
                            .into_par_iter()
                            .for_each(|(xb, dyb, dcb, pb, db)| {
                                let rows = xb.len() / s.len() * per_rows;
                                im2col_nhwc(&g, rows / per_rows, dyb, dcb, false);
                                if learn {
                                    matmul(patch, s.c, rows, dcb, Trans::Yes, xb, Trans::No, pb, false, Threads::One);
                                }
                                if !first {
                                    matmul(rows, s.c, patch, dcb, Trans::No, &p[0], Trans::No, db, false, Threads::One);
                                }
                            });
                        if learn {
                            // the blocks' sums in block order: the same bits for any thread count
                            for pb in partial.chunks(patch * s.c) {
                                gr[0].iter_mut().zip(pb).for_each(|(w, v)| *w += v);
                            }
                        }
                    }
                    if learn {
                        add_col_sums(&dy, o.c, &mut gr[1]);
                    }
                    if first {
                        reached_input = false;
                        cache.layer_grads[i] = dx;
                        break;
                    }
                    std::mem::swap(&mut dy, &mut dx);
                    swapped = true;
                }
                LayerSpec::Linear { out } => {
                    let inp = s.len();
                    if learn {
                        matmul(inp, out, n, x, Trans::Yes, &dy, Trans::No, &mut gr[0], true, Threads::All);
                        add_col_sums(&dy, out, &mut gr[1]);
                    }
                    if first {
                        reached_input = false;
                        cache.layer_grads[i] = dx;
                        break;
                    }
                    // made transposed, `W dy^T`, then turned: the same products summed in the
                    // same order as `dy W^T` (the same bits), but the kernel splits the layer's
                    // inputs rather than the batch's 128 rows across threads
                    let dt = scratch(&mut cache.dcols, inp * n);
                    matmul(inp, n, out, &p[0], Trans::No, &dy, Trans::Yes, dt, false, Threads::All);
                    transpose_into(dt, inp, n, sized(&mut dx, n * inp));
                    std::mem::swap(&mut dy, &mut dx);
                    swapped = true;
                }
                LayerSpec::BatchNorm => {
                    let c = s.c;
                    let xhat = &cache.extra[i];
                    let inv_std = &cache.bn_inv_std[i];
                    let rows = (x.len() / c) as f32;
                    let [sum_dy, sum_dy_xhat] = column_sums(&dy, Some(xhat), c, |d, x| [d, d * x]);
                    if learn {
                        for j in 0..c {
                            gr[0][j] += sum_dy_xhat[j];
                            gr[1][j] += sum_dy[j];
                        }
                    }
                    let block = (PAR_MIN / c).max(1) * c;
                    let (gamma, inv_std) = (&p[0][..c], &inv_std[..c]);
                    let (sum_dy, sum_dy_xhat) = (&sum_dy[..c], &sum_dy_xhat[..c]);
                    dy.par_chunks_mut(block).zip(xhat.par_chunks(block)).for_each(|(db, xb)| {
                        for (dr, xr) in db.chunks_exact_mut(c).zip(xb.chunks_exact(c)) {
                            let (dr, xr) = (&mut dr[..c], &xr[..c]);
                            for j in 0..c {
                                dr[j] =
                                    gamma[j] * inv_std[j] / rows * (rows * dr[j] - sum_dy[j] - xr[j] * sum_dy_xhat[j]);
                            }
                        }
                    });
                }
                LayerSpec::Relu => update_with(&mut dy, x, |d, v| if v > 0.0 { d } else { 0.0 }),
                LayerSpec::Sigmoid => update_with(&mut dy, &cache.acts[i + 1], |d, v| d * v * (1.0 - v)),
                LayerSpec::MaxPool2 => {
                    let d = sized(&mut dx, x.len());
                    // image by image across threads: each image's winners lie in that image
                    let (il, ol) = (s.len(), o.len());
                    d.par_chunks_mut(il)
                        .zip(dy.par_chunks(ol))
                        .zip(cache.pool_idx[i].par_chunks(ol))
                        .enumerate()
                        .for_each(|(b, ((d, dy), idx))| {
                            d.fill(0.0);
                            for (g, &j) in dy.iter().zip(idx) {
                                d[j as usize - b * il] += g;
                            }
                        });
                    std::mem::swap(&mut dy, &mut dx);
                    swapped = true;
                }
                LayerSpec::Crop { top, left, .. } => {
                    let d = sized(&mut dx, x.len());
                    d.fill(0.0);
                    for (dimg, gimg) in d.chunks_exact_mut(s.len()).zip(dy.chunks_exact(o.len())) {
                        for (r, grow) in gimg.chunks_exact(o.w * s.c).enumerate() {
                            let start = ((top + r) * s.w + left) * s.c;
                            dimg[start..start + o.w * s.c].copy_from_slice(grow);
                        }
                    }
                    std::mem::swap(&mut dy, &mut dx);
                    swapped = true;
                }
                LayerSpec::Reshape { .. } => {}
            }
            if swapped {
                // dx holds the gradient this layer read: back to the slot it came from
                match dy_slot {
                    None => cache.out_grad = dx,
                    Some(j) => cache.layer_grads[j] = dx,
                }
                dy_slot = Some(i);
            } else {
                cache.layer_grads[i] = dx;
            }
        }
        let slot = match dy_slot {
            None => &mut cache.out_grad,
            Some(j) => &mut cache.layer_grads[j],
        };
        *slot = dy;
        if reached_input {
            slot
        } else {
            &[]
        }
    }
}

/// `t` (`rows x cols`, row-major) written transposed into `y` (`cols x rows`).
fn transpose_into(t: &[f32], rows: usize, cols: usize, y: &mut [f32]) {
    for (j, yr) in y.chunks_mut(rows).enumerate() {
        yr.iter_mut().enumerate().for_each(|(i, v)| *v = t[i * cols + j]);
    }
}

/// Adds the column sums of `dy` (rows of `c`) to `acc`: a bias gradient.
fn add_col_sums(dy: &[f32], c: usize, acc: &mut [f32]) {
    let [sums] = column_sums(dy, None, c, |v, _| [v]);
    acc.iter_mut().zip(sums).for_each(|(a, v)| *a += v);
}

/// Rows per partial sum in [`column_sums`]: fixed, so the result does not depend on the
/// number of threads.
const SUM_ROWS: usize = 1024;

/// Column sums of `S` functions of `(a[r, j], b[r, j])` over the rows of `a` (and `b`, of the
/// same shape; `a` again when not given), rows of `c` values. Blocks of `SUM_ROWS` rows are summed across
/// threads, then the block sums are added in order: the same bits for any thread count.
fn column_sums<T, const S: usize>(
    a: &[f32],
    b: Option<&[f32]>,
    c: usize,
    f: impl Fn(f32, f32) -> [T; S] + Sync,
) -> [Vec<T>; S]
where
    T: Copy + Default + Send + std::ops::AddAssign,
{
    let block = SUM_ROWS * c;
    let partial = |(i, ab): (usize, &[f32])| {
        // without `b`, `f` sees `a` twice (and ignores its second argument)
        let bb = b.map_or(ab, |b| &b[i * block..i * block + ab.len()]);
        let mut acc: [Vec<T>; S] = std::array::from_fn(|_| vec![T::default(); c]);
        for (row, other) in ab.chunks_exact(c).zip(bb.chunks_exact(c)) {
            // one sum at a time, over slices of equal length: a loop the compiler vectorises;
            // each sum still adds its rows in order, so the bits do not change
            for (s, acc) in acc.iter_mut().enumerate() {
                for ((a, &v), &o) in acc[..c].iter_mut().zip(&row[..c]).zip(&other[..c]) {
                    *a += f(v, o)[s];
                }
            }
        }
        acc
    };
    let parts: Vec<[Vec<T>; S]> = a.par_chunks(block).enumerate().map(partial).collect();
    let mut total: [Vec<T>; S] = std::array::from_fn(|_| vec![T::default(); c]);
    for part in parts {
        for (t, p) in total.iter_mut().zip(part) {
            t.iter_mut().zip(p).for_each(|(t, p)| *t += p);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::WinogradConvT;
    use crate::nn::{mse, Shape};
    use crate::rng::Rng;
    use LayerSpec::*;

    /// One layer of every kind, for a 6x6x2 input: the finite-difference checks go through all.
    fn every_layer_kind() -> Vec<LayerSpec> {
        vec![
            Conv { cout: 3, k: 3, stride: 1, pad: 1 },
            BatchNorm,
            Relu,
            MaxPool2,
            Linear { out: 18 },
            Reshape { h: 3, w: 3, c: 2 },
            ConvT { cout: 2, k: 4, stride: 2, pad: 1 },
            Crop { top: 1, left: 0, h: 4, w: 5 },
            Sigmoid,
        ]
    }

    /// The mean squared error of a training pass of (a copy of) `net` on `x` against `target`.
    fn mse_of(net: &Network, x: &[f32], n: usize, target: &[f32]) -> f64 {
        let mut copy = net.clone();
        let mut c = TrainCache::default();
        copy.forward_train(x, n, &mut c);
        let mut g = vec![0.0; c.output().len()];
        mse(c.output(), target, &mut g) as f64
    }

    /// Finite differences against the hand-written backward pass, through every layer kind.
    #[test]
    fn gradients_match_finite_differences() {
        check_gradients(Network::new(Shape::new(6, 6, 2), every_layer_kind(), 3).unwrap());
    }

    /// The same through transposed convolutions on Winograd's route: one first (no input
    /// gradient), one behind batch norm, on grids of 3 and 6 (one and two tiles per side).
    #[test]
    fn winograd_transposed_convolutions_match_finite_differences() {
        let specs = vec![
            ConvT { cout: 8, k: 4, stride: 2, pad: 1 },
            BatchNorm,
            Relu,
            ConvT { cout: 8, k: 4, stride: 2, pad: 1 },
            Crop { top: 2, left: 1, h: 3, w: 4 },
            Sigmoid,
        ];
        let net = Network::new(Shape::new(3, 3, 8), specs, 4).unwrap();
        assert!(WinogradConvT::new(6, 6, 8, 8, 4, 2, 1).is_some(), "the route under test");
        check_gradients(net);
    }

    /// Inference and training's forward pass compute a transposed convolution with the same
    /// kernel, so a decoder is evaluated on what it was trained on, to the bit, although
    /// inference works chunks of 16 images and training the whole batch (40 here).
    #[test]
    fn transposed_convolutions_infer_what_they_train_on() {
        for cout in [8, 2] {
            let specs = vec![ConvT { cout, k: 4, stride: 2, pad: 1 }, Sigmoid];
            let mut net = Network::new(Shape::new(7, 7, 16), specs, 5).unwrap();
            let n = 40;
            let mut rng = Rng::new(3);
            let x: Vec<f32> = (0..n * net.in_len()).map(|_| rng.normal()).collect();
            let mut cache = TrainCache::default();
            net.forward_train(&x, n, &mut cache);
            let inferred = net.forward_from(0, &x, n);
            if cout == 8 {
                assert!(cache.output().iter().zip(&inferred).all(|(a, b)| a.to_bits() == b.to_bits()));
            } else {
                // the column route: the same products, summed in another order
                assert!(cache.output().iter().zip(&inferred).all(|(a, b)| (a - b).abs() < 1e-5));
            }
        }
    }

    /// Finite differences of the loss in a sample of every parameter against `net`'s backward
    /// pass, on three inputs of its shape.
    fn check_gradients(mut net: Network) {
        let n = 3;
        let len = net.in_len();
        let mut rng = Rng::new(9);
        let x: Vec<f32> = (0..n * len).map(|_| rng.normal()).collect();
        let target: Vec<f32> = (0..n * net.out_len()).map(|_| rng.uniform()).collect();
        let loss_of = |net: &Network| mse_of(net, &x, n, &target);
        let mut cache = TrainCache::default();
        net.forward_train(&x, n, &mut cache);
        let mut g = vec![0.0; cache.output().len()];
        mse(cache.output(), &target, &mut g);
        net.backward(&mut cache, &g);
        let analytic: Vec<Vec<Vec<f32>>> = net.grads.clone();
        let h = 1e-2f32;
        let mut checked = 0;
        #[allow(clippy::needless_range_loop)] // params are mutated inside, so no iterator borrow
        for li in 0..net.params.len() {
            #[allow(clippy::needless_range_loop)]
            for ti in 0..net.params[li].len() {
                for j in (0..net.params[li][ti].len()).step_by(7) {
                    let orig = net.params[li][ti][j];
                    net.params[li][ti][j] = orig + h;
                    let up = loss_of(&net);
                    net.params[li][ti][j] = orig - h;
                    let down = loss_of(&net);
                    net.params[li][ti][j] = orig;
                    let numeric = (up - down) / (2.0 * h as f64);
                    let a = analytic[li][ti][j] as f64;
                    assert!(
                        (numeric - a).abs() < 2e-3 + 0.05 * a.abs(),
                        "layer {li} tensor {ti} [{j}]: numeric {numeric} analytic {a}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 20);
    }

    /// A cache reused across steps of other batch sizes gives the bits a fresh one gives.
    /// One backward pass of a TargetNet-S-like convolution (12x12x16 -> 8x8x32, 10 images per
    /// block) over 23 images, three blocks, on `threads` threads: the weight and input gradients.
    fn blocked_conv_gradients(threads: usize, cout: usize) -> (Vec<f32>, Vec<f32>, Network, Vec<f32>, Vec<f32>) {
        let specs = vec![Reshape { h: 12, w: 12, c: 16 }, Conv { cout, k: 5, stride: 1, pad: 0 }];
        let mut net = Network::new(Shape::new(12, 12, 16), specs, 3).unwrap();
        let n = 23;
        assert!(CONV_BLOCK_COLS / (64 * 400) < n / 2, "the batch must span several blocks");
        let mut rng = Rng::new(8);
        let x: Vec<f32> = (0..n * net.in_len()).map(|_| rng.normal()).collect();
        let dout: Vec<f32> = (0..n * net.out_len()).map(|_| rng.normal()).collect();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let dx = pool.install(|| {
            let mut cache = TrainCache::default();
            net.forward_train(&x, n, &mut cache);
            net.backward(&mut cache, &dout).to_vec()
        });
        (net.grads[1][0].clone(), dx, net, x, dout)
    }

    /// 32 outputs take the weight gradient read in place, 24 the block's column matrix; both
    /// with a short last block (23 images in blocks of 10).
    #[test]
    fn blocked_convolution_gradients_are_exact_and_the_same_on_any_thread_count() {
        for o in [32, 24] {
            assert_eq!(conv_weight_grad_applies(5, 16, o), o == 32 && cfg!(target_feature = "avx2"));
            blocked_convolution_gradients_with(o);
        }
    }

    fn blocked_convolution_gradients_with(o: usize) {
        let (dw, dx, net, x, dout) = blocked_conv_gradients(1, o);
        for threads in [2, 3] {
            let (dw_t, dx_t, ..) = blocked_conv_gradients(threads, o);
            assert_eq!(dw, dw_t, "weight gradient bits on {threads} threads");
            assert_eq!(dx, dx_t, "input gradient bits on {threads} threads");
        }
        // against the convolution's gradients summed directly
        let (n, c, k) = (23, 16, 5);
        let w = &net.params[1][0];
        let mut want_dw = vec![0.0f64; k * k * c * o];
        let mut want_dx = vec![0.0f64; n * 12 * 12 * c];
        for b in 0..n {
            for (oy, ox) in (0..8).flat_map(|oy| (0..8).map(move |ox| (oy, ox))) {
                for (ky, kx, ci) in (0..k).flat_map(|ky| (0..k).flat_map(move |kx| (0..c).map(move |ci| (ky, kx, ci))))
                {
                    let xi = ((b * 12 + oy + ky) * 12 + ox + kx) * c + ci;
                    let row = (ky * k + kx) * c + ci;
                    for oc in 0..o {
                        let g = dout[((b * 8 + oy) * 8 + ox) * o + oc] as f64;
                        want_dw[row * o + oc] += x[xi] as f64 * g;
                        want_dx[xi] += w[row * o + oc] as f64 * g;
                    }
                }
            }
        }
        for (got, want) in dw.iter().zip(&want_dw).chain(dx.iter().zip(&want_dx)) {
            assert!((*got as f64 - want).abs() < 1e-3 * (1.0 + want.abs()), "{got} vs {want}");
        }
    }

    #[test]
    fn a_reused_cache_changes_nothing() {
        let specs = vec![
            Reshape { h: 6, w: 6, c: 2 },
            Conv { cout: 4, k: 3, stride: 1, pad: 1 },
            BatchNorm,
            Relu,
            MaxPool2,
            Linear { out: 18 },
            Reshape { h: 3, w: 3, c: 2 },
            ConvT { cout: 2, k: 4, stride: 2, pad: 1 },
            Sigmoid,
        ];
        let net = Network::new(Shape::new(6, 6, 2), specs, 5).unwrap();
        let mut rng = Rng::new(2);
        let mut reused = TrainCache::default();
        for n in [5, 2, 7] {
            let x: Vec<f32> = (0..n * 72).map(|_| rng.normal()).collect();
            let dout: Vec<f32> = (0..n * net.out_len()).map(|_| rng.normal()).collect();
            let (mut a, mut b) = (net.clone(), net.clone());
            let mut fresh = TrainCache::default();
            a.forward_train(&x, n, &mut fresh);
            b.forward_train(&x, n, &mut reused);
            assert_eq!(fresh.output(), reused.output());
            let (ga, gb) = (a.backward(&mut fresh, &dout).to_vec(), b.backward(&mut reused, &dout).to_vec());
            assert_eq!(ga.len(), n * 72, "a leading Reshape passes the input gradient");
            assert_eq!(ga, gb);
            assert_eq!(a.grads, b.grads);
            assert_eq!(a.buffers, b.buffers);
        }
    }

    /// A frozen network's input gradient matches finite differences through every layer kind
    /// (a weighted first layer included), and leaves its parameter gradients at zero.
    #[test]
    fn input_gradient_matches_finite_differences_and_learns_nothing() {
        let net = Network::new(Shape::new(6, 6, 2), every_layer_kind(), 4).unwrap();
        let n = 3;
        let mut rng = Rng::new(12);
        let x: Vec<f32> = (0..n * 72).map(|_| rng.normal()).collect();
        let target: Vec<f32> = (0..n * net.out_len()).map(|_| rng.uniform()).collect();
        let loss_at = |x: &[f32]| mse_of(&net, x, n, &target);
        let mut frozen = net.clone();
        let mut cache = TrainCache::default();
        frozen.forward_train(&x, n, &mut cache);
        let mut g = vec![0.0; cache.output().len()];
        mse(cache.output(), &target, &mut g);
        let analytic = frozen.input_gradient(&mut cache, &g).to_vec();
        assert_eq!(analytic.len(), x.len());
        assert!(frozen.grads.iter().flatten().flatten().all(|v| *v == 0.0), "a frozen network learns nothing");
        let h = 1e-2f32;
        for j in (0..x.len()).step_by(5) {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[j] += h;
            down[j] -= h;
            let numeric = (loss_at(&up) - loss_at(&down)) / (2.0 * h as f64);
            let a = analytic[j] as f64;
            assert!((numeric - a).abs() < 2e-3 + 0.05 * a.abs(), "input [{j}]: numeric {numeric} analytic {a}");
        }
    }

    /// Without a leading Reshape, the data's gradient is not computed.
    #[test]
    fn no_input_gradient_behind_a_first_layer_with_weights() {
        for first in [Linear { out: 4 }, Conv { cout: 2, k: 1, stride: 1, pad: 0 }] {
            let mut net = Network::new(Shape::new(1, 1, 3), vec![first], 1).unwrap();
            let mut cache = TrainCache::default();
            net.forward_train(&[0.5, -1.0, 2.0], 1, &mut cache);
            let dout = vec![1.0; net.out_len()];
            assert!(net.backward(&mut cache, &dout).is_empty());
            assert!(net.grads[0][0].iter().any(|g| *g != 0.0));
        }
    }
}
