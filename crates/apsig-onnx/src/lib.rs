//! ONNX for apsig: attack any ONNX classifier (through tract), and export apsig's own
//! networks as ONNX (through a tiny hand-written protobuf writer, [`proto`]).
#![warn(missing_docs)]

mod error;
pub mod proto;

use apsig::model::Classifier;
use apsig::nn::{LayerSpec, Network, Shape};
pub use error::{Error, Result};
use proto::{Attr, Dim, Graph};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tract_onnx::prelude::*;

/// An ONNX image classifier: input `[N,C,H,W]` or `[N,H,W]` (float), output `[N, classes]`.
///
/// apsig's images and directions are channels-last `[h, w, c]`; they are transposed to the
/// model's channels-first order on the way in. The plan is immutable and shared, so
/// `logits` may be called from any number of threads at once.
pub struct OnnxClassifier {
    path: PathBuf,
    plan: Arc<TypedRunnableModel>,
    shape: Shape,
    classes: usize,
    /// `Some(b)` when the file fixes the batch size: inputs go in padded chunks of `b`.
    fixed_batch: Option<usize>,
    /// `[N,C,H,W]` (else `[N,H,W]`).
    has_channels: bool,
}

impl std::fmt::Debug for OnnxClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxClassifier")
            .field("path", &self.path)
            .field("shape", &self.shape)
            .field("classes", &self.classes)
            .field("fixed_batch", &self.fixed_batch)
            .finish_non_exhaustive()
    }
}

fn concrete(d: &tract_onnx::tract_hir::infer::DimFact) -> Option<TDim> {
    use tract_onnx::tract_hir::infer::Factoid;
    d.concretize()
}

fn dims_text(dims: &[Option<TDim>]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.as_ref().map_or("?".to_string(), |d| d.to_string())).collect();
    format!("[{}]", parts.join(","))
}

