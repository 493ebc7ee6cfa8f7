//! `apsig serve`: the simulated private-inference service (change bits only).

use anyhow::Result;
use apsig_serve::ServeConfig;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct ServeArgs {
    /// Target model M (TargetNet-S safetensors).
    #[arg(long)]
    model: Option<PathBuf>,
    /// TOML config (`model`, `listen`, `budget`, `rate`, `max_body_bytes`, `max_sessions`,
    /// `max_direction_sets`); flags override it.
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
        "apsig serve: {} on http://{} (budget {} queries/session, rate {}); ctrl-c to stop",
        cfg.model.display(),
        cfg.listen,
        cfg.budget,
        if cfg.rate > 0.0 { format!("{}/s", cfg.rate) } else { "unlimited".into() }
    );
    apsig_serve::serve_until_signal(cfg)
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
            print_config: false,
        };
        let c = config(&args).unwrap();
        assert_eq!(c.model, PathBuf::from("a.safetensors"));
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!((c.budget, c.rate, c.max_body_bytes), (99, 5.0, 1 << 20));
        assert_eq!(c.max_sessions, ServeConfig::default().max_sessions);
    }
}
