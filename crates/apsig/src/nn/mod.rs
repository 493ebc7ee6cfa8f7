//! A small, explicit neural-network engine: sequential layers on channels-last tensors with
//! hand-written backward passes. It exists because the workload is one tiny CNN queried
//! millions of times; general frameworks spend most of their time on dispatch here
//! (see the performance section of the README for the measurements that led to this).

mod kernel_cache;
mod layer;
mod loss;
mod network;
mod optim;
mod training;

pub use layer::{LayerSpec, Shape};
pub use loss::{mse, softmax_cross_entropy, softmax_rows, PixelLoss};
pub use network::Network;
pub use optim::Adam;
pub use training::TrainCache;
