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
    /// The DCGAN-style decoder from a signature of length K to an image (`decoder_layers`).
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

    /// The layers for images of shape `image` (H x W x C): the classifiers' input, the
    /// decoder's output (its input, a flat signature, needs no layer of its own). `classes`
    /// is the classifier output width; `width` the decoder's base width. The decoder here has no
    /// hidden layer (the paper's); `decoder_layers` builds one with it.
    ///
    /// Classifiers keep their two convolution blocks whatever the image; on images larger
    /// than about 40x40 extra 2x2 max-pools follow until at most 8x8 positions feed the dense
    /// layer (28x28 and 32x32 get none, so TargetNet-S on MNIST is the paper's network).
    pub fn layers(&self, image: Shape, classes: usize, width: usize) -> Vec<LayerSpec> {
        match self {
            Arch::TargetNetS => {
                let mut l = vec![
                    Conv { cout: 16, k: 5, stride: 1, pad: 0 },
                    MaxPool2,
                    Relu,
                    Conv { cout: 32, k: 5, stride: 1, pad: 0 },
                    MaxPool2,
                    Relu,
                ];
                let side = |s: usize| s.saturating_sub(4) / 2;
                l.extend(extra_pools(side(side(image.h)), side(side(image.w))));
                l.extend([Linear { out: 128 }, Relu, Linear { out: classes }]);
                l
            }
            Arch::EvalNet => {
                let mut l = vec![
                    Conv { cout: 16, k: 3, stride: 1, pad: 1 },
                    Relu,
                    MaxPool2,
                    Conv { cout: 32, k: 3, stride: 1, pad: 0 },
                    Relu,
                    MaxPool2,
                ];
                let (h, w) = ((image.h / 2).saturating_sub(2) / 2, (image.w / 2).saturating_sub(2) / 2);
                l.extend(extra_pools(h, w));
                l.extend([Linear { out: 64 }, Relu, Linear { out: classes }]);
                l
            }
            Arch::Decoder => decoder_layers(image, width, 0),
        }
    }
}

/// 2x2 max-pools that bring an `h x w` feature map down to at most 64 positions.
fn extra_pools(mut h: usize, mut w: usize) -> Vec<LayerSpec> {
    let mut pools = Vec::new();
    while h * w > 64 && h >= 2 && w >= 2 {
        pools.push(MaxPool2);
        (h, w) = (h / 2, w / 2);
    }
    pools
}

/// The largest start side of the decoder's projection: up-sampling stages are added until
/// both image sides, divided by 2^stages, are at most this.
const DECODER_MAX_START: usize = 8;

