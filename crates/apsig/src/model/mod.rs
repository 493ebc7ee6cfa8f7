//! Target and evaluator classifiers: architectures, the `Classifier` seam, files, training,
//! and classifiers the user supplies.

mod arch;
mod classifier;
mod file;
mod supplied;
mod train;

pub use arch::{decoder_layers, Arch};
pub use classifier::Classifier;
pub use file::{load_network, network_from, save_network, ModelFile};
pub use supplied::SuppliedModel;
pub use train::{accuracy, correct_each, train, ClassGuide, Targets, TrainConfig, TrainReport};
