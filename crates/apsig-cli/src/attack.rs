//! `apsig attack`: measure a secret's signature through `apsig serve` and reconstruct it.

use crate::search_args::SearchArgs;
use anyhow::{bail, Context, Result};
use apsig::data::DataOptions;
use apsig::decoder::Decoder;
use apsig::directions::Directions;
use apsig::signature::{signature_via_oracle, EpsOutcome, ExtractConfig, Method, SearchConfig, SignatureSet};
use apsig_serve::{register_secret_with, ClientConfig, HttpOracle, JournaledOracle};
use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct AttackArgs {
    /// Base URL of the oracle service (`apsig serve`), e.g. http://127.0.0.1:8750 or
    /// https://host:8750 (the certificate is verified).
    #[arg(long)]
    oracle: String,
    /// Trust only this CA certificate (PEM) for an https --oracle, e.g. a self-signed test CA.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Session of the secret to attack.
    #[arg(long, required_unless_present = "register_test_image")]
    session: Option<String>,
    /// Bearer token of the session (else $APSIG_TOKEN).
    #[arg(long)]
    token: Option<String>,
    /// Play the victim first: register test image N of --dataset as the secret, print its
    /// session and token, then attack it.
    #[arg(long, conflicts_with = "session")]
    register_test_image: Option<usize>,
    /// Data set of --register-test-image.
    #[arg(long, default_value = "mnist")]
    dataset: String,
    /// Directions file (the decoder's).
    #[arg(long)]
    directions: PathBuf,
    /// Trained decoder; without it only the signature is measured.
    #[arg(long)]
    decoder: Option<PathBuf>,
    #[command(flatten)]
    search: SearchArgs,
    /// Signature file to write (one image).
    #[arg(long, short)]
    out: PathBuf,
    /// Write the reconstruction (over the original, when this run registered it) as PNG.
    #[arg(long)]
    png: Option<PathBuf>,
    /// Journal of answered batches: a killed attack rerun with it asks only what it lacks
    /// [default: <out>.journal].
    #[arg(long)]
    journal: Option<PathBuf>,
    /// Keep no journal.
    #[arg(long, conflicts_with = "journal")]
    no_journal: bool,
    /// Retries after transient failures (connection errors, timeouts, 5xx) per request.
    #[arg(long, default_value_t = 6)]
    retries: u32,
    /// Probes per request (1..=4096).
    #[arg(long, default_value_t = 4096)]
    batch: usize,
}

