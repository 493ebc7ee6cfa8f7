//! Classifiers the user brings (an ONNX export, say) for the role of the target M or of the
//! independent evaluator, with what identifies them in reports and reuse checks.

use super::{network_from, Arch, Classifier};
use crate::error::{Error, Result};
use crate::io::{sha256_hex, TensorFile};
use crate::nn::Shape;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A classifier loaded from a file apsig did not write.
#[derive(Clone)]
pub struct SuppliedModel {
    /// The model, behind the one seam every stage uses.
    pub classifier: Arc<dyn Classifier>,
    /// The file it was loaded from.
    pub file: PathBuf,
    /// SHA-256 of the file's bytes (hex).
    pub sha256: String,
    /// What the file is and how its input is laid out, e.g. `ONNX, NCHW [N,3,32,32] input`.
    pub description: String,
}

impl std::fmt::Debug for SuppliedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuppliedModel")
            .field("file", &self.file)
            .field("sha256", &self.sha256)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl SuppliedModel {
    /// An apsig model file (safetensors) of architecture `arch`, as a supplied model: the form
    /// every role takes whether apsig or the user trained it.
    pub fn from_apsig_file(path: &Path, arch: Arch) -> Result<SuppliedModel> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let sha256 = sha256_hex(&bytes);
        let m = network_from(&TensorFile::parse(path, bytes)?, Some(arch))?;
        Ok(SuppliedModel {
            classifier: Arc::new(m.net),
            file: path.to_path_buf(),
            sha256,
            description: format!("apsig {} (safetensors)", arch.name()),
        })
    }

    /// Refuses a model that cannot play `role` on images of `shape` with labels `0..classes`:
    /// one line naming the file.
    pub fn check_fits(&self, role: &str, shape: Shape, classes: usize) -> Result<()> {
        let m = self.classifier.input_shape();
        if m != shape {
            return Err(Error::bad_file(
                &self.file,
                format!(
                    "the {role} takes {}x{}x{} images ({}), but the data set's images are {}x{}x{} (HxWxC)",
                    m.h, m.w, m.c, self.description, shape.h, shape.w, shape.c
                ),
            ));
        }
        let outputs = self.classifier.num_classes();
        if outputs < classes {
            return Err(Error::bad_file(
                &self.file,
                format!(
                    "the {role} has {outputs} outputs, but the data set has {classes} classes (labels 0..{})",
                    classes - 1
                ),
            ));
        }
        Ok(())
    }
}
