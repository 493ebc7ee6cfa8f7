//! The client side: `HttpOracle`, a `ChangeOracle` that asks an `apsig serve` session.

use crate::wire::{self, Kind};
use apsig::directions::Directions;
use apsig::error::{Error, Result};
use apsig::oracle::{ChangeOracle, Probe};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// How the client talks to the server.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Limit on one request, connection to last byte.
    pub timeout: Duration,
    /// Retries after a transient failure (connection errors, timeouts, 5xx). 4xx are final.
    pub max_retries: u32,
    /// First backoff; it doubles per retry (with jitter) up to `max_backoff`.
    pub backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
    /// Waits honoured for `429` answers that carry `Retry-After` (the rate limit). A 429
    /// without it (budget exhausted) is final.
    pub max_rate_waits: u32,
    /// Probes per request (at most 4096; a multiple of 32 keeps the server's forward
    /// batches aligned with the in-process oracle's).
    pub probe_batch: usize,
    /// Largest perturbation batch body, in bytes.
    pub max_batch_bytes: usize,
    /// Certificate authorities trusted for `https` (else the WebPKI roots); see
    /// [`ClientConfig::trust_ca_file`].
    pub ca: Option<Arc<Vec<Certificate<'static>>>>,
}

impl ClientConfig {
    /// Trusts only the certificates of the PEM file `path` (e.g. a test CA) for `https`.
    pub fn trust_ca_file(mut self, path: &Path) -> Result<Self> {
        let pem = std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let certs = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::BadFile {
                path: path.to_path_buf(),
                msg: format!("not a PEM certificate file: {e}"),
            })?;
        if certs.is_empty() {
            return Err(Error::BadFile { path: path.to_path_buf(), msg: "no certificate in the PEM file".into() });
        }
        self.ca = Some(Arc::new(certs));
        Ok(self)
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_secs(120),
            max_retries: 6,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            max_rate_waits: 100_000,
            probe_batch: 4096,
            max_batch_bytes: 4 << 20,
            ca: None,
        }
    }
}

/// A registered secret: the session and the token that may query it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Registration {
    /// The session id.
    pub session: String,
    /// The bearer token that may query it.
    pub token: String,
    /// Queries the session may ask.
    pub budget: u64,
    /// Values of the secret input.
    pub input_len: usize,
}

struct Answer {
    body: Vec<u8>,
    counters: Option<(u64, u64)>,
}

struct Http {
    agent: ureq::Agent,
    cfg: ClientConfig,
    requests: AtomicU64,
    retries: AtomicU64,
}

enum Failure {
    Transient(String),
    RateLimited(Duration, String),
    Final(String),
}

fn oracle_err(msg: impl Into<String>) -> Error {
    Error::Oracle(msg.into())
}

fn jitter(d: Duration) -> Duration {
    let r = getrandom::u32().unwrap_or(u32::MAX / 2) as f64 / u32::MAX as f64;
    d.mul_f64(0.5 + 0.5 * r)
}

impl Http {
    fn new(cfg: ClientConfig) -> Self {
        let mut tls = TlsConfig::builder();
        if let Some(ca) = &cfg.ca {
            tls = tls.root_certs(RootCerts::Specific(ca.clone()));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(cfg.timeout))
            .tls_config(tls.build())
            .build()
            .into();
        Http { agent, cfg, requests: AtomicU64::new(0), retries: AtomicU64::new(0) }
    }

    /// POSTs `body`, retrying transient failures with exponential backoff and waiting out
    /// rate limits. The same `headers` (including a request id) go with every attempt.
    fn post(&self, url: &str, headers: &[(&str, String)], body: &[u8]) -> Result<Answer> {
        let mut attempt = 0u32;
        let mut waits = 0u32;
        loop {
            let failure = match self.once(url, headers, body) {
                Ok(a) => return Ok(a),
                Err(f) => f,
            };
            match failure {
                Failure::Final(m) => return Err(oracle_err(m)),
                Failure::RateLimited(d, m) => {
                    waits += 1;
                    if waits > self.cfg.max_rate_waits {
                        return Err(oracle_err(format!("{m} (gave up after {waits} waits)")));
                    }
                    tracing::debug!("{url}: rate limited, waiting {d:?}");
                    std::thread::sleep(d);
                }
                Failure::Transient(m) => {
                    if attempt >= self.cfg.max_retries {
                        return Err(oracle_err(format!("{m} (gave up after {} attempts)", attempt + 1)));
                    }
                    let d = self.cfg.backoff.saturating_mul(1u32 << attempt.min(16)).min(self.cfg.max_backoff);
                    let d = jitter(d);
                    tracing::warn!("{m}; retry {} in {d:?}", attempt + 1);
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(d);
                    attempt += 1;
                }
            }
        }
    }

