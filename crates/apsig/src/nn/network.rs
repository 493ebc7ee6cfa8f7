//! A sequential network: its weights, and inference (parallel over images, one small GEMM per
//! task). Training passes are in `training.rs`.

use super::kernel_cache::{Kernel, KernelCache};
use super::layer::{LayerSpec, Shape};
use crate::kernels::{
    col2im_nhwc, im2col_nhwc, matmul, maxpool2_nhwc_infer, ConvGeom, Threads, Trans, WinogradConv, WinogradConvT,
};
use crate::rng::Rng;
use rayon::prelude::*;
use std::cell::RefCell;

pub(super) const BN_EPS: f32 = 1e-5;
pub(super) const BN_MOMENTUM: f32 = 0.1;
/// Images per inference task: small enough that a task's activations stay in L2.
const INFER_CHUNK: usize = 16;

thread_local! {
    /// Each thread's two inference activation buffers, reused from call to call: fresh ones
    /// per layer cost a zero fill and page faults (5% of TargetNet-S's forward pass).
    static SCRATCH: RefCell<[Vec<f32>; 2]> = RefCell::default();
}
/// Scratch a thread keeps after a call (floats; 64 MiB): a one-off large batch through
/// `infer_serial` gets its buffers back to the allocator instead of holding them for good.
const SCRATCH_KEEP: usize = 1 << 24;

/// Weights, running statistics and gradients of a sequential network.
#[derive(Clone, Debug)]
pub struct Network {
    /// Shape of one input.
    pub input: Shape,
    /// The layers, in order.
    pub specs: Vec<LayerSpec>,
    /// `shapes[i]` is the input shape of layer `i`; the last entry is the output shape.
    pub(super) shapes: Vec<Shape>,
    /// Per layer, its trainable tensors (weight, bias) or (gamma, beta).
    pub params: Vec<Vec<Vec<f32>>>,
    pub(super) grads: Vec<Vec<Vec<f32>>>,
    /// Per batch-norm layer: running mean and variance.
    pub buffers: Vec<Vec<Vec<f32>>>,
    /// Inference kernels built from the weights (see `kernel_cache`).
    kernels: KernelCache,
}

