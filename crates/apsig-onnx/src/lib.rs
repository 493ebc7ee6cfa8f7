//! ONNX for apsig: attack any ONNX classifier (through tract), and export apsig's own
//! networks as ONNX (through a tiny hand-written protobuf writer, [`proto`]).
#![warn(missing_docs)]

mod error;
pub mod proto;

use apsig::data::interleaved_to_planar;
use apsig::model::{Arch, Classifier, SuppliedModel};
use apsig::nn::{LayerSpec, Network, Shape};
pub use error::{Error, Result};
use proto::{Attr, Dim, Graph};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tract_onnx::prelude::*;

/// How a model's image input is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `[N,C,H,W]`, channels first: what `torch.onnx.export` writes.
    Nchw,
    /// `[N,H,W,C]`, channels last: what TensorFlow / Keras exports write.
    Nhwc,
    /// `[N,H,W]`: one grey channel.
    Nhw,
}

impl Layout {
    /// The name used in messages and reports.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Nchw => "NCHW",
            Layout::Nhwc => "NHWC",
            Layout::Nhw => "NHW",
        }
    }

    /// The layout of a rank-4 input `[N, a, b, c]`: channels last when only the last
    /// dimension looks like a channel count (1 or 3, as images have), else channels first
    /// (PyTorch's default, also when both could be).
    fn of_rank4(a: usize, c: usize) -> Layout {
        let channels = |d: usize| d == 1 || d == 3;
        if channels(c) && !channels(a) {
            Layout::Nhwc
        } else {
            Layout::Nchw
        }
    }
}

/// An ONNX image classifier: input `[N,C,H,W]`, `[N,H,W,C]` or `[N,H,W]` (float), output
/// `[N, classes]`.
///
/// apsig's images and directions are channels-last `[h, w, c]`; for a channels-first model
/// they are transposed on the way in, here and nowhere else. The plan is immutable and
/// shared, so `logits` may be called from any number of threads at once.
pub struct OnnxClassifier {
    path: PathBuf,
    sha256: String,
    plan: Arc<TypedRunnableModel>,
    shape: Shape,
    classes: usize,
    /// `Some(b)` when the file fixes the batch size: inputs go in padded chunks of `b`.
    fixed_batch: Option<usize>,
    layout: Layout,
}

impl std::fmt::Debug for OnnxClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxClassifier")
            .field("path", &self.path)
            .field("shape", &self.shape)
            .field("classes", &self.classes)
            .field("fixed_batch", &self.fixed_batch)
            .field("layout", &self.layout)
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
        // the bytes are read once: the hash names exactly what was loaded
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
        let sha256 = apsig::io::sha256_hex(&bytes);
        let model = tract_onnx::onnx()
            .model_for_read(&mut bytes.as_slice())
            .map_err(|e| format!("not a readable ONNX model: {e}"))?;
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
        if dims.len() != 4 && dims.len() != 3 {
            return Err(format!("input must be [N,C,H,W], [N,H,W,C] or [N,H,W], found {}", dims_text(&dims)));
        }
        let fixed = |d: &Option<TDim>| -> std::result::Result<usize, String> {
            match d.as_ref().and_then(|d| d.to_i64().ok()) {
                Some(v) if v > 0 && v <= 1 << 20 => Ok(v as usize),
                _ => Err(format!(
                    "input must be [N,C,H,W], [N,H,W,C] or [N,H,W] with fixed image dimensions, found {}",
                    dims_text(&dims)
                )),
            }
        };
        let image_dims = dims[1..].iter().map(fixed).collect::<std::result::Result<Vec<usize>, String>>()?;
        let (layout, h, w, c) = match image_dims[..] {
            [a, b, c] => match Layout::of_rank4(a, c) {
                Layout::Nhwc => (Layout::Nhwc, a, b, c),
                _ => (Layout::Nchw, b, c, a),
            },
            [h, w] => (Layout::Nhw, h, w, 1),
            _ => unreachable!("rank checked above"),
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
        shape.extend(image_dims.iter().map(|d| d.to_dim()));
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
            sha256,
            plan,
            shape: Shape::new(h, w, c),
            classes,
            fixed_batch,
            layout,
        };
        // one evaluation now, so that a model tract cannot run fails here, not in a worker
        me.try_logits(&vec![0.0; me.shape.len()], 1).map_err(|e| format!("test evaluation failed: {e}"))?;
        Ok(me)
    }

    /// The file the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SHA-256 of the file's bytes (hex), as loaded.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// How the model's input is laid out.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The model's input as its layout and tensor shape, e.g. `NCHW [N,3,32,32]`.
    pub fn input_text(&self) -> String {
        let Shape { h, w, c } = self.shape;
        let n = self.fixed_batch.map_or("N".to_string(), |b| b.to_string());
        let dims = match self.layout {
            Layout::Nchw => format!("[{n},{c},{h},{w}]"),
            Layout::Nhwc => format!("[{n},{h},{w},{c}]"),
            Layout::Nhw => format!("[{n},{h},{w}]"),
        };
        format!("{} {dims}", self.layout.name())
    }

    /// Loads `path` for a role in a run: the classifier with the file's hash and a
    /// description of its input for reports.
    pub fn load_supplied(path: impl AsRef<Path>) -> Result<SuppliedModel> {
        let m = Self::load(path)?;
        Ok(SuppliedModel {
            file: m.path.clone(),
            sha256: m.sha256.clone(),
            description: format!("ONNX, {} input", m.input_text()),
            classifier: Arc::new(m),
        })
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
            let t = self.to_tensor(xs, b)?;
            let res = self.plan.run(tvec![t.into()]).map_err(|e| self.failure(e))?;
            let view = res[0].to_plain_array_view::<f32>().map_err(|e| self.failure(e))?;
            if view.shape() != [b, self.classes] {
                return Err(self.failure(format!("output shape {:?}, expected [{b}, {}]", view.shape(), self.classes)));
            }
            out.extend(view.iter().take(m * self.classes));
        }
        Ok(out)
    }

    /// Whole channels-last images `xs` as a tensor in the model's layout, zero-padded to `b` images.
    fn to_tensor(&self, xs: &[f32], b: usize) -> Result<Tensor> {
        let Shape { h, w, c } = self.shape;
        let mut data = vec![0.0f32; b * c * h * w];
        let shape: Vec<usize> = match self.layout {
            Layout::Nchw => {
                data[..xs.len()].copy_from_slice(&interleaved_to_planar(xs, h * w, c));
                vec![b, c, h, w]
            }
            // channels last already, or one channel: the values go in as they are
            Layout::Nhwc | Layout::Nhw => {
                data[..xs.len()].copy_from_slice(xs);
                if self.layout == Layout::Nhwc {
                    vec![b, h, w, c]
                } else {
                    vec![b, h, w]
                }
            }
        };
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
    fn identity(&self) -> Option<String> {
        Some(format!("onnx sha256:{}", self.sha256))
    }
}

/// Loads the user's model for a role: an ONNX file (by its `.onnx` extension), else an apsig
/// model file (safetensors) of architecture `arch`. Either way the result carries the file's
/// SHA-256 and a description for reports.
pub fn load_model(path: impl AsRef<Path>, arch: Arch) -> Result<SuppliedModel> {
    let path = path.as_ref();
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx")) {
        return OnnxClassifier::load_supplied(path);
    }
    Ok(SuppliedModel::from_apsig_file(path, arch)?)
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
