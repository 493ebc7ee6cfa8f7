//! Data sets for apsig: finding, downloading, verifying and parsing the IDX
//! files of MNIST-style image classification sets.
//!
//! Entry point is [`load`]; everything else is exposed so the CLI can
//! explain what it did (search paths, known sets) and fuzzers can reach the
//! parsers directly.
#![warn(missing_docs)]

mod dataset;
mod download;
mod error;
mod idx;
mod known;
mod locate;

pub use dataset::{load, load_dir, Dataset, Split, MAX_LABEL_EXCLUSIVE};
pub use download::download;
pub use error::{DataError, Result};
pub use idx::{
    inflate_maybe_gz, parse_idx_images, parse_idx_labels, read_idx_images, read_idx_labels, read_maybe_gz,
    IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, MAX_PAYLOAD_BYTES,
};
pub use known::{known, known_names, md5_hex, verify_md5, KnownDataset, KnownFile, KNOWN_DATASETS};
pub use locate::{
    default_cache_dir, find_file, is_complete, locate, search_dirs, DataOptions, DATA_DIR_ENV, SYSTEM_DATA_DIR,
    TEST_FILES, TRAIN_FILES,
};