impl OnnxClassifier {
    /// Loads and optimises an ONNX classifier; every error names the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::load_inner(path).map_err(|reason| Error::Load { file: path.display().to_string(), reason })
    }

    fn load_inner(path: &Path) -> std::result::Result<Self, String> {
        if !path.is_file() {
            return Err("no such file".to_string());
        }
        let model = tract_onnx::onnx().model_for_path(path).map_err(|e| format!("not a readable ONNX model: {e}"))?;
        if model.inputs.len() != 1 {
            return Err(format!("the model must have exactly one input, found {}", model.inputs.len()));
        }
        if model.outputs.len() != 1 {
            return Err(format!("the model must have exactly one output, found {}", model.outputs.len()));
        }
        let fact = model.input_fact(0).map_err(|e| e.to_string())?;
        if fact.shape.is_open() {
            return Err("input must be [N,C,H,W] or [N,H,W], found a shape of unknown rank".to_string());
        }
        let dims: Vec<Option<TDim>> = fact.shape.dims().map(concrete).collect();
        let bad_shape = || format!("input must be [N,C,H,W] or [N,H,W], found {}", dims_text(&dims));
        let has_channels = match dims.len() {
            4 => true,
            3 => false,
            _ => return Err(bad_shape()),
        };
        let fixed = |d: &Option<TDim>| -> std::result::Result<usize, String> {
            match d.as_ref().and_then(|d| d.to_i64().ok()) {
                Some(v) if v > 0 && v <= 1 << 20 => Ok(v as usize),
                _ => {
                    Err(format!("input must be [N,C,H,W] or [N,H,W] with fixed C, H and W, found {}", dims_text(&dims)))
                }
            }
        };
        let (c, h, w) = if has_channels {
            (fixed(&dims[1])?, fixed(&dims[2])?, fixed(&dims[3])?)
        } else {
            (1, fixed(&dims[1])?, fixed(&dims[2])?)
        };
        let fixed_batch = match dims[0].as_ref().and_then(|d| d.to_i64().ok()) {
            Some(b) if b > 0 => Some(b as usize),
            Some(b) => return Err(format!("batch dimension {b} in input {}", dims_text(&dims))),
            None => None,
        };
        let batch: TDim = match fixed_batch {
            Some(b) => b.to_dim(),
            None => model.sym("N").to_dim(),
        };
        let mut shape: TVec<TDim> = tvec![batch];
        if has_channels {
            shape.push(c.to_dim());
        }
        shape.push(h.to_dim());
        shape.push(w.to_dim());
        let model = model
            .with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), shape))
            .map_err(|e| format!("cannot set the input fact: {e}"))?;
        let typed = model.into_optimized().map_err(|e| format!("cannot analyse or optimise the model: {e:?}"))?;
        let out = typed.output_fact(0).map_err(|e| e.to_string())?;
        if out.datum_type != f32::datum_type() {
            return Err(format!("output must be float logits, found {:?}", out.datum_type));
        }
        let odims: Vec<TDim> = out.shape.dims().to_vec();
        let classes = match odims.as_slice() {
            [_, k] => k.to_i64().ok().filter(|&k| k > 0).map(|k| k as usize),
            _ => None,
        }
        .ok_or_else(|| {
            let t: Vec<String> = odims.iter().map(|d| d.to_string()).collect();
            format!("output must be [N, classes] with a fixed number of classes, found [{}]", t.join(","))
        })?;
        let plan = typed.into_runnable().map_err(|e| format!("cannot plan the model: {e}"))?;
        let me = OnnxClassifier {
            path: path.to_path_buf(),
            plan,
            shape: Shape::new(h, w, c),
            classes,
            fixed_batch,
            has_channels,
        };
        // one evaluation now, so that a model tract cannot run fails here, not in a worker
        me.try_logits(&vec![0.0; me.shape.len()], 1).map_err(|e| format!("test evaluation failed: {e}"))?;
        Ok(me)
    }

    /// The file the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn failure(&self, reason: impl std::fmt::Display) -> Error {
        Error::Eval { file: self.path.display().to_string(), reason: reason.to_string() }
    }

    /// Logits `[n, classes]` of `n` channels-last images, or tract's error.
    pub fn try_logits(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let len = self.shape.len();
        if x.len() != n * len {
            return Err(self.failure(format!("{} values for {n} inputs of {len}", x.len())));
        }
        let mut out = Vec::with_capacity(n * self.classes);
        if n == 0 {
            return Ok(out);
        }
        let chunk = self.fixed_batch.unwrap_or(n);
        for xs in x.chunks(chunk * len) {
            let m = xs.len() / len;
            let b = self.fixed_batch.unwrap_or(m);
            let t = self.to_tensor(xs, m, b)?;
            let res = self.plan.run(tvec![t.into()]).map_err(|e| self.failure(e))?;
            let view = res[0].to_plain_array_view::<f32>().map_err(|e| self.failure(e))?;
            if view.shape() != [b, self.classes] {
                return Err(self.failure(format!("output shape {:?}, expected [{b}, {}]", view.shape(), self.classes)));
            }
            out.extend(view.iter().take(m * self.classes));
        }
        Ok(out)
    }

    /// `m` channels-last images as a `[b, C, H, W]` (or `[b, H, W]`) tensor, zero-padded to `b`.
    fn to_tensor(&self, xs: &[f32], m: usize, b: usize) -> Result<Tensor> {
        let Shape { h, w, c } = self.shape;
        let mut data = vec![0.0f32; b * c * h * w];
        for i in 0..m {
            let src = &xs[i * h * w * c..(i + 1) * h * w * c];
            let dst = &mut data[i * c * h * w..(i + 1) * c * h * w];
            for y in 0..h {
                for xx in 0..w {
                    for ch in 0..c {
                        dst[(ch * h + y) * w + xx] = src[(y * w + xx) * c + ch];
                    }
                }
            }
        }
        let shape: Vec<usize> = if self.has_channels { vec![b, c, h, w] } else { vec![b, h, w] };
        Tensor::from_shape(&shape, &data).map_err(|e| self.failure(e))
    }
}

impl Classifier for OnnxClassifier {
    fn input_shape(&self) -> Shape {
        self.shape
    }
    fn num_classes(&self) -> usize {
        self.classes
    }
    fn logits(&self, x: &[f32], n: usize) -> Vec<f32> {
        match self.try_logits(x, n) {
            Ok(v) => v,
            Err(e) => panic!("ONNX evaluation failed: {e:#}"),
        }
    }
}

