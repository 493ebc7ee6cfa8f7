//! The table of data sets we know how to fetch and verify.

use md5::{Digest, Md5};
use std::path::Path;

use crate::cifar::CifarKind;
use crate::error::{DataError, Result};

/// A published data set: where to fetch it and how to recognise the genuine files.
#[derive(Debug)]
pub struct KnownDataset {
    /// Canonical short name, used as the directory name under every search root.
    pub name: &'static str,
    /// Base URLs tried in order; a file's URL is the base plus its name.
    pub mirrors: &'static [&'static str],
    /// What the publisher serves.
    pub published: Published,
}

/// The form a [`KnownDataset`] is published in.
#[derive(Debug)]
pub enum Published {
    /// Four IDX files: train images, train labels, test images, test labels (in this order),
    /// each verified by the MD5 of its decompressed content.
    Idx([KnownFile; 4]),
    /// One `.tar.gz` of CIFAR binary batches, verified by the MD5 of the archive as published
    /// (the digest the publisher lists, as torchvision checks it) before it is unpacked.
    CifarArchive {
        /// The archive.
        archive: KnownArchive,
        /// Which CIFAR it holds.
        kind: CifarKind,
    },
}

/// A published archive: its file name and the MD5 of its bytes.
#[derive(Debug)]
pub struct KnownArchive {
    /// Name as published, e.g. `cifar-10-binary.tar.gz`.
    pub name: &'static str,
    /// MD5 of the archive file itself.
    pub md5: &'static str,
}

/// One file of a [`KnownDataset`].
#[derive(Debug)]
pub struct KnownFile {
    /// Name as published, e.g. `train-images-idx3-ubyte.gz`.
    pub name: &'static str,
    /// MD5 of the *decompressed* file: re-compressing changes the `.gz`
    /// bytes but not this, so it identifies the data wherever it came from.
    pub md5_uncompressed: &'static str,
}

/// The data sets [`known`] recognises.
pub static KNOWN_DATASETS: [KnownDataset; 4] = [
    KnownDataset {
        name: "mnist",
        mirrors: &[
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ],
        published: Published::Idx([
            KnownFile { name: "train-images-idx3-ubyte.gz", md5_uncompressed: "6bbc9ace898e44ae57da46a324031adb" },
            KnownFile { name: "train-labels-idx1-ubyte.gz", md5_uncompressed: "a25bea736e30d166cdddb491f175f624" },
            KnownFile { name: "t10k-images-idx3-ubyte.gz", md5_uncompressed: "2646ac647ad5339dbf082846283269ea" },
            KnownFile { name: "t10k-labels-idx1-ubyte.gz", md5_uncompressed: "27ae3e4e09519cfbb04c329615203637" },
        ]),
    },
    KnownDataset {
        name: "fashion-mnist",
        mirrors: &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        published: Published::Idx([
            KnownFile { name: "train-images-idx3-ubyte.gz", md5_uncompressed: "f4a8712d7a061bf5bd6d2ca38dc4d50a" },
            KnownFile { name: "train-labels-idx1-ubyte.gz", md5_uncompressed: "9018921c3c673c538a1fc5bad174d6f9" },
            KnownFile { name: "t10k-images-idx3-ubyte.gz", md5_uncompressed: "8181f5470baa50b63fa0f6fddb340f0a" },
            KnownFile { name: "t10k-labels-idx1-ubyte.gz", md5_uncompressed: "15d484375f8d13e6eb1aabb0c3f46965" },
        ]),
    },
    // The MD5s are the ones listed on https://www.cs.toronto.edu/~kriz/cifar.html for the
    // binary versions.
    KnownDataset {
        name: "cifar10",
        mirrors: &["https://www.cs.toronto.edu/~kriz/"],
        published: Published::CifarArchive {
            archive: KnownArchive { name: "cifar-10-binary.tar.gz", md5: "c32a1d4ab5d03f1284b67883e8d87530" },
            kind: CifarKind::Cifar10,
        },
    },
    KnownDataset {
        name: "cifar100",
        mirrors: &["https://www.cs.toronto.edu/~kriz/"],
        published: Published::CifarArchive {
            archive: KnownArchive { name: "cifar-100-binary.tar.gz", md5: "03b5dce01913d631647c71ecec9e9cb8" },
            kind: CifarKind::Cifar100,
        },
    },
];

/// Looks a data set up by its canonical name (`"mnist"`, `"fashion-mnist"`, `"cifar10"`,
/// `"cifar100"`).
pub fn known(name: &str) -> Option<&'static KnownDataset> {
    KNOWN_DATASETS.iter().find(|d| d.name == name)
}

/// Known names, comma-separated, for error messages and `--help` text.
pub fn known_names() -> String {
    KNOWN_DATASETS.iter().map(|d| d.name).collect::<Vec<_>>().join(", ")
}

impl KnownDataset {
    /// The four IDX files, for a set published as IDX files.
    pub fn idx_files(&self) -> Option<&[KnownFile; 4]> {
        match &self.published {
            Published::Idx(files) => Some(files),
            Published::CifarArchive { .. } => None,
        }
    }

    /// The entry for an IDX file, matched with or without its `.gz` suffix so an
    /// uncompressed copy is verified against the same digest.
    pub fn file(&self, file_name: &str) -> Option<&KnownFile> {
        let stem = file_name.strip_suffix(".gz").unwrap_or(file_name);
        self.idx_files()?.iter().find(|f| f.name.strip_suffix(".gz").unwrap_or(f.name) == stem)
    }
}

/// Lower-case hex MD5 of `bytes`.
pub fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks decompressed `bytes` (read from `path`) against a published digest.
pub fn verify_md5(bytes: &[u8], expected: &str, path: &Path) -> Result<()> {
    let actual = md5_hex(bytes);
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(DataError::Checksum { path: path.to_path_buf(), expected: expected.to_string(), actual })
    }
}
