//! Compute kernels, kept apart from the code that decides what to compute.
//!
//! Everything here works on plain `f32` slices in row-major order. Convolutions use the
//! channels-last (NHWC) layout, so that a batch of convolutions is one tall GEMM
//! (`rows = batch * out_h * out_w`) where nothing better applies. Valid stride-1 convolutions
//! have their own kernels, which read patches in place: the direct 6x16 kernel
//! (`direct_conv`), Winograd's F(2x2, 5x5) (`winograd`) and the weight gradient
//! (`conv_weight_grad`). The decoder's 4x4 stride-2 transposed convolutions have Winograd's
//! F(m, 2) per output phase, in all three passes (`winograd_convt`).

mod conv;
mod conv_weight_grad;
mod direct_conv;
mod gemm;
mod winograd;
mod winograd_convt;

pub use conv::{axpy_maxpool2, col2im_nhwc, im2col_nhwc, maxpool2_nhwc, maxpool2_nhwc_infer, ConvGeom};
pub use conv_weight_grad::{conv_weight_grad, conv_weight_grad_applies};
pub use direct_conv::{has_avx512, PackedConv};
pub use gemm::{matmul, matmul_strided, Threads, Trans};
pub use winograd::WinogradConv;
pub use winograd_convt::WinogradConvT;