/// The DCGAN-style decoder generalised to `image`: a projection to a `h0 x w0` map of
/// `2^(stages-1) * width` channels, then `stages` transposed convolutions (k4, stride 2), each
/// doubling the sides and halving the channels down to `width`, the last one to the image's
/// channels, then a sigmoid. `stages >= 2` is the smallest number with
/// `ceil(side / 2^stages) <= 8` for both sides and `h0 = ceil(H / 2^stages)` (likewise `w0`).
/// Where a side is not a multiple of `2^stages` the decoder paints the next size up and a
/// centred crop (the extra row or column going to the bottom/right) keeps `H x W`.
/// 28x28x1: 7x7 with `2 * width` channels, 14x14x`width`, 28x28x1, no crop: the paper's decoder.
/// With `hidden > 0` a dense hidden layer of that width (batch norm, ReLU) comes first.
pub fn decoder_layers(image: Shape, width: usize, hidden: usize) -> Vec<LayerSpec> {
    let mut stages = 2;
    while image.h.max(image.w).div_ceil(1 << stages) > DECODER_MAX_START && stages < 8 {
        stages += 1;
    }
    let (h0, w0) = (image.h.div_ceil(1 << stages), image.w.div_ceil(1 << stages));
    let start_c = width << (stages - 1);
    let mut l = Vec::new();
    if hidden > 0 {
        l.extend([Linear { out: hidden }, BatchNorm, Relu]);
    }
    l.extend([Linear { out: start_c * h0 * w0 }, BatchNorm, Relu, Reshape { h: h0, w: w0, c: start_c }]);
    for s in 1..stages {
        l.extend([ConvT { cout: start_c >> s, k: 4, stride: 2, pad: 1 }, BatchNorm, Relu]);
    }
    l.push(ConvT { cout: image.c, k: 4, stride: 2, pad: 1 });
    let (ph, pw) = (h0 << stages, w0 << stages);
    if (ph, pw) != (image.h, image.w) {
        l.push(Crop { top: (ph - image.h) / 2, left: (pw - image.w) / 2, h: image.h, w: image.w });
    }
    l.push(Sigmoid);
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Network;

    #[test]
    fn the_mnist_decoder_is_the_papers() {
        let w = 64;
        let want = vec![
            Linear { out: 2 * w * 7 * 7 },
            BatchNorm,
            Relu,
            Reshape { h: 7, w: 7, c: 2 * w },
            ConvT { cout: w, k: 4, stride: 2, pad: 1 },
            BatchNorm,
            Relu,
            ConvT { cout: 1, k: 4, stride: 2, pad: 1 },
            Sigmoid,
        ];
        assert_eq!(Arch::Decoder.layers(Shape::new(28, 28, 1), 0, w), want);
    }

    #[test]
    fn a_training_step_counts_three_passes_less_the_first_input_gradient() {
        // the bench's decoder: 200 inputs -> 7x7x128 -> 14x14x64 -> 28x28x1
        let mnist = Shape::new(28, 28, 1);
        let dec = Network::new(Shape::flat(200), Arch::Decoder.layers(mnist, 0, 64), 1).unwrap();
        let (linear, convt1, convt2) = (200 * 6272, 49 * 128 * 16 * 64, 196 * 64 * 16);
        assert_eq!(dec.macs(), linear + convt1 + convt2);
        // the first transposed convolution as Winograd's phases perform it: per phase, one
        // 8x8-point tile of 7x7 outputs (F(7, 2)) whose products are 64 GEMM rows
        let wino = crate::kernels::WinogradConvT::new(7, 7, 128, 64, 4, 2, 1).unwrap();
        let products = 2 * 4 * 64 * 128 * 64;
        assert!(wino.forward_flops() > products && wino.forward_flops() < products * 5 / 4);
        // backward: the same transforms (adjoints) and two products, one without the input's
        assert_eq!(wino.backward_flops(false), wino.forward_flops() + products);
        assert!(wino.backward_flops(true) < wino.forward_flops());
        assert_eq!(dec.infer_flops(), 2 * linear + wino.forward_flops() + 2 * convt2);
        assert_eq!(dec.train_flops(), dec.infer_flops() + 2 * linear + wino.backward_flops(false) + 4 * convt2);
        // TargetNet-S: its first convolution's input gradient is never made
        let tn = Network::new(mnist, Arch::TargetNetS.layers(mnist, 10, 0), 1).unwrap();
        let conv1 = 24 * 24 * 16 * 25;
        assert_eq!(tn.macs(), conv1 + 8 * 8 * 32 * 400 + 512 * 128 + 128 * 10);
        // inference as performed: the second convolution by Winograd's F(2x2, 5x5) where this
        // build has it (16 tiles of 36 products per channel pair, 12 input transforms of 22
        // operations per input channel, 8 output transforms of 9 per output channel)
        let conv2 = if crate::kernels::WinogradConv::applies(5, 16, 32) {
            16 * (2 * 36 * 16 * 32 + 12 * 22 * 16 + 8 * 9 * 32)
        } else {
            2 * 8 * 8 * 32 * 400
        };
        assert_eq!(tn.infer_flops(), 2 * conv1 + conv2 + 2 * (512 * 128 + 128 * 10));
        assert_eq!(tn.train_flops(), tn.infer_flops() + 2 * (2 * tn.macs() - conv1));
    }

    #[test]
    fn a_hidden_layer_goes_between_the_features_and_the_projection() {
        let image = Shape::new(32, 32, 3);
        let plain = decoder_layers(image, 8, 0);
        let deep = decoder_layers(image, 8, 40);
        assert_eq!(&deep[..3], &[Linear { out: 40 }, BatchNorm, Relu]);
        assert_eq!(&deep[3..], &plain[..]);
        let net = Network::new(Shape::flat(10), deep, 1).unwrap();
        assert_eq!(net.output_shape(), image);
        assert_eq!(net.shape_before(3), Shape::flat(40));
    }

    #[test]
    fn decoders_paint_every_image_shape() {
        for (h, w, c, stages) in [(28, 28, 1, 2), (32, 32, 3, 2), (30, 26, 1, 2), (64, 64, 3, 3), (9, 5, 3, 2)] {
            let image = Shape::new(h, w, c);
            let specs = Arch::Decoder.layers(image, 0, 4);
            let convt = specs.iter().filter(|s| matches!(s, ConvT { .. })).count();
            assert_eq!(convt, stages, "{h}x{w}x{c}");
            let net = Network::new(Shape::flat(10), specs, 1).unwrap();
            assert_eq!(net.output_shape(), image);
        }
    }

    #[test]
    fn classifiers_take_every_plausible_image_shape() {
        for (h, w, c) in [(28, 28, 1), (32, 32, 3), (30, 26, 1), (64, 64, 3), (96, 80, 1)] {
            let image = Shape::new(h, w, c);
            for arch in [Arch::TargetNetS, Arch::EvalNet] {
                let net = Network::new(image, arch.layers(image, 7, 0), 1).unwrap();
                assert_eq!(net.out_len(), 7);
                let dense = net.specs.iter().position(|s| matches!(s, Linear { .. })).unwrap();
                assert!(net.shape_before(dense).len() <= 64 * 32, "{h}x{w}x{c} {}", arch.name());
            }
        }
        // MNIST: no extra pools, so the networks are the paper's
        let mnist = Shape::new(28, 28, 1);
        assert_eq!(Arch::TargetNetS.layers(mnist, 10, 0).len(), 9);
        assert_eq!(Arch::EvalNet.layers(mnist, 10, 0).len(), 9);
    }
}
