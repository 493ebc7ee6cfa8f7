//! Layer specifications and their shapes. The arithmetic lives in `network.rs`.

use serde::{Deserialize, Serialize};

/// A channels-last activation shape for one sample (a flat vector is `1 x 1 x c`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Channels.
    pub c: usize,
}

impl Shape {
    /// A shape `h x w x c`.
    pub const fn new(h: usize, w: usize, c: usize) -> Self {
        Shape { h, w, c }
    }
    /// A flat vector of `c` values (`1 x 1 x c`).
    pub const fn flat(c: usize) -> Self {
        Shape { h: 1, w: 1, c }
    }
    /// Values in a tensor of this shape.
    pub const fn len(&self) -> usize {
        self.h * self.w * self.c
    }
    /// Whether the shape holds no values.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One layer. The list of specs is the architecture: it is stored in every model file and
/// compared on load, so a file made for one architecture can never be read as another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum LayerSpec {
    /// Square-kernel convolution; weight `[k*k*cin, cout]`, bias `[cout]`.
    Conv {
        /// Output channels.
        cout: usize,
        /// Kernel side.
        k: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on each side.
        pad: usize,
    },
    /// Transposed convolution (the adjoint of `Conv`); weight `[k*k*cout, cin]`, bias `[cout]`.
    ConvT {
        /// Output channels.
        cout: usize,
        /// Kernel side.
        k: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on each side.
        pad: usize,
    },
    /// Fully connected on the flattened input; weight `[in, out]`, bias `[out]`.
    Linear {
        /// Output features.
        out: usize,
    },
    /// Batch normalisation over the channel axis (statistics over batch and space).
    BatchNorm,
    /// `max(x, 0)`.
    Relu,
    /// 2x2 max-pool, stride 2.
    MaxPool2,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// Keep the `h x w` window whose top-left pixel is `(top, left)`, every channel (the
    /// decoder's last step when an image side is not a multiple of its up-sampling).
    Crop {
        /// First row kept.
        top: usize,
        /// First column kept.
        left: usize,
        /// Rows kept.
        h: usize,
        /// Columns kept.
        w: usize,
    },
    /// Reinterpret the flat features as `h x w x c` (no data movement in NHWC).
    Reshape {
        /// Height.
        h: usize,
        /// Width.
        w: usize,
        /// Channels.
        c: usize,
    },
}

impl LayerSpec {
    /// The output shape for input `s`, or why the layer cannot take it. Checked arithmetic
    /// throughout: the specs come from files, and a file must never make this panic.
    pub fn out_shape(&self, s: Shape) -> Result<Shape, String> {
        const MAX_DIM: usize = 1 << 20;
        let ok = |o: Shape| {
            let len = o.h.checked_mul(o.w).and_then(|v| v.checked_mul(o.c));
            match len {
                Some(l) if l > 0 && l <= 1 << 28 && o.h <= MAX_DIM && o.w <= MAX_DIM => Ok(o),
                _ => Err(format!("implausible shape {}x{}x{}", o.h, o.w, o.c)),
            }
        };
        if s.h == 0 || s.w == 0 || s.c == 0 {
            return Err("empty input".into());
        }
        match *self {
            LayerSpec::Conv { cout, k, stride, pad } | LayerSpec::ConvT { cout, k, stride, pad }
                if k == 0 || stride == 0 || cout == 0 || k > MAX_DIM || pad > MAX_DIM || stride > MAX_DIM =>
            {
                Err(format!("bad convolution (k {k}, stride {stride}, pad {pad}, cout {cout})"))
            }
            LayerSpec::Conv { cout, k, stride, pad } => {
                if s.h + 2 * pad < k || s.w + 2 * pad < k {
                    return Err(format!("conv k{k} does not fit input {}x{}", s.h, s.w));
                }
                ok(Shape::new((s.h + 2 * pad - k) / stride + 1, (s.w + 2 * pad - k) / stride + 1, cout))
            }
            LayerSpec::ConvT { cout, k, stride, pad } => {
                let h = (s.h - 1) * stride + k;
                let w = (s.w - 1) * stride + k;
                if h < 2 * pad + 1 || w < 2 * pad + 1 {
                    return Err("transposed conv padding larger than output".into());
                }
                ok(Shape::new(h - 2 * pad, w - 2 * pad, cout))
            }
            LayerSpec::Linear { out } => ok(Shape::flat(out)),
            LayerSpec::BatchNorm | LayerSpec::Relu | LayerSpec::Sigmoid => Ok(s),
            LayerSpec::MaxPool2 => {
                if s.h < 2 || s.w < 2 {
                    return Err("max-pool on an input smaller than 2x2".into());
                }
                Ok(Shape::new(s.h / 2, s.w / 2, s.c))
            }
            LayerSpec::Crop { top, left, h, w } => {
                let fits = |start: usize, len: usize, side: usize| start.checked_add(len).is_some_and(|e| e <= side);
                if !fits(top, h, s.h) || !fits(left, w, s.w) {
                    return Err(format!("crop {h}x{w} at ({top}, {left}) outside input {}x{}", s.h, s.w));
                }
                ok(Shape::new(h, w, s.c))
            }
            LayerSpec::Reshape { h, w, c } => {
                let o = ok(Shape::new(h, w, c))?;
                if o.len() != s.len() {
                    return Err(format!("reshape to {h}x{w}x{c} from {} values", s.len()));
                }
                Ok(o)
            }
        }
    }

    /// Shapes of the trainable parameters for input `s`.
    pub fn param_shapes(&self, s: Shape) -> Vec<Vec<usize>> {
        match *self {
            LayerSpec::Conv { cout, k, .. } => vec![vec![k.saturating_mul(k).saturating_mul(s.c), cout], vec![cout]],
            LayerSpec::ConvT { cout, k, .. } => vec![vec![k.saturating_mul(k).saturating_mul(cout), s.c], vec![cout]],
            LayerSpec::Linear { out } => vec![vec![s.len(), out], vec![out]],
            LayerSpec::BatchNorm => vec![vec![s.c], vec![s.c]],
            _ => vec![],
        }
    }

    /// Fan-in used to scale the initial weights.
    pub fn fan_in(&self, s: Shape) -> usize {
        match *self {
            LayerSpec::Conv { k, .. } => k * k * s.c,
            // each output of a stride-s transposed conv sums about (k/s)^2 * cin inputs
            LayerSpec::ConvT { k, stride, .. } => (k * k * s.c / (stride * stride)).max(1),
            LayerSpec::Linear { .. } => s.len(),
            _ => 1,
        }
    }

    /// Multiply-accumulates of the forward pass for one sample.
    pub fn macs(&self, s: Shape) -> u64 {
        let o = match self.out_shape(s) {
            Ok(o) => o,
            Err(_) => return 0,
        };
        match *self {
            LayerSpec::Conv { k, .. } => (o.len() * k * k * s.c) as u64,
            LayerSpec::ConvT { cout, k, .. } => (s.len() * k * k * cout) as u64,
            LayerSpec::Linear { out } => (s.len() * out) as u64,
            _ => 0,
        }
    }
}
