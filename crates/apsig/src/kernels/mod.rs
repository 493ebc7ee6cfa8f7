//! Compute kernels, kept apart from the code that decides what to compute.
//!
//! Everything here works on plain `f32` slices in row-major order. Convolutions use the
//! channels-last (NHWC) layout so that a whole batch of convolutions is one tall GEMM
//! (`rows = batch * out_h * out_w`), which is where the FLOP/s are on this small CNN.

mod conv;
mod conv_weight_grad;
mod direct_conv;
mod gemm;
mod winograd;

pub use conv::{axpy_maxpool2, col2im_nhwc, im2col_nhwc, maxpool2_nhwc, maxpool2_nhwc_infer, ConvGeom};
pub use conv_weight_grad::{conv_weight_grad, conv_weight_grad_applies};
pub use direct_conv::{has_avx512, PackedConv};
pub use gemm::{matmul, Threads, Trans};
pub use winograd::WinogradConv;