impl Network {
    /// A freshly initialised network (He-normal weights, zero biases, unit BN scale).
    pub fn new(input: Shape, specs: Vec<LayerSpec>, seed: u64) -> Result<Self, String> {
        let len = input.h.checked_mul(input.w).and_then(|v| v.checked_mul(input.c));
        if !matches!(len, Some(l) if l > 0 && l <= 1 << 24) {
            return Err(format!("implausible input shape {}x{}x{}", input.h, input.w, input.c));
        }
        let mut shapes = vec![input];
        for (i, s) in specs.iter().enumerate() {
            let next = s.out_shape(*shapes.last().unwrap()).map_err(|e| format!("layer {i}: {e}"))?;
            shapes.push(next);
        }
        // refuse before allocating: a file may describe an absurdly large network
        let mut total: usize = 0;
        for (i, spec) in specs.iter().enumerate() {
            for shape in spec.param_shapes(shapes[i]) {
                let len = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
                total = len.and_then(|l| total.checked_add(l)).ok_or("parameter count overflows")?;
            }
        }
        if total > 1 << 27 {
            return Err(format!("{total} parameters is more than this engine accepts (2^27)"));
        }
        let mut rng = Rng::new(seed);
        let mut params = Vec::new();
        let mut buffers = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let s = shapes[i];
            let ps: Vec<Vec<f32>> = spec
                .param_shapes(s)
                .iter()
                .enumerate()
                .map(|(j, shape)| {
                    let len: usize = shape.iter().product();
                    match (spec, j) {
                        (LayerSpec::BatchNorm, 0) => vec![1.0; len],
                        (_, 0) => {
                            let std = (2.0 / spec.fan_in(s) as f32).sqrt();
                            (0..len).map(|_| rng.normal() * std).collect()
                        }
                        _ => vec![0.0; len],
                    }
                })
                .collect();
            params.push(ps);
            buffers.push(match spec {
                LayerSpec::BatchNorm => vec![vec![0.0; s.c], vec![1.0; s.c]],
                _ => vec![],
            });
        }
        let grads = params.iter().map(|p| p.iter().map(|t| vec![0.0; t.len()]).collect()).collect();
        Ok(Network { input, specs, shapes, params, grads, buffers, kernels: KernelCache::default() })
    }

    /// Shape of one output.
    pub fn output_shape(&self) -> Shape {
        *self.shapes.last().unwrap()
    }
    /// Shape of the input of layer `layer`.
    pub fn shape_before(&self, layer: usize) -> Shape {
        self.shapes[layer]
    }
    /// Values in one input.
    pub fn in_len(&self) -> usize {
        self.input.len()
    }
    /// Values in one output.
    pub fn out_len(&self) -> usize {
        self.output_shape().len()
    }
    /// Forward multiply-accumulates per sample.
    pub fn macs(&self) -> u64 {
        self.specs.iter().zip(&self.shapes).map(|(l, s)| l.macs(*s)).sum()
    }
    /// Floating-point operations per sample of inference as performed: twice the
    /// multiply-accumulates, except for the convolutions that Winograd's F(2x2, 5x5) serves
    /// (see `kernels::WinogradConv`) and the transposed convolutions that Winograd's phases
    /// serve (`kernels::WinogradConvT`), which count their products and transforms.
    pub fn infer_flops(&self) -> u64 {
        (self.specs.iter().zip(self.shapes.windows(2)).enumerate())
            .map(|(i, (l, io))| match *l {
                LayerSpec::Conv { k, stride: 1, pad: 0, .. } if WinogradConv::applies(k, io[0].c, io[1].c) => {
                    WinogradConv::flops(io[1].h, io[1].w, io[0].c, io[1].c)
                }
                _ => self.winograd_convt(i).map_or(2 * l.macs(io[0]), |conv| conv.forward_flops()),
            })
            .sum()
    }
    /// Floating-point operations per sample of a training step as performed: the forward pass
    /// as inference computes it ([`Network::infer_flops`]), and a backward pass of twice the
    /// forward's multiply-adds (weight and input gradients), less the input gradient of a
    /// first layer with weights, which the backward pass never makes; Winograd's transposed
    /// convolutions count their own.
    pub fn train_flops(&self) -> u64 {
        let backward: u64 = (self.specs.iter().zip(self.shapes.windows(2)).enumerate())
            .map(|(i, (l, io))| {
                let first = i == 0;
                let plain = 2 * l.macs(io[0]) * if first { 1 } else { 2 };
                self.winograd_convt(i).map_or(plain, |conv| conv.backward_flops(first))
            })
            .sum();
        self.infer_flops() + backward
    }

    /// Winograd's kernel for layer `i`, where it is a transposed convolution that the kernel
    /// serves: the one place that decides, for training, inference and the FLOP counts.
    pub(super) fn winograd_convt(&self, i: usize) -> Option<WinogradConvT> {
        let (s, o) = (self.shapes[i], self.shapes[i + 1]);
        match self.specs[i] {
            LayerSpec::ConvT { k, stride, pad, .. } => WinogradConvT::new(s.h, s.w, s.c, o.c, k, stride, pad),
            _ => None,
        }
    }
    /// Trainable parameters in all layers.
    pub fn num_params(&self) -> usize {
        self.params.iter().flatten().map(|t| t.len()).sum()
    }

    /// Inference on `n` samples: outputs `[n, out_len]`.
    pub fn forward(&self, x: &[f32], n: usize) -> Vec<f32> {
        self.forward_from(0, x, n)
    }

    /// Inference starting at layer `start`, with `x` the input of that layer.
    pub fn forward_from(&self, start: usize, x: &[f32], n: usize) -> Vec<f32> {
        let (il, ol) = (self.shapes[start].len(), self.out_len());
        assert_eq!(x.len(), n * il, "input length");
        let mut out = vec![0.0f32; n * ol];
        out.par_chunks_mut(INFER_CHUNK * ol).zip(x.par_chunks(INFER_CHUNK * il)).for_each(|(o, xi)| {
            self.infer_serial_into(start, xi, xi.len() / il, o);
        });
        out
    }

    /// Single-threaded inference of layers `start..` on a small batch (the oracle's hot path).
    pub fn infer_serial(&self, start: usize, x: &[f32], n: usize) -> Vec<f32> {
        let mut out = vec![0.0; n * self.out_len()];
        self.infer_serial_into(start, x, n, &mut out);
        out
    }

    /// [`Network::infer_serial`] into `out`. The activations live in this thread's two
    /// scratch buffers: each layer reads `a` (or `x`, before the first) and writes `b`, and
    /// the two swap.
    fn infer_serial_into(&self, start: usize, x: &[f32], n: usize, out: &mut [f32]) {
        assert_eq!(x.len(), n * self.shapes[start].len(), "input length");
        let [mut a, mut b] = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        // whether the activations are still the input, and how many there are
        let (mut in_x, mut len) = (true, x.len());
        let mut i = start;
        while i < self.specs.len() {
            if self.specs[i] == LayerSpec::Relu && !in_x {
                a[..len].iter_mut().for_each(|v| *v = v.max(0.0));
                i += 1;
                continue;
            }
            let src = if in_x { x } else { &a[..len] };
            let next = n * self.shapes[i + 1].len();
            if b.len() < next {
                b.resize(next, 0.0);
            }
            let y = &mut b[..next];
            match self.specs[i] {
                // a ReLU after a max-pool is folded into the pool (one pass instead of two)
                LayerSpec::MaxPool2 => {
                    let relu = self.specs.get(i + 1) == Some(&LayerSpec::Relu);
                    let s = self.shapes[i];
                    maxpool2_nhwc_infer(n, s.h, s.w, s.c, src, y, relu);
                    i += 1 + relu as usize;
                }
                _ => {
                    self.apply_infer_into(i, src, n, Threads::One, true, y);
                    i += 1;
                }
            }
            std::mem::swap(&mut a, &mut b);
            (in_x, len) = (false, next);
        }
        out.copy_from_slice(if in_x { x } else { &a[..len] });
        if a.capacity() + b.capacity() <= SCRATCH_KEEP {
            SCRATCH.with(|s| *s.borrow_mut() = [a, b]);
        }
    }

    /// Layer `i` in inference mode; `with_bias == false` gives the linear part of an affine
    /// layer (used to push perturbation directions through the first layer).
    pub fn apply_infer(&self, i: usize, x: &[f32], n: usize, threads: Threads, with_bias: bool) -> Vec<f32> {
        let mut y = vec![0.0; n * self.shapes[i + 1].len()];
        self.apply_infer_into(i, x, n, threads, with_bias, &mut y);
        y
    }

    /// [`Network::apply_infer`] into `y`, whose old contents are ignored.
    fn apply_infer_into(&self, i: usize, x: &[f32], n: usize, threads: Threads, with_bias: bool, y: &mut [f32]) {
        let (s, o) = (self.shapes[i], self.shapes[i + 1]);
        assert_eq!(y.len(), n * o.len(), "output length");
        let p = &self.params[i];
        match self.specs[i] {
            LayerSpec::Conv { k, stride, pad, .. } => {
                let g = ConvGeom { big_h: s.h, big_w: s.w, channels: s.c, k, stride, pad };
                let rows = n * o.h * o.w;
                if stride == 1 && pad == 0 && threads == Threads::One {
                    let bias = with_bias.then_some(&p[1][..]);
                    if let Some(built) = self.kernels.get(i, &p[0], bias, || Kernel::conv(&p[0], bias, k, s.c, o.c)) {
                        built.kernel.forward(x, n, s.h, s.w, y);
                        return;
                    }
                }
                let mut cols = vec![0.0; rows * g.patch()];
                im2col_nhwc(&g, n, x, &mut cols, threads == Threads::All);
                affine(&cols, rows, g.patch(), &p[0], &p[1], o.c, y, threads, with_bias);
            }
            LayerSpec::ConvT { k, stride, pad, .. } => {
                let bias = with_bias.then_some(&p[1][..]);
                let build = || self.winograd_convt(i).map(|conv| Kernel::conv_t(conv, &p[0], bias));
                if let Some(built) = self.kernels.get(i, &p[0], bias, build) {
                    built.kernel.forward(x, n, s.h, s.w, y);
                    return;
                }
                let g = ConvGeom { big_h: o.h, big_w: o.w, channels: o.c, k, stride, pad };
                let rows = n * s.h * s.w;
                let mut cols = vec![0.0; rows * g.patch()];
                matmul(rows, g.patch(), s.c, x, Trans::No, &p[0], Trans::Yes, &mut cols, false, threads);
                col2im_nhwc(&g, n, &cols, y);
                if with_bias {
                    add_channel_bias(y, &p[1]);
                }
            }
            LayerSpec::Linear { out } => affine(x, n, s.len(), &p[0], &p[1], out, y, threads, with_bias),
            LayerSpec::BatchNorm => {
                let (mean, var) = (&self.buffers[i][0], &self.buffers[i][1]);
                let scale: Vec<f32> = p[0].iter().zip(var).map(|(g, v)| g / (v + BN_EPS).sqrt()).collect();
                let shift: Vec<f32> = (0..s.c).map(|c| p[1][c] - mean[c] * scale[c]).collect();
                for (yr, xr) in y.chunks_mut(s.c).zip(x.chunks(s.c)) {
                    for c in 0..s.c {
                        yr[c] = xr[c] * scale[c] + shift[c];
                    }
                }
            }
            LayerSpec::Relu => y.iter_mut().zip(x).for_each(|(o, v)| *o = v.max(0.0)),
            LayerSpec::Sigmoid => y.iter_mut().zip(x).for_each(|(o, v)| *o = sigmoid(*v)),
            LayerSpec::MaxPool2 => maxpool2_nhwc_infer(n, s.h, s.w, s.c, x, y, false),
            LayerSpec::Crop { top, left, .. } => crop_into(x, y, s, o, top, left),
            LayerSpec::Reshape { .. } => y.copy_from_slice(x),
        }
    }

    /// Which of `params_and_grads` are weights of a dense or convolution layer (the tensors
    /// weight decay applies to; biases and batch norm's scale and shift are left alone).
    pub fn weight_mask(&self) -> Vec<bool> {
        self.specs
            .iter()
            .zip(&self.params)
            .flat_map(|(spec, ps)| {
                let weights = !matches!(spec, LayerSpec::BatchNorm);
                (0..ps.len()).map(move |j| weights && j == 0)
            })
            .collect()
    }

    /// Parameters paired with their gradients, in a fixed order (for the optimiser).
    pub fn params_and_grads(&mut self) -> Vec<(&mut [f32], &mut [f32])> {
        self.params
            .iter_mut()
            .flatten()
            .zip(self.grads.iter_mut().flatten())
            .map(|(p, g)| (p.as_mut_slice(), g.as_mut_slice()))
            .collect()
    }

    /// Every stored tensor under a stable name, with its shape: what a model file holds.
    pub fn named_tensors(&self) -> Vec<(String, Vec<usize>, &[f32])> {
        let mut out = Vec::new();
        for (i, spec) in self.specs.iter().enumerate() {
            let shapes = spec.param_shapes(self.shapes[i]);
            let names: &[&str] =
                if matches!(spec, LayerSpec::BatchNorm) { &["gamma", "beta"] } else { &["weight", "bias"] };
            for (j, t) in self.params[i].iter().enumerate() {
                out.push((format!("layers.{i}.{}", names[j]), shapes[j].clone(), t.as_slice()));
            }
            for (j, t) in self.buffers[i].iter().enumerate() {
                let name = ["running_mean", "running_var"][j];
                out.push((format!("layers.{i}.{name}"), vec![t.len()], t.as_slice()));
            }
        }
        out
    }

    /// Mutable access to a tensor by the name `named_tensors` gives it.
    pub fn tensor_mut(&mut self, name: &str) -> Option<&mut Vec<f32>> {
        let rest = name.strip_prefix("layers.")?;
        let (i, field) = rest.split_once('.')?;
        let i: usize = i.parse().ok()?;
        let bn = matches!(self.specs.get(i)?, LayerSpec::BatchNorm);
        match field {
            "weight" if !bn => self.params[i].get_mut(0),
            "bias" if !bn => self.params[i].get_mut(1),
            "gamma" if bn => self.params[i].get_mut(0),
            "beta" if bn => self.params[i].get_mut(1),
            "running_mean" => self.buffers[i].get_mut(0),
            "running_var" => self.buffers[i].get_mut(1),
            _ => None,
        }
    }
}

