//! `apsig serve`: the simulated private-inference service (change bits only).

use anyhow::Result;
use apsig_serve::ServeConfig;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct ServeArgs {
    /// Target model M: TargetNet-S safetensors or any ONNX classifier (`.onnx`).
    #[arg(long)]
    model: Option<PathBuf>,
    /// TOML config (any field of `apsig serve --print-config`); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8750].
    #[arg(long)]
    listen: Option<String>,
    /// Queries per session over its lifetime [default: 1000000].
    #[arg(long)]
    budget: Option<u64>,
    /// Queries per second per session, token bucket with burst = rate; 0 = unlimited [default: 0].
    #[arg(long)]
    rate: Option<f64>,
    /// Largest request body in bytes [default: 16 MiB].
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// Sessions held at once [default: 1024].
    #[arg(long)]
    max_sessions: Option<usize>,
    /// Sessions one client address may hold at once [default: 64].
    #[arg(long)]
    max_sessions_per_client: Option<usize>,
    /// Seconds a session may stay unused before it ends [default: 900].
    #[arg(long)]
    session_idle_secs: Option<u64>,
    /// Seconds a session lives at most [default: 86400].
    #[arg(long)]
    session_lifetime_secs: Option<u64>,
    /// Bytes all direction sets and request bodies being read may hold [default: 1.5 GiB].
    #[arg(long)]
    max_total_bytes: Option<usize>,
    /// Connections served at once [default: 512].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Seconds requests in flight get after SIGTERM or ctrl-c [default: 10].
    #[arg(long)]
    shutdown_grace_secs: Option<f64>,
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

/// The file's settings with the flags on top.
pub fn config(a: &ServeArgs) -> Result<ServeConfig> {
    let mut cfg = match &a.config {
        Some(p) => ServeConfig::load(p)?,
        None => ServeConfig::default(),
    };
    if let Some(m) = &a.model {
        cfg.model = m.clone();
    }
    if let Some(l) = &a.listen {
        cfg.listen = l.clone();
    }
    if let Some(b) = a.budget {
        cfg.budget = b;
    }
    if let Some(r) = a.rate {
        cfg.rate = r;
    }
    if let Some(m) = a.max_body_bytes {
        cfg.max_body_bytes = m;
    }
    if let Some(m) = a.max_sessions {
        cfg.max_sessions = m;
    }
    if let Some(m) = a.max_sessions_per_client {
        cfg.max_sessions_per_client = m;
    }
    if let Some(s) = a.session_idle_secs {
        cfg.session_idle_secs = s;
    }
    if let Some(s) = a.session_lifetime_secs {
        cfg.session_lifetime_secs = s;
    }
    if let Some(m) = a.max_total_bytes {
        cfg.max_total_bytes = m;
    }
    if let Some(m) = a.max_connections {
        cfg.max_connections = m;
    }
    if let Some(s) = a.shutdown_grace_secs {
        cfg.shutdown_grace_secs = s;
    }
    if a.tls_cert.is_some() {
        cfg.tls_cert = a.tls_cert.clone();
        cfg.tls_key = a.tls_key.clone();
    }
    Ok(cfg)
}

pub fn serve(a: ServeArgs) -> Result<()> {
    let cfg = config(&a)?;
    if a.print_config {
        print!("{}", toml::to_string(&cfg)?);
        return Ok(());
    }
    cfg.validate()?;
    eprintln!(
        "apsig serve: {} on {}://{} (budget {} queries/session, rate {}); ctrl-c to stop",
        cfg.model.display(),
        if cfg.tls_cert.is_some() { "https" } else { "http" },
        cfg.listen,
        cfg.budget,
        if cfg.rate > 0.0 { format!("{}/s", cfg.rate) } else { "unlimited".into() }
    );
    Ok(apsig_serve::serve_until_signal(cfg)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("serve.toml");
        std::fs::write(&f, "model = \"a.safetensors\"\nlisten = \"0.0.0.0:9000\"\nbudget = 10\nrate = 5.0\n").unwrap();
        let args = ServeArgs {
            model: None,
            config: Some(f),
            listen: None,
            budget: Some(99),
            rate: None,
            max_body_bytes: Some(1 << 20),
            max_sessions: None,
            max_sessions_per_client: Some(3),
            session_idle_secs: None,
            session_lifetime_secs: None,
            max_total_bytes: None,
            max_connections: None,
            shutdown_grace_secs: Some(2.5),
            tls_cert: None,
            tls_key: None,
            print_config: false,
        };
        let c = config(&args).unwrap();
        assert_eq!(c.model, PathBuf::from("a.safetensors"));
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!((c.budget, c.rate, c.max_body_bytes), (99, 5.0, 1 << 20));
        assert_eq!(c.max_sessions, ServeConfig::default().max_sessions);
        assert_eq!((c.max_sessions_per_client, c.shutdown_grace_secs), (3, 2.5));
    }
}
