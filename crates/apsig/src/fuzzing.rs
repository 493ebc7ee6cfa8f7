//! Entry points for the fuzz targets in `fuzz/` and for their corpus regression test: each
//! feeds arbitrary bytes to a loader, which must return a value or an error, never panic.

use std::path::Path;

/// The IDX reader (gzip or raw), as images and as labels.
pub fn idx(data: &[u8]) {
    let p = Path::new("fuzz.idx");
    if let Ok(bytes) = apsig_data::inflate_maybe_gz(data.to_vec(), p) {
        let _ = apsig_data::parse_idx_images(&bytes, p);
        let _ = apsig_data::parse_idx_labels(&bytes, p);
    }
}

/// The model loader.
pub fn model(data: &[u8]) {
    if let Ok(f) = crate::io::TensorFile::parse(Path::new("fuzz.safetensors"), data.to_vec()) {
        if let Ok(m) = crate::model::network_from(&f, None) {
            // a model that loads must also run
            let n = 1;
            let x = vec![0.5f32; m.net.in_len() * n];
            let _ = m.net.forward(&x, n);
        }
    }
}

/// The signature-file loader.
pub fn signatures(data: &[u8]) {
    if let Ok(f) = crate::io::TensorFile::parse(Path::new("fuzz.safetensors"), data.to_vec()) {
        if let Ok(s) = crate::signature::SignatureSet::from_file(&f) {
            let _ = s.queries_per_eps();
            let _ = (0..s.n()).map(|i| s.row(i).len()).sum::<usize>();
        }
    }
}
