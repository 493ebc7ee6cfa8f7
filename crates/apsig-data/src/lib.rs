//! Data sets for apsig: finding, downloading, verifying and parsing image classification
//! sets: IDX files (MNIST), NumPy `.npz` archives, image-folder trees, CIFAR binary batches,
//! and the colour benchmarks generated from grey sets.
//!
//! Entry point is [`load`]; everything else is exposed so the CLI can
//! explain what it did (search paths, known sets) and fuzzers can reach the
//! parsers directly.
#![warn(missing_docs)]

mod cifar;
pub mod colour;
mod dataset;
mod download;
mod error;
mod folder;
mod idx;
mod known;
mod layout;
mod locate;
mod npy;
mod npz;
mod split;

pub use cifar::{parse_cifar_records, CifarKind};
pub use dataset::{load, load_dir};
pub use download::download;
pub use error::{DataError, Result};
pub use idx::{
    inflate_maybe_gz, parse_idx_images, parse_idx_labels, read_idx_images, read_idx_labels, read_maybe_gz,
    IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, MAX_PAYLOAD_BYTES,
};
pub use known::{
    known, known_names, md5_hex, verify_md5, KnownArchive, KnownDataset, KnownFile, Published, KNOWN_DATASETS,
};
pub use layout::{interleaved_to_planar, planar_to_interleaved};
pub use locate::{
    default_cache_dir, find_file, is_complete, locate, search_dirs, DataOptions, DATA_DIR_ENV, SYSTEM_DATA_DIR,
    TEST_FILES, TRAIN_FILES,
};
pub use npy::{Dtype, NpyArray};
pub use npz::{read_npz_array, write_npz, Layout, NPZ_KEYS};
pub use split::{Dataset, Split, MAX_LABEL_EXCLUSIVE};
