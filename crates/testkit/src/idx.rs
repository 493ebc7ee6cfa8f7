//! Tiny IDX files (the MNIST format) for tests, plain or gzipped.

use std::io::Write;
use std::path::Path;

/// The IDX magic of `u8` images (rank 3).
pub const IMAGES_MAGIC: u32 = 0x803;
/// The IDX magic of `u8` labels (rank 1).
pub const LABELS_MAGIC: u32 = 0x801;

/// An IDX images file of `n` images `rows x cols` with pseudo-random pixels (so gzip output
/// has real entropy to corrupt).
pub fn images(n: u32, rows: u32, cols: u32) -> Vec<u8> {
    images_with_magic(IMAGES_MAGIC, n, rows, cols)
}

/// As [`images`], with any magic number in the header (to test rejection).
pub fn images_with_magic(magic: u32, n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [magic, n, rows, cols] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    let mut s = 0x2545_f491_u32;
    v.extend((0..n * rows * cols).map(|_| {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        (s >> 24) as u8
    }));
    v
}

/// An IDX labels file holding `labels`.
pub fn labels(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

/// `n` labels cycling through `0..classes`.
pub fn cycling(n: usize, classes: u8) -> Vec<u8> {
    (0..n).map(|i| (i % classes as usize) as u8).collect()
}

/// `bytes` gzipped.
pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The four files of a data-set directory, `(name, bytes)`: `train` and `test` images of
/// `side x side` with labels cycling through `classes`; names end in `.gz` when `gzip`.
pub fn set_files(train: u32, test: u32, side: u32, classes: u8, gzip: bool) -> Vec<(String, Vec<u8>)> {
    let files = [
        ("train-images-idx3-ubyte", images(train, side, side)),
        ("train-labels-idx1-ubyte", labels(&cycling(train as usize, classes))),
        ("t10k-images-idx3-ubyte", images(test, side, side)),
        ("t10k-labels-idx1-ubyte", labels(&cycling(test as usize, classes))),
    ];
    files
        .into_iter()
        .map(|(name, bytes)| if gzip { (format!("{name}.gz"), gz(&bytes)) } else { (name.to_string(), bytes) })
        .collect()
}

/// Writes [`set_files`] into `dir` (created if needed).
pub fn write_set(dir: &Path, train: u32, test: u32, side: u32, classes: u8, gzip: bool) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in set_files(train, test, side, classes, gzip) {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_sizes() {
        let im = images(3, 4, 5);
        assert_eq!(&im[..4], &IMAGES_MAGIC.to_be_bytes());
        assert_eq!(im.len(), 16 + 60);
        let l = labels(&cycling(7, 3));
        assert_eq!(&l[4..8], &7u32.to_be_bytes());
        assert_eq!(&l[8..], &[0, 1, 2, 0, 1, 2, 0]);
        let packed = gz(&im);
        let mut d = flate2::read::GzDecoder::new(&packed[..]);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut back).unwrap();
        assert_eq!(back, im);
    }
}
