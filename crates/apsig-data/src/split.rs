//! The in-memory data set: splits of images in [0, 1] with their labels.

use std::fmt;
use std::path::PathBuf;

/// Labels at or above this are rejected: no classification set we load has
/// that many classes, so such a value means a wrong or corrupt file.
pub const MAX_LABEL_EXCLUSIVE: u8 = 100;

/// One split of a data set, with pixels already scaled to `[0, 1]` so every
/// consumer sees the same normalisation.
#[derive(Clone, PartialEq)]
pub struct Split {
    /// `n * rows * cols * channels` values, each byte / 255, image after image, row-major and
    /// channels-last (HWC, the layout of the networks), so a grey image is `rows * cols` values.
    pub images: Vec<f32>,
    /// One label per image.
    pub labels: Vec<u8>,
    /// Number of images.
    pub n: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// Channels per pixel: 1 (grey) or 3 (RGB).
    pub channels: usize,
}

impl Split {
    /// Builds a split from raw HWC bytes, doing the `/255` scaling once here.
    pub fn from_bytes(pixels: &[u8], labels: Vec<u8>, rows: usize, cols: usize, channels: usize) -> Split {
        let images = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
        Split { images, n: labels.len(), labels, rows, cols, channels }
    }

    /// Pixels of image `i`; panics if `i >= n`, like slice indexing.
    pub fn image(&self, i: usize) -> &[f32] {
        let p = self.pixels();
        &self.images[i * p..(i + 1) * p]
    }

    /// Values per image (`rows * cols * channels`), the input width of a classifier.
    pub fn pixels(&self) -> usize {
        self.rows * self.cols * self.channels
    }

    /// A new split holding copies of the chosen images, in the given order
    /// (repeats allowed); panics on an out-of-range index.
    pub fn subset(&self, indices: &[usize]) -> Split {
        let mut images = Vec::with_capacity(indices.len() * self.pixels());
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Split { images, labels, n: indices.len(), rows: self.rows, cols: self.cols, channels: self.channels }
    }

    /// Largest label plus one (0 for an empty split); the label encoding
    /// is dense from 0, so this is the classifier's output width.
    pub fn num_classes(&self) -> usize {
        self.labels.iter().max().map_or(0, |&m| usize::from(m) + 1)
    }
}

impl fmt::Debug for Split {
    // Printing 47 million floats helps nobody; show the shape instead.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Split")
            .field("n", &self.n)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("channels", &self.channels)
            .field("num_classes", &self.num_classes())
            .finish_non_exhaustive()
    }
}

/// A loaded data set; `dir` and `source` are kept so reports can say which copy was used and
/// how it was read.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Canonical name for known sets, else the directory's (or `.npz` file's) name.
    pub name: String,
    /// Directory (or `.npz` file) the data was read from.
    pub dir: PathBuf,
    /// Training split.
    pub train: Split,
    /// Test split.
    pub test: Split,
    /// How the data was read, one line for reports: the format and, for `.npz`, the pixel
    /// dtype and detected layout (e.g. `NumPy .npz, uint8 0-255 NCHW, converted to HWC`).
    pub source: String,
    /// Class names indexed by label, where the format has them (image folders, CIFAR's
    /// metadata files); empty otherwise.
    pub classes: Vec<String>,
}
