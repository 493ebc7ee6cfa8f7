//! `ServeConfig`: what `apsig serve` reads from its TOML file and flags.

use crate::error::{Result, ServeError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Server configuration. Every field has a default except `model`; a TOML file may set any
/// subset of them, and command-line flags override the file. Durations are in seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// The target model M: a TargetNet-S safetensors file or any ONNX classifier (`.onnx`).
    pub model: PathBuf,
    /// Address to listen on.
    pub listen: String,
    /// Queries (perturbations answered) allowed per session over its lifetime.
    pub budget: u64,
    /// Queries per second per session (token bucket, burst = rate); 0 = unlimited.
    pub rate: f64,
    /// Largest request body accepted, in bytes (larger: 413, refused before it is read).
    pub max_body_bytes: usize,
    /// Sessions held at once (more registrations: 503).
    pub max_sessions: usize,
    /// Sessions one client address may hold at once (more registrations: 429).
    pub max_sessions_per_client: usize,
    /// A session unused for this long ends.
    pub session_idle_secs: u64,
    /// A session ends this long after its registration, used or not.
    pub session_lifetime_secs: u64,
    /// Direction sets one session may register.
    pub max_direction_sets: usize,
    /// Largest direction set, in values (K x input size).
    pub max_direction_values: usize,
    /// Memory one session's direction sets may hold (directions plus their lifted copies).
    pub max_session_bytes: usize,
    /// Memory all sessions' direction sets and all request bodies being read may hold.
    pub max_total_bytes: usize,
    /// Answers one request may ask for (perturbations or probes).
    pub max_batch: usize,
    /// Largest absolute value of an input, perturbation, direction or eps: larger values
    /// would overflow inside the network and are refused.
    pub max_abs_value: f32,
    /// Time a client has to send a request's headers (also the keep-alive idle timeout and
    /// the TLS handshake timeout).
    pub header_timeout_secs: f64,
    /// Time a client has to send a request's body once its headers arrived.
    pub body_timeout_secs: f64,
    /// Connections served at once; more are closed on accept.
    pub max_connections: usize,
    /// On SIGTERM or ctrl-c, requests in flight get this long before the server exits.
    pub shutdown_grace_secs: f64,
    /// TLS certificate chain (PEM); with `tls_key`, the server speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
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
            max_sessions_per_client: 64,
            session_idle_secs: 900,
            session_lifetime_secs: 86_400,
            max_direction_sets: 4,
            max_direction_values: 4 << 20,
            max_session_bytes: 512 << 20,
            max_total_bytes: 1536 << 20,
            max_batch: 16_384,
            max_abs_value: 1.0e5,
            header_timeout_secs: 10.0,
            body_timeout_secs: 30.0,
            max_connections: 512,
            shutdown_grace_secs: 10.0,
            tls_cert: None,
            tls_key: None,
        }
    }
}

fn secs(what: &str, v: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| ServeError::Config(format!("{what} must be a positive number of seconds, got {v}")))
}

impl ServeConfig {
    /// Reads a TOML file (unknown keys are refused, missing keys take their defaults).
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ServeError::Read { path: path.to_path_buf(), source })?;
        toml::from_str(&text).map_err(|source| ServeError::ParseConfig { path: path.to_path_buf(), source })
    }

    /// Refuses settings that cannot work (no model, zero limits, half a TLS pair).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ServeError::Config(m));
        if self.model.as_os_str().is_empty() {
            return bad("no model given (--model or `model = \"...\"` in the config file)".into());
        }
        if !(self.rate.is_finite() && self.rate >= 0.0) {
            return bad(format!("rate must be a finite number >= 0 (0 = unlimited), got {}", self.rate));
        }
        if self.max_body_bytes < 1024 {
            return bad(format!("max_body_bytes = {} is too small to hold any request", self.max_body_bytes));
        }
        let counts = [
            ("max_sessions", self.max_sessions),
            ("max_sessions_per_client", self.max_sessions_per_client),
            ("max_direction_sets", self.max_direction_sets),
            ("max_direction_values", self.max_direction_values),
            ("max_session_bytes", self.max_session_bytes),
            ("max_batch", self.max_batch),
            ("max_connections", self.max_connections),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, v)| *v == 0) {
            return bad(format!("{name} must be at least 1"));
        }
        if self.max_total_bytes < self.max_body_bytes {
            return bad(format!(
                "max_total_bytes = {} cannot hold one request body of max_body_bytes = {}",
                self.max_total_bytes, self.max_body_bytes
            ));
        }
        if !(self.max_abs_value.is_finite() && self.max_abs_value > 0.0) {
            return bad(format!("max_abs_value must be finite and positive, got {}", self.max_abs_value));
        }
        if self.session_idle_secs == 0 || self.session_lifetime_secs == 0 {
            return bad("session_idle_secs and session_lifetime_secs must be at least 1".into());
        }
        self.header_timeout()?;
        self.body_timeout()?;
        self.shutdown_grace()?;
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad("TLS needs both tls_cert and tls_key".into());
        }
        Ok(())
    }

    /// `header_timeout_secs` as a duration.
    pub fn header_timeout(&self) -> Result<Duration> {
        secs("header_timeout_secs", self.header_timeout_secs)
    }

    /// `body_timeout_secs` as a duration.
    pub fn body_timeout(&self) -> Result<Duration> {
        secs("body_timeout_secs", self.body_timeout_secs)
    }

    /// `shutdown_grace_secs` as a duration.
    pub fn shutdown_grace(&self) -> Result<Duration> {
        secs("shutdown_grace_secs", self.shutdown_grace_secs)
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
        assert!(ServeConfig { rate: -1.0, ..c.clone() }.validate().is_err());
        assert!(ServeConfig { tls_cert: Some("c.pem".into()), ..c.clone() }.validate().is_err(), "half a TLS pair");
        assert!(ServeConfig { header_timeout_secs: 0.0, ..c.clone() }.validate().is_err());
        assert!(ServeConfig { max_total_bytes: 10, ..c }.validate().is_err());
    }
}