    fn once(&self, url: &str, headers: &[(&str, String)], body: &[u8]) -> std::result::Result<Answer, Failure> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut req = self.agent.post(url);
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let mut resp = match req.send(body) {
            Ok(r) => r,
            Err(e) => {
                let m = format!("{url}: {e}");
                return Err(if transient(&e) { Failure::Transient(m) } else { Failure::Final(m) });
            }
        };
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let retry_after = header("retry-after");
        let counters = header(wire::QUERIES_USED_HEADER)
            .zip(header(wire::BUDGET_LEFT_HEADER))
            .and_then(|(u, l)| Some((u.parse().ok()?, l.parse().ok()?)));
        let body = match resp.body_mut().with_config().limit(256 << 20).read_to_vec() {
            Ok(b) => b,
            Err(e) => return Err(Failure::Transient(format!("{url}: reading the answer: {e}"))),
        };
        if (200..300).contains(&status) {
            return Ok(Answer { body, counters });
        }
        let msg = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        let m = format!("{url}: HTTP {status}: {msg}");
        Err(match (status, retry_after) {
            (500..=599, _) => Failure::Transient(m),
            (429, Some(ra)) => Failure::RateLimited(Duration::from_secs(ra.trim().parse::<u64>().unwrap_or(1)), m),
            _ => Failure::Final(m),
        })
    }
}

fn transient(e: &ureq::Error) -> bool {
    use ureq::Error::*;
    match e {
        // a TLS failure (an untrusted certificate) will not heal on a retry
        Io(io) => io.kind() != std::io::ErrorKind::InvalidData,
        Timeout(_) | ConnectionFailed | HostNotFound | Protocol(_) | BodyStalled => true,
        _ => false,
    }
}

fn trim_base(base_url: &str) -> String {
    base_url.trim_end_matches('/').to_string()
}

/// Registers `input` as a secret (what the victim does) and returns the session and token.
/// The input travels in the binary encoding, so the server holds exactly these floats.
pub fn register_secret(base_url: &str, input: &[f32]) -> Result<Registration> {
    register_secret_with(base_url, input, &ClientConfig::default())
}

/// [`register_secret`] with a client configuration (e.g. a trusted test CA).
pub fn register_secret_with(base_url: &str, input: &[f32], cfg: &ClientConfig) -> Result<Registration> {
    let http = Http::new(cfg.clone());
    let url = format!("{}/v1/sessions", trim_base(base_url));
    let a = http.post(
        &url,
        &[("content-type", wire::CONTENT_TYPE.to_string())],
        &wire::encode_f32(Kind::Input, input.len(), input),
    )?;
    serde_json::from_slice(&a.body).map_err(|e| oracle_err(format!("{url}: unexpected answer to a registration: {e}")))
}

/// A change oracle behind `apsig serve`: every answer is one query charged to the session.
/// Probes along directions register the direction set once per fingerprint, then travel in
/// the binary encoding in batches of at most `probe_batch`.
pub struct HttpOracle {
    http: Http,
    base: String,
    session: String,
    auth: String,
    input_len: usize,
    queries: AtomicU64,
    registered: Mutex<HashSet<String>>,
    id_prefix: String,
    next_id: AtomicU64,
    counters: Mutex<Option<(u64, u64)>>,
}

impl HttpOracle {
    /// An oracle for `session` at `base_url` (e.g. `http://127.0.0.1:8750`); `input_len` is
    /// the secret's size (the directions' length).
    pub fn new(base_url: &str, session: &str, token: &str, input_len: usize) -> Self {
        Self::with_config(base_url, session, token, input_len, ClientConfig::default())
    }

    /// [`HttpOracle::new`] with a client configuration.
    pub fn with_config(base_url: &str, session: &str, token: &str, input_len: usize, cfg: ClientConfig) -> Self {
        let mut p = [0u8; 8];
        let _ = getrandom::fill(&mut p);
        HttpOracle {
            http: Http::new(cfg),
            base: trim_base(base_url),
            session: session.to_string(),
            auth: format!("Bearer {token}"),
            input_len,
            queries: AtomicU64::new(0),
            registered: Mutex::new(HashSet::new()),
            id_prefix: p.iter().map(|b| format!("{b:02x}")).collect(),
            next_id: AtomicU64::new(0),
            counters: Mutex::new(None),
        }
    }

    fn url(&self, what: &str) -> String {
        format!("{}/v1/sessions/{}/{what}", self.base, self.session)
    }