/// `y[rows, out] = x[rows, inp] * w[inp, out] (+ b)`.
#[allow(clippy::too_many_arguments)]
pub(super) fn affine(
    x: &[f32],
    rows: usize,
    inp: usize,
    w: &[f32],
    b: &[f32],
    out: usize,
    y: &mut [f32],
    threads: Threads,
    with_bias: bool,
) {
    if with_bias {
        for r in y.chunks_mut(out) {
            r.copy_from_slice(b);
        }
    }
    matmul(rows, out, inp, x, Trans::No, w, Trans::No, y, with_bias, threads);
}

pub(super) fn add_channel_bias(y: &mut [f32], b: &[f32]) {
    for r in y.chunks_mut(b.len()) {
        for (v, bb) in r.iter_mut().zip(b) {
            *v += bb;
        }
    }
}

pub(super) fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// The `o.h x o.w` window at (`top`, `left`) of each `s`-shaped image of `x`, into `y`.
pub(super) fn crop_into(x: &[f32], y: &mut [f32], s: Shape, o: Shape, top: usize, left: usize) {
    for (img, out) in x.chunks_exact(s.len()).zip(y.chunks_exact_mut(o.len())) {
        for (r, row) in out.chunks_exact_mut(o.w * s.c).enumerate() {
            let start = ((top + r) * s.w + left) * s.c;
            row.copy_from_slice(&img[start..start + o.w * s.c]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weight_mask_marks_dense_and_convolution_weights_only() {
        let specs = vec![
            LayerSpec::Conv { cout: 4, k: 3, stride: 1, pad: 1 },
            LayerSpec::BatchNorm,
            LayerSpec::Relu,
            LayerSpec::Linear { out: 3 },
        ];
        let net = Network::new(Shape::new(5, 5, 2), specs, 1).unwrap();
        // conv weight, conv bias, gamma, beta, linear weight, linear bias
        assert_eq!(net.weight_mask(), vec![true, false, false, false, true, false]);
    }

    /// Weights changed in place after a forward pass are the ones the next pass uses (see
    /// `kernel_cache`): the same bits as a network that never cached anything (a clone starts
    /// empty).
    #[test]
    fn a_kernel_is_rebuilt_when_its_weights_change_in_place() {
        let specs = vec![LayerSpec::Conv { cout: 16, k: 5, stride: 1, pad: 0 }];
        let mut net = Network::new(Shape::new(9, 9, 8), specs, 3).unwrap();
        let x: Vec<f32> = (0..2 * 9 * 9 * 8).map(|i| ((i * 7 % 23) as f32 - 11.0) / 11.0).collect();
        let before = net.forward(&x, 2);
        assert_eq!(before, net.clone().forward(&x, 2), "a cached kernel gives other bits than a fresh one");
        net.params[0][0][5] += 0.5;
        net.params[0][1][2] -= 0.25;
        let after = net.forward(&x, 2);
        assert_ne!(before, after, "the old kernel was used");
        assert_eq!(after, net.clone().forward(&x, 2));
    }

    /// Inference through the reused scratch buffers, left dirty by other networks and batch
    /// sizes, gives the bits of a layer-by-layer pass on fresh zero-filled vectors: no layer
    /// may depend on what its output buffer held (col2im, for one, adds into it).
    #[test]
    fn reused_scratch_gives_the_bits_of_fresh_buffers() {
        use LayerSpec::*;
        let decoder = vec![
            Linear { out: 4 * 4 * 8 },
            BatchNorm,
            Relu,
            Reshape { h: 4, w: 4, c: 8 },
            ConvT { cout: 4, k: 4, stride: 2, pad: 1 },
            Relu,
            ConvT { cout: 2, k: 4, stride: 2, pad: 1 },
            Crop { top: 1, left: 2, h: 14, w: 13 },
            Sigmoid,
        ];
        let classifier = vec![
            Conv { cout: 16, k: 5, stride: 1, pad: 0 },
            MaxPool2,
            Relu,
            Conv { cout: 16, k: 3, stride: 1, pad: 1 },
            Relu,
            Linear { out: 10 },
        ];
        let nets = [
            Network::new(Shape::new(1, 1, 12), decoder, 4).unwrap(),
            Network::new(Shape::new(12, 12, 3), classifier, 5).unwrap(),
        ];
        let input = |net: &Network, n: usize| -> Vec<f32> {
            (0..n * net.in_len()).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect()
        };
        let fresh = |net: &Network, n: usize| -> Vec<f32> {
            (0..net.specs.len()).fold(input(net, n), |x, i| net.apply_infer(i, &x, n, Threads::One, true))
        };
        // each network after the other, on batch sizes that grow and shrink the buffers
        for n in [3, 1, 5, 2] {
            for net in &nets {
                assert_eq!(net.infer_serial(0, &input(net, n), n), fresh(net, n), "batch {n}");
            }
        }
    }
}
