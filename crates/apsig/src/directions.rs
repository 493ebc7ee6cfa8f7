//! Perturbation directions: K seeded tensors of the input's shape, each of unit L2 norm.

use crate::error::{Error, Result};
use crate::io::{write_tensors, TensorFile, TensorOut};
use crate::nn::Shape;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// How directions are drawn. Data-dependent strategies see only the adversary's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// i.i.d. standard normal per pixel (the paper's).
    Gaussian,
    /// i.i.d. +-1 per pixel.
    Rademacher,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectionConfig {
    pub strategy: Strategy,
    pub k: usize,
    pub seed: u64,
}

/// K unit-norm directions, row-major `[k, shape.len()]`.
#[derive(Clone, Debug)]
pub struct Directions {
    pub config: DirectionConfig,
    pub shape: Shape,
    pub data: Vec<f32>,
}

impl Directions {
    pub fn generate(config: &DirectionConfig, shape: Shape) -> Result<Self> {
        if config.k == 0 || config.k > 100_000 {
            return Err(Error::invalid("directions", format!("K = {} (must be 1..=100000)", config.k)));
        }
        let len = shape.len();
        let mut rng = Rng::derive(config.seed, "directions");
        let mut data = Vec::with_capacity(config.k * len);
        for _ in 0..config.k {
            let mut d: Vec<f32> = match config.strategy {
                Strategy::Gaussian => (0..len).map(|_| rng.normal()).collect(),
                Strategy::Rademacher => (0..len).map(|_| if rng.next_u64() >> 63 == 0 { 1.0 } else { -1.0 }).collect(),
            };
            normalise(&mut d);
            data.extend(d);
        }
        Ok(Directions { config: config.clone(), shape, data })
    }

    pub fn k(&self) -> usize {
        self.config.k
    }
    pub fn len(&self) -> usize {
        self.shape.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn get(&self, i: usize) -> &[f32] {
        &self.data[i * self.len()..(i + 1) * self.len()]
    }

    /// A content hash: signatures record it and loaders compare it, so signatures can never
    /// be decoded against directions they were not measured with.
    pub fn fingerprint(&self) -> String {
        crate::io::fingerprint_f32(&self.data)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut meta = BTreeMap::new();
        meta.insert("format".into(), "apsig-directions-v1".into());
        meta.insert("config".into(), serde_json::to_string(&self.config).expect("config serialises"));
        meta.insert("shape".into(), serde_json::to_string(&self.shape).expect("shape serialises"));
        meta.insert("fingerprint".into(), self.fingerprint());
        write_tensors(path, &[TensorOut::F32("directions", vec![self.k(), self.len()], &self.data)], &meta)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let f = TensorFile::read(path)?;
        if f.meta("format")? != "apsig-directions-v1" {
            return Err(Error::bad_file(path, "not an apsig directions file"));
        }
        let config: DirectionConfig = serde_json::from_str(f.meta("config")?)
            .map_err(|e| Error::bad_file(path, format!("bad config metadata: {e}")))?;
        let shape: Shape = serde_json::from_str(f.meta("shape")?)
            .map_err(|e| Error::bad_file(path, format!("bad shape metadata: {e}")))?;
        let (_, data) = f.f32("directions", Some(&[config.k, shape.len()]))?;
        let d = Directions { config, shape, data };
        if d.fingerprint() != f.meta("fingerprint")? {
            return Err(Error::bad_file(path, "directions do not match their recorded fingerprint (file corrupted?)"));
        }
        Ok(d)
    }
}

fn normalise(d: &mut [f32]) {
    let norm = d.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>().sqrt() as f32;
    if norm > 0.0 {
        d.iter_mut().for_each(|v| *v /= norm);
    }
}
