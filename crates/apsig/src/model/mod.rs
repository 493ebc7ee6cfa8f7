//! Target and evaluator classifiers: architectures, the `Classifier` seam, files, training.

mod arch;
mod classifier;
mod file;
mod train;

pub use arch::{decoder_layers, Arch};
pub use classifier::Classifier;
pub use file::{load_network, network_from, save_network, ModelFile};
pub use train::{accuracy, train, Targets, TrainConfig, TrainReport};
