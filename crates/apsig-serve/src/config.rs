//! `ServeConfig`: what `apsig serve` reads from its TOML file and flags.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Server configuration. Every field has a default except `model`; a TOML file may set any
/// subset of them, and command-line flags override the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// The target model M (a TargetNet-S safetensors file).
    pub model: PathBuf,
    /// Address to listen on.
    pub listen: String,
    /// Queries (perturbations answered) allowed per session over its lifetime.
    pub budget: u64,
    /// Queries per second per session (token bucket, burst = rate); 0 = unlimited.
    pub rate: f64,
    /// Largest request body accepted, in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Sessions held at once (more registrations: 503).
    pub max_sessions: usize,
    /// Direction sets one session may register.
    pub max_direction_sets: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            model: PathBuf::new(),
            listen: "127.0.0.1:8750".into(),
            budget: 1_000_000,
            rate: 0.0,
            max_body_bytes: 16 << 20,
            max_sessions: 1024,
            max_direction_sets: 4,
        }
    }
}

impl ServeConfig {
    /// Reads a TOML file (unknown keys are refused, missing keys take their defaults).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn validate(&self) -> Result<()> {
        if self.model.as_os_str().is_empty() {
            bail!("no model given (--model or `model = \"...\"` in the config file)");
        }
        if !(self.rate.is_finite() && self.rate >= 0.0) {
            bail!("rate must be a finite number >= 0 (0 = unlimited), got {}", self.rate);
        }
        if self.max_body_bytes < 1024 {
            bail!("max_body_bytes = {} is too small to hold any request", self.max_body_bytes);
        }
        if self.max_sessions == 0 || self.max_direction_sets == 0 {
            bail!("max_sessions and max_direction_sets must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_settings_take_defaults_and_refuse_unknown_keys() {
        let c: ServeConfig = toml::from_str("model = \"m.safetensors\"\nbudget = 7\nrate = 2.5\n").unwrap();
        assert_eq!(c.model, PathBuf::from("m.safetensors"));
        assert_eq!((c.budget, c.rate), (7, 2.5));
        assert_eq!(c.listen, ServeConfig::default().listen);
        c.validate().unwrap();
        assert!(toml::from_str::<ServeConfig>("modle = \"typo\"").is_err());
        assert!(ServeConfig::default().validate().is_err(), "no model");
        assert!(ServeConfig { rate: -1.0, ..c }.validate().is_err());
    }
}