/// The ONNX graph of an apsig network made of `Conv`, `MaxPool2`, `Relu`, `Sigmoid` and
/// `Linear` layers: input `"input"` `[N, C, H, W]` (N symbolic), output `"logits"` `[N, classes]`.
pub fn network_graph(net: &Network) -> Result<Graph> {
    let mut g = Graph::new("apsig");
    let s0 = net.input;
    let n = Dim::Param("N".into());
    g.input("input", &[n.clone(), Dim::Value(s0.c as i64), Dim::Value(s0.h as i64), Dim::Value(s0.w as i64)]);
    let mut cur = "input".to_string();
    let mut spatial = true; // NCHW 4-D; false once flattened to [N, features]
    let last = net.specs.len();
    let mut fresh = 0usize;
    let mut name = |what: &str| {
        fresh += 1;
        format!("{what}_{fresh}")
    };
    for (i, spec) in net.specs.iter().enumerate() {
        let s = net.shape_before(i);
        let p = &net.params[i];
        match *spec {
            LayerSpec::Conv { cout, k, stride, pad } => {
                if !spatial {
                    return Err(Error::Layer {
                        layer: i,
                        reason: "convolution after a flattening linear layer".into(),
                    });
                }
                let cin = s.c;
                let mut wt = vec![0.0f32; cout * cin * k * k];
                for ky in 0..k {
                    for kx in 0..k {
                        for c in 0..cin {
                            let row = (ky * k + kx) * cin + c;
                            for o in 0..cout {
                                wt[((o * cin + c) * k + ky) * k + kx] = p[0][row * cout + o];
                            }
                        }
                    }
                }
                let (wn, bn, out) = (format!("conv{i}.weight"), format!("conv{i}.bias"), name("conv"));
                g.initializer(&wn, &[cout, cin, k, k], &wt).initializer(&bn, &[cout], &p[1]);
                let (k, st, pd) = (k as i64, stride as i64, pad as i64);
                g.node(
                    "Conv",
                    &[&cur, &wn, &bn],
                    &[&out],
                    &[
                        ("kernel_shape", Attr::Ints(vec![k, k])),
                        ("strides", Attr::Ints(vec![st, st])),
                        ("pads", Attr::Ints(vec![pd, pd, pd, pd])),
                    ],
                );
                cur = out;
            }
            LayerSpec::MaxPool2 => {
                if !spatial {
                    return Err(Error::Layer { layer: i, reason: "max-pool after a flattening linear layer".into() });
                }
                let out = name("pool");
                g.node(
                    "MaxPool",
                    &[&cur],
                    &[&out],
                    &[("kernel_shape", Attr::Ints(vec![2, 2])), ("strides", Attr::Ints(vec![2, 2]))],
                );
                cur = out;
            }
            LayerSpec::Relu | LayerSpec::Sigmoid => {
                let op = if *spec == LayerSpec::Relu { "Relu" } else { "Sigmoid" };
                let out = name(&op.to_lowercase());
                g.node(op, &[&cur], &[&out], &[]);
                cur = out;
            }
            LayerSpec::Linear { out: width } => {
                if spatial {
                    // apsig flattens channels-last: NCHW -> NHWC, then flatten
                    let (t, f) = (name("nhwc"), name("flat"));
                    g.node("Transpose", &[&cur], &[&t], &[("perm", Attr::Ints(vec![0, 2, 3, 1]))]);
                    g.node("Flatten", &[&t], &[&f], &[("axis", Attr::Int(1))]);
                    cur = f;
                    spatial = false;
                }
                let (wn, bn) = (format!("linear{i}.weight"), format!("linear{i}.bias"));
                g.initializer(&wn, &[s.len(), width], &p[0]).initializer(&bn, &[width], &p[1]);
                let mm = name("matmul");
                let out = if i + 1 == last { "logits".to_string() } else { name("linear") };
                g.node("MatMul", &[&cur, &wn], &[&mm], &[]);
                g.node("Add", &[&mm, &bn], &[&out], &[]);
                cur = out;
            }
            ref other => {
                return Err(Error::Layer {
                    layer: i,
                    reason: format!("{other:?} has no ONNX export (Conv, MaxPool2, Relu, Sigmoid, Linear only)"),
                })
            }
        }
    }
    if spatial {
        let (t, f) = (name("nhwc"), "logits".to_string());
        g.node("Transpose", &[&cur], &[&t], &[("perm", Attr::Ints(vec![0, 2, 3, 1]))]);
        g.node("Flatten", &[&t], &[&f], &[("axis", Attr::Int(1))]);
        cur = f;
    }
    if cur != "logits" {
        g.node("Identity", &[&cur], &["logits"], &[]);
    }
    g.output("logits", &[n, Dim::Value(net.out_len() as i64)]);
    Ok(g)
}

/// Writes `net` (TargetNet-S, or any network [`network_graph`] accepts) as an ONNX file.
pub fn export_targetnet(net: &Network, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let file = || path.display().to_string();
    let g = network_graph(net).map_err(|e| Error::Export { file: file(), reason: e.to_string() })?;
    apsig::io::atomic_write(path, &g.to_bytes()).map_err(|e| Error::Write { file: file(), reason: e.to_string() })
}