pub fn attack(a: AttackArgs, opts: &DataOptions) -> Result<()> {
    let dirs = Directions::load(&a.directions)?;
    let k = dirs.k();
    let decoder = match &a.decoder {
        Some(p) => {
            let d = Decoder::load(p)?;
            if d.k() != k || d.directions != dirs.fingerprint() {
                bail!(
                    "{} was trained on other directions (K = {}, {}) than {} (K = {k}, {})",
                    p.display(),
                    d.k(),
                    d.directions,
                    a.directions.display(),
                    dirs.fingerprint()
                );
            }
            Some(d)
        }
        None => None,
    };
    if a.png.is_some() && decoder.is_none() {
        bail!("--png needs --decoder");
    }
    if !(1..=4096).contains(&a.batch) {
        bail!("--batch must be 1..=4096, got {}", a.batch);
    }
    let search = a.search.config(&SearchConfig::decoder_grade(256.0))?;
    let prior = a.search.prior(k, &search)?;
    let prior = prior.as_prior();

    let mut client = ClientConfig { max_retries: a.retries, probe_batch: a.batch, ..Default::default() };
    if let Some(ca) = &a.ca {
        client = client.trust_ca_file(ca)?;
    }

    // the victim's side, when simulated here
    let mut victim = None;
    let (session, token) = match a.register_test_image {
        Some(n) => {
            let data = apsig::data::load(&a.dataset, opts)?;
            if n >= data.test.n {
                bail!("--register-test-image {n}: the test split has {} images", data.test.n);
            }
            let reg = register_secret_with(&a.oracle, data.test.image(n), &client)
                .with_context(|| format!("registering test image {n} at {}", a.oracle))?;
            println!("registered test image {n} of {} as the secret", data.name);
            println!("session {}", reg.session);
            println!("token   {}", reg.token);
            println!("budget  {} queries", reg.budget);
            victim = Some((data, n));
            (reg.session, reg.token)
        }
        None => {
            let session = a.session.clone().expect("clap requires --session");
            let token = match a.token.clone().or_else(|| std::env::var("APSIG_TOKEN").ok()) {
                Some(t) => t,
                None => bail!("no token: pass --token or set APSIG_TOKEN"),
            };
            (session, token)
        }
    };

    let http = HttpOracle::with_config(&a.oracle, &session, &token, dirs.len(), client);
    let extract = ExtractConfig { method: Method::ChangeBit, search: search.clone() };
    let extract_json = serde_json::to_string(&extract)?;
    let t = Instant::now();
    let (outcomes, replayed, requests, retries): (Vec<EpsOutcome>, u64, u64, u64) = if a.no_journal {
        let o = signature_via_oracle(&http, &dirs, prior, &search)?;
        (o, 0, http.requests(), http.retries())
    } else {
        let path = a.journal.clone().unwrap_or_else(|| a.out.with_extension("journal"));
        let context = format!(
            "oracle={} session={session} directions={} extract={extract_json} starts={}",
            a.oracle.trim_end_matches('/'),
            dirs.fingerprint(),
            prior.fingerprint()
        );
        let j = JournaledOracle::open(http, &path, &context)?;
        if j.journaled_batches() > 0 {
            println!("resuming: {} answered batches in {}", j.journaled_batches(), path.display());
        }
        let o = signature_via_oracle(&j, &dirs, prior, &search)
            .with_context(|| format!("attack (journal {})", path.display()))?;
        (o, j.replayed(), j.inner().requests(), j.inner().retries())
    };
    let secs = t.elapsed().as_secs_f64();

    let mut prov = BTreeMap::new();
    prov.insert("directions".to_string(), dirs.fingerprint());
    prov.insert("directions_config".to_string(), serde_json::to_string(&dirs.config)?);
    prov.insert("extract".to_string(), extract_json);
    prov.insert("starts".to_string(), prior.fingerprint());
    prov.insert("oracle".to_string(), a.oracle.clone());
    prov.insert("session".to_string(), session.clone());
    let index = match &victim {
        Some((data, n)) => {
            prov.insert("dataset".to_string(), data.name.clone());
            prov.insert("split".to_string(), "test".to_string());
            prov.insert("range".to_string(), format!("{n}..{}", n + 1));
            *n as u32
        }
        None => 0,
    };
    let set = SignatureSet {
        k,
        indices: vec![index],
        eps: outcomes.iter().map(|o| o.eps).collect(),
        censored: outcomes.iter().map(|o| o.censored as u8).collect(),
        queries: outcomes.iter().map(|o| o.queries).collect(),
        provenance: prov,
    };
    set.save(&a.out)?;
    let total = set.total_queries();
    println!(
        "{}: K = {k}, {total} queries ({:.2} per eps; {} new, {replayed} from the journal), {:.1}% censored, {requests} requests, {retries} retries, {secs:.2} s",
        a.out.display(),
        set.queries_per_eps(),
        total - replayed,
        100.0 * set.censored_fraction()
    );

    if let Some(dec) = decoder {
        let recon = dec.reconstruct(&set)?;
        if let Some(p) = &a.png {
            let s = dec.image_shape();
            let mut grid = apsig_report::ImageGrid::new(s.h, s.w).with_channels(s.c);
            if let Some((data, n)) = &victim {
                grid = grid.with_row("original", vec![data.test.image(*n)]);
            }
            grid = grid.with_row("reconstruction", vec![&recon[..]]);
            apsig::io::atomic_write(p, &grid.render_png()?)?;
            println!("{}: reconstruction", p.display());
        }
        if let Some((data, n)) = &victim {
            let x = data.test.image(*n);
            let mse = x.iter().zip(&recon).map(|(a, b)| (a - b) * (a - b)).sum::<f32>() / x.len() as f32;
            println!("reconstruction MSE against the registered image {mse:.4}");
        }
    }
    Ok(())
}
