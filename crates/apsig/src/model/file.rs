//! Model files: safetensors with the architecture in the metadata, checked on load.

use super::Arch;
use crate::error::{Error, Result};
use crate::io::{write_tensors, TensorFile, TensorOut};
use crate::nn::{LayerSpec, Network, Shape};
use std::collections::BTreeMap;
use std::path::Path;

/// A loaded model and the metadata it was saved with (data set, seed, accuracy, ...).
pub struct ModelFile {
    /// Its architecture.
    pub arch: Arch,
    /// The network with its weights.
    pub net: Network,
    /// Everything else the file says (data set, seed, config...).
    pub metadata: BTreeMap<String, String>,
}

/// Saves `net` atomically with its architecture and the caller's metadata.
pub fn save_network(path: &Path, arch: Arch, net: &Network, extra: &BTreeMap<String, String>) -> Result<()> {
    let mut meta = extra.clone();
    meta.insert("format".into(), "apsig-model-v1".into());
    meta.insert("architecture".into(), arch.name().into());
    meta.insert("input".into(), serde_json::to_string(&net.input).expect("shape serialises"));
    meta.insert("layers".into(), serde_json::to_string(&net.specs).expect("specs serialise"));
    let named = net.named_tensors();
    let tensors: Vec<TensorOut> = named.iter().map(|(n, s, d)| TensorOut::F32(n, s.clone(), d)).collect();
    write_tensors(path, &tensors, &meta)
}

/// Loads a model file; with `expect`, refuses a file of another architecture.
pub fn load_network(path: &Path, expect: Option<Arch>) -> Result<ModelFile> {
    network_from(&TensorFile::read(path)?, expect)
}

/// Builds a model from an already-read tensor file, validating everything (fuzzed).
pub fn network_from(f: &TensorFile, expect: Option<Arch>) -> Result<ModelFile> {
    let path = f.path.as_path();
    if f.meta("format")? != "apsig-model-v1" {
        return Err(Error::bad_file(path, format!("not an apsig model file (format `{}`)", f.meta("format")?)));
    }
    // files carry `Arch::name()` (what `save_network` writes), not the serde spelling
    let name = f.meta("architecture")?;
    let arch = [Arch::TargetNetS, Arch::EvalNet, Arch::Decoder]
        .into_iter()
        .find(|a| a.name() == name)
        .ok_or_else(|| Error::bad_file(path, format!("unknown architecture `{name}`")))?;
    if let Some(want) = expect {
        if want != arch {
            return Err(Error::bad_file(
                path,
                format!("model architecture is {}, expected {}", arch.name(), want.name()),
            ));
        }
    }
    let input: Shape = serde_json::from_str(f.meta("input")?)
        .map_err(|e| Error::bad_file(path, format!("bad `input` metadata: {e}")))?;
    let specs: Vec<LayerSpec> = serde_json::from_str(f.meta("layers")?)
        .map_err(|e| Error::bad_file(path, format!("bad `layers` metadata: {e}")))?;
    let mut net =
        Network::new(input, specs, 0).map_err(|e| Error::bad_file(path, format!("inconsistent layers: {e}")))?;
    if net.num_params() > 1 << 28 {
        return Err(Error::bad_file(path, "implausibly many parameters"));
    }
    let wanted: Vec<(String, Vec<usize>)> = net.named_tensors().into_iter().map(|(n, s, _)| (n, s)).collect();
    for (name, shape) in wanted {
        let (_, data) = f.f32(&name, Some(&shape))?;
        *net.tensor_mut(&name).expect("name from named_tensors") = data;
    }
    Ok(ModelFile { arch, net, metadata: f.metadata.clone() })
}