    /// Sends `dirs` to the session (once per set) and checks the server's key for them.
    pub fn register_directions(&self, dirs: &Directions) -> Result<()> {
        let fp = wire::directions_key(dirs.k(), &dirs.data);
        let mut reg = self.registered.lock().expect("registered lock");
        if reg.contains(&fp) {
            return Ok(());
        }
        if dirs.len() != self.input_len {
            return Err(oracle_err(format!("directions have {} values, the secret {}", dirs.len(), self.input_len)));
        }
        let url = self.url("directions");
        let a = self.http.post(
            &url,
            &[("authorization", self.auth.clone()), ("content-type", wire::CONTENT_TYPE.to_string())],
            &wire::encode_f32(Kind::Directions, dirs.k(), &dirs.data),
        )?;
        let got = serde_json::from_slice::<serde_json::Value>(&a.body)
            .ok()
            .and_then(|v| v.get("directions")?.as_str().map(str::to_string))
            .ok_or_else(|| oracle_err(format!("{url}: unexpected answer")))?;
        if got != fp {
            return Err(oracle_err(format!("{url}: the server keys the directions as {got}, expected {fp}")));
        }
        reg.insert(fp);
        Ok(())
    }

    /// The session's counters: (queries used, budget left), from an empty batch (free).
    pub fn status(&self) -> Result<(u64, u64)> {
        self.ask(&wire::encode_f32(Kind::Perturbations, 0, &[]), None, 0)?;
        self.server_counters().ok_or_else(|| oracle_err("the server sent no counters"))
    }

    /// The counters the server reported with its last answer.
    pub fn server_counters(&self) -> Option<(u64, u64)> {
        *self.counters.lock().expect("counters lock")
    }

    /// HTTP requests sent, attempts included.
    pub fn requests(&self) -> u64 {
        self.http.requests.load(Ordering::Relaxed)
    }

    /// Retries after transient failures.
    pub fn retries(&self) -> u64 {
        self.http.retries.load(Ordering::Relaxed)
    }

    /// The session id.
    pub fn session(&self) -> &str {
        &self.session
    }

    fn ask(&self, body: &[u8], fingerprint: Option<&str>, n: usize) -> Result<Vec<bool>> {
        let id = format!("{}-{}", self.id_prefix, self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut headers = vec![
            ("authorization", self.auth.clone()),
            ("content-type", wire::CONTENT_TYPE.to_string()),
            (wire::REQUEST_ID_HEADER, id),
        ];
        if let Some(fp) = fingerprint {
            headers.push((wire::DIRECTIONS_HEADER, fp.to_string()));
        }
        let url = self.url("query");
        let a = self.http.post(&url, &headers, body)?;
        let bits = wire::decode_bits(&a.body).map_err(|e| oracle_err(format!("{url}: {e}")))?;
        if bits.len() != n {
            return Err(oracle_err(format!("{url}: {} answers for {n} perturbations", bits.len())));
        }
        if a.counters.is_some() {
            *self.counters.lock().expect("counters lock") = a.counters;
        }
        self.queries.fetch_add(n as u64, Ordering::Relaxed);
        Ok(bits)
    }

    fn perturbation_batch(&self) -> usize {
        let rows = (self.http.cfg.max_batch_bytes.saturating_sub(12) / (4 * self.input_len))
            .min(self.http.cfg.probe_batch)
            .max(1);
        if rows >= 32 {
            rows / 32 * 32
        } else {
            rows
        }
    }
}

impl ChangeOracle for HttpOracle {
    fn input_len(&self) -> usize {
        self.input_len
    }

    fn changed(&self, perturbations: &[f32]) -> Result<Vec<bool>> {
        let len = self.input_len;
        if perturbations.len() % len != 0 {
            return Err(oracle_err(format!(
                "perturbation batch of {} values is not a multiple of the input size {len}",
                perturbations.len()
            )));
        }
        let rows = self.perturbation_batch();
        let mut out = Vec::with_capacity(perturbations.len() / len);
        for chunk in perturbations.chunks(rows * len) {
            let n = chunk.len() / len;
            out.extend(self.ask(&wire::encode_f32(Kind::Perturbations, n, chunk), None, n)?);
        }
        Ok(out)
    }

    fn changed_along(&self, dirs: &Directions, probes: &[Probe]) -> Result<Vec<bool>> {
        self.register_directions(dirs)?;
        let fp = wire::directions_key(dirs.k(), &dirs.data);
        let batch = self.http.cfg.probe_batch.clamp(1, 4096);
        let mut out = Vec::with_capacity(probes.len());
        for chunk in probes.chunks(batch) {
            out.extend(self.ask(&wire::encode_probes(chunk), Some(&fp), chunk.len())?);
        }
        Ok(out)
    }

    fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
}
