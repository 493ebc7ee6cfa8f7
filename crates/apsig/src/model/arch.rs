//! The fixed architectures apsig trains. Fixed so that speed and quality are comparable
//! across implementations and runs.

use crate::nn::{LayerSpec, Shape};
use serde::{Deserialize, Serialize};
use LayerSpec::*;

/// The built-in architectures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// The target M: conv 1->16 k5, ReLU, pool; conv 16->32 k5, ReLU, pool; 512->128, ReLU; 128->10.
    TargetNetS,
    /// The independent evaluator: 3x3 kernels, other widths, other seed.
    EvalNet,
    /// The DCGAN-style decoder from a signature of length K to a 28x28 image.
    Decoder,
}

impl Arch {
    /// The name in files and on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Arch::TargetNetS => "targetnet-s",
            Arch::EvalNet => "evalnet",
            Arch::Decoder => "decoder",
        }
    }

    /// Input shape and layers. `input` is the image shape for classifiers and `1x1xK` for
    /// the decoder; `classes` is the classifier output width; `width` the decoder's base width.
    pub fn layers(&self, input: Shape, classes: usize, width: usize) -> Vec<LayerSpec> {
        match self {
            Arch::TargetNetS => vec![
                Conv { cout: 16, k: 5, stride: 1, pad: 0 },
                MaxPool2,
                Relu,
                Conv { cout: 32, k: 5, stride: 1, pad: 0 },
                MaxPool2,
                Relu,
                Linear { out: 128 },
                Relu,
                Linear { out: classes },
            ],
            Arch::EvalNet => vec![
                Conv { cout: 16, k: 3, stride: 1, pad: 1 },
                Relu,
                MaxPool2,
                Conv { cout: 32, k: 3, stride: 1, pad: 0 },
                Relu,
                MaxPool2,
                Linear { out: 64 },
                Relu,
                Linear { out: classes },
            ],
            Arch::Decoder => {
                let _ = input;
                let w = width;
                vec![
                    Linear { out: 2 * w * 7 * 7 },
                    BatchNorm,
                    Relu,
                    Reshape { h: 7, w: 7, c: 2 * w },
                    ConvT { cout: w, k: 4, stride: 2, pad: 1 },
                    BatchNorm,
                    Relu,
                    ConvT { cout: 1, k: 4, stride: 2, pad: 1 },
                    Sigmoid,
                ]
            }
        }
    }
}
