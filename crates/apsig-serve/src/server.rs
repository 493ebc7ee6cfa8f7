//! The service: sessions over secret inputs that answer change bits and nothing else.

use crate::config::ServeConfig;
use crate::wire::{self, Body as Wire};
use anyhow::Context;
use apsig::directions::{DirectionConfig, Directions, Strategy};
use apsig::model::{load_network, Arch, Classifier};
use apsig::nn::Shape;
use apsig::oracle::{ChangeOracle, LiftedDirections, LocalOracle, Probe};
use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Answers kept per session for retried requests (by `x-apsig-request-id`).
const REPLY_CACHE: usize = 16;

pub(crate) struct AppState {
    model: Arc<dyn Classifier>,
    shape: Shape,
    len: usize,
    cfg: ServeConfig,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Lifted direction sets shared by every session that registered the same directions.
    lifted: Mutex<HashMap<String, Weak<LiftedDirections>>>,
}

/// One secret. Its input and decision live only inside the oracles and `secret`, which no
/// handler ever serialises.
struct Session {
    token: String,
    secret: Vec<f32>,
    plain: Arc<LocalOracle>,
    inner: Mutex<Inner>,
}

struct Inner {
    used: u64,
    bucket: Bucket,
    sets: HashMap<String, DirSet>,
    replies: VecDeque<Cached>,
}

#[derive(Clone)]
struct DirSet {
    dirs: Arc<Directions>,
    oracle: Arc<LocalOracle>,
}

struct Cached {
    id: String,
    body_hash: u64,
    reply: Reply,
}

#[derive(Clone)]
struct Reply {
    bits: Vec<bool>,
    used: u64,
    left: u64,
    binary: bool,
}

/// Token bucket with burst = rate. A batch larger than the burst is admitted when the bucket
/// is full and leaves it in debt, so any batch size works and the long-run rate holds.
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: f64) -> Self {
        Bucket { rate, tokens: rate, last: Instant::now() }
    }

    /// Takes `n` tokens, or says how long until the batch would be admitted.
    fn take(&mut self, n: u64) -> Result<(), Duration> {
        if self.rate <= 0.0 || n == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
        let need = (n as f64).min(self.rate);
        if self.tokens >= need {
            self.tokens -= n as f64;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((need - self.tokens) / self.rate))
        }
    }
}

/// A refused request: status and a message, sent as `{"error": msg}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    msg: String,
    retry_after: Option<Duration>,
    counters: Option<(u64, u64)>,
}

impl ApiError {
    fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        ApiError { status, msg: msg.into(), retry_after: None, counters: None }
    }
    fn bad(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.msg });
        if let Some((used, left)) = self.counters {
            body["queries_used"] = used.into();
            body["budget_left"] = left.into();
        }
        let mut r = (self.status, Json(body)).into_response();
        if let Some(d) = self.retry_after {
            let secs = d.as_secs_f64().ceil().max(1.0) as u64;
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// What the access log records about a request (attached to the response by handlers).
#[derive(Clone, Default)]
struct ReqInfo {
    session: Option<String>,
    count: usize,
}

impl AppState {
    fn load(cfg: ServeConfig) -> anyhow::Result<Self> {
        cfg.validate()?;
        let m = load_network(&cfg.model, Some(Arch::TargetNetS))
            .with_context(|| format!("loading the model {}", cfg.model.display()))?;
        let model: Arc<dyn Classifier> = Arc::new(m.net);
        let shape = model.input_shape();
        Ok(AppState {
            len: shape.len(),
            shape,
            model,
            cfg,
            sessions: Mutex::new(HashMap::new()),
            lifted: Mutex::new(HashMap::new()),
        })
    }

    /// The session `id` if the bearer token is its token. Missing token: 401. A token that is
    /// not this session's: 403, whether or not the session exists. 404 only for a caller that
    /// holds a live token of some session and names a session that does not exist.
    fn authorize(&self, id: &str, headers: &HeaderMap) -> Result<Arc<Session>, ApiError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::new(StatusCode::UNAUTHORIZED, "missing bearer token (header `Authorization: Bearer <token>`)")
            })?;
        let forbidden = || ApiError::new(StatusCode::FORBIDDEN, "token not valid for this session");
        let sessions = self.sessions.lock().expect("sessions lock");
        match sessions.get(id) {
            Some(s) if ct_eq(s.token.as_bytes(), token.as_bytes()) => Ok(s.clone()),
            Some(_) => Err(forbidden()),
            None => {
                let known = sessions.values().fold(false, |acc, s| acc | ct_eq(s.token.as_bytes(), token.as_bytes()));
                if known {
                    Err(ApiError::new(StatusCode::NOT_FOUND, "no such session"))
                } else {
                    Err(forbidden())
                }
            }
        }
    }

    fn lifted(&self, dirs: &Directions) -> Option<Arc<LiftedDirections>> {
        let cache = self.lifted.lock().expect("lifted lock");
        cache.get(&dirs.fingerprint()).and_then(Weak::upgrade)
    }
}

/// Constant-time comparison (for equal lengths; the token length is public).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_hex(bytes: usize) -> Result<String, ApiError> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("no randomness: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

fn is_binary(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(wire::CONTENT_TYPE))
        .unwrap_or(false)
}

/// A request split for handlers: the headers first (authorisation), the body read only
/// when the request passed them.
struct Req {
    headers: HeaderMap,
    body: Option<Body>,
}

impl Req {
    fn new(req: Request) -> Self {
        let (parts, body) = req.into_parts();
        Req { headers: parts.headers, body: Some(body) }
    }

    fn announced(&self) -> Option<u64> {
        self.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
    }

    /// The whole body, at most `limit` bytes (else 413).
    async fn bytes(&mut self, limit: usize) -> Result<Bytes, ApiError> {
        let announced = self.announced();
        let mut body = self.body.take().expect("the body is read once");
        let too_big = || {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body larger than the limit of {limit} bytes"))
        };
        if announced.is_some_and(|n| n > limit as u64) {
            drain(body, announced, limit).await;
            return Err(too_big());
        }
        let mut buf = Vec::with_capacity(announced.unwrap_or(0) as usize);
        while let Some(frame) = next_frame(&mut body).await {
            let frame = frame.map_err(|e| ApiError::bad(format!("could not read the body: {e}")))?;
            if let Some(d) = frame {
                if buf.len() + d.len() > limit {
                    return Err(too_big());
                }
                buf.extend_from_slice(&d);
            }
        }
        Ok(Bytes::from(buf))
    }
}

/// The next frame's data (`None` for a trailers frame), or `None` at the end of the body.
async fn next_frame(body: &mut Body) -> Option<Result<Option<Bytes>, axum::Error>> {
    let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_frame(cx)).await?;
    Some(frame.map(|f| f.into_data().ok()))
}

/// Reads and discards a refused request's body (up to twice the limit), so that clients that
/// send the whole body before reading the answer see the refusal instead of a broken pipe.
/// Larger bodies are not read: the connection is closed after the answer.
async fn drain(mut body: Body, announced: Option<u64>, limit: usize) {
    let cap = limit.saturating_mul(2);
    if announced.is_some_and(|n| n > cap as u64) {
        return;
    }
    let mut seen = 0usize;
    while let Some(Ok(frame)) = next_frame(&mut body).await {
        seen += frame.map_or(0, |d| d.len());
        if seen > cap {
            return;
        }
    }
}

/// The response, with what the access log needs; a refused request's unread body is drained.
async fn respond(r: Result<Response, ApiError>, mut req: Req, limit: usize, info: ReqInfo) -> Response {
    if r.is_err() {
        if let Some(body) = req.body.take() {
            drain(body, req.announced(), limit).await;
        }
    }
    with_info(r, info)
}

fn parse_json<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(b).map_err(|e| ApiError::bad(format!("malformed JSON body: {e}")))
}

fn check_finite(what: &str, v: &[f32]) -> Result<(), ApiError> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(ApiError::bad(format!("{what}: value {i} is not finite ({})", v[i]))),
        None => Ok(()),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("worker failed: {e}")))
}

fn with_info(r: Result<Response, ApiError>, info: ReqInfo) -> Response {
    let mut resp = match r {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    resp.extensions_mut().insert(info);
    resp
}

// ---------------------------------------------------------------- sessions

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSession {
    input: Vec<f32>,
}

async fn create_session(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let mut info = ReqInfo::default();
    let mut req = Req::new(req);
    let r = create_session_inner(&st, &mut req, &mut info).await;
    respond(r, req, st.cfg.max_body_bytes, info).await
}

async fn create_session_inner(st: &Arc<AppState>, req: &mut Req, info: &mut ReqInfo) -> Result<Response, ApiError> {
    let binary = is_binary(&req.headers);
    let body = req.bytes(st.cfg.max_body_bytes).await?;
    let input = if binary {
        match wire::decode(&body, st.len).map_err(ApiError::bad)? {
            Wire::Input(v) => v,
            _ => return Err(ApiError::bad("a new session takes an input body (kind 3)")),
        }
    } else {
        parse_json::<NewSession>(&body)?.input
    };
    if input.len() != st.len {
        return Err(ApiError::bad(format!("input has {} values, the model takes {}", input.len(), st.len)));
    }
    check_finite("input", &input)?;
    let full =
        || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("session limit of {} reached", st.cfg.max_sessions));
    if st.sessions.lock().expect("sessions lock").len() >= st.cfg.max_sessions {
        return Err(full());
    }
    let model = st.model.clone();
    let secret = input;
    let (plain, secret) = blocking(move || {
        let o = LocalOracle::new(model, &secret, None);
        (o, secret)
    })
    .await?;
    let plain = Arc::new(plain.map_err(|e| ApiError::bad(e.to_string()))?);
    let id = random_hex(12)?;
    let token = random_hex(16)?;
    let session = Arc::new(Session {
        token: token.clone(),
        secret,
        plain,
        inner: Mutex::new(Inner {
            used: 0,
            bucket: Bucket::new(st.cfg.rate),
            sets: HashMap::new(),
            replies: VecDeque::new(),
        }),
    });
    {
        let mut sessions = st.sessions.lock().expect("sessions lock");
        if sessions.len() >= st.cfg.max_sessions {
            return Err(full());
        }
        sessions.insert(id.clone(), session);
    }
    info.session = Some(id.clone());
    tracing::info!(session = %id, "session registered");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "session": id,
            "token": token,
            "budget": st.cfg.budget,
            "input_len": st.len,
        })),
    )
        .into_response())
}

// ---------------------------------------------------------------- directions

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDirections {
    directions: Vec<f32>,
    k: usize,
}

async fn register_directions(State(st): State<Arc<AppState>>, Path(id): Path<String>, req: Request) -> Response {
    let mut info = ReqInfo { session: Some(id.clone()), count: 0 };
    let mut req = Req::new(req);
    let r = register_directions_inner(&st, &id, &mut req, &mut info).await;
    respond(r, req, st.cfg.max_body_bytes, info).await
}

async fn register_directions_inner(
    st: &Arc<AppState>,
    id: &str,
    req: &mut Req,
    info: &mut ReqInfo,
) -> Result<Response, ApiError> {
    let session = st.authorize(id, &req.headers)?;
    let binary = is_binary(&req.headers);
    let body = req.bytes(st.cfg.max_body_bytes).await?;
    let (k, data) = if binary {
        match wire::decode(&body, st.len).map_err(ApiError::bad)? {
            Wire::Directions { k, data } => (k, data),
            _ => return Err(ApiError::bad("directions take a directions body (kind 2)")),
        }
    } else {
        let d: NewDirections = parse_json(&body)?;
        (d.k, d.directions)
    };
    info.count = k;
    if k == 0 || k > 100_000 {
        return Err(ApiError::bad(format!("K = {k} (must be 1..=100000)")));
    }
    if data.len() != k * st.len {
        return Err(ApiError::bad(format!(
            "{} direction values for K = {k} directions of {} values",
            data.len(),
            st.len
        )));
    }
    check_finite("directions", &data)?;
    let dirs =
        Directions { config: DirectionConfig { strategy: Strategy::Gaussian, k, seed: 0 }, shape: st.shape, data };
    let fp = dirs.fingerprint();
    {
        let inner = session.inner.lock().expect("session lock");
        if inner.sets.contains_key(&fp) {
            return Ok(Json(json!({ "directions": fp, "k": k })).into_response());
        }
        if inner.sets.len() >= st.cfg.max_direction_sets {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("this session already holds {} direction sets (the limit)", inner.sets.len()),
            ));
        }
    }
    let dirs = Arc::new(dirs);
    let cached = st.lifted(&dirs);
    let (model, d, s2) = (st.model.clone(), dirs.clone(), session.clone());
    let (lifted, oracle) = blocking(move || {
        let lifted = cached.unwrap_or_else(|| Arc::new(LiftedDirections::new(model.as_ref(), &d)));
        let oracle = LocalOracle::new(model, &s2.secret, Some(lifted.clone()));
        (lifted, oracle)
    })
    .await?;
    let oracle = Arc::new(oracle.map_err(|e| ApiError::bad(e.to_string()))?);
    st.lifted.lock().expect("lifted lock").retain(|_, w| w.strong_count() > 0);
    st.lifted.lock().expect("lifted lock").insert(fp.clone(), Arc::downgrade(&lifted));
    let mut inner = session.inner.lock().expect("session lock");
    if inner.sets.len() >= st.cfg.max_direction_sets && !inner.sets.contains_key(&fp) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "this session already holds the maximum number of direction sets",
        ));
    }
    inner.sets.entry(fp.clone()).or_insert(DirSet { dirs, oracle });
    tracing::info!(session = %id, k, directions = %fp, "directions registered");
    Ok(Json(json!({ "directions": fp, "k": k })).into_response())
}

// ---------------------------------------------------------------- queries

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryJson {
    perturbations: Option<Vec<f32>>,
    directions: Option<String>,
    probes: Option<Vec<(u32, f32)>>,
}

enum Batch {
    Plain { count: usize, data: Vec<f32> },
    Along { set: DirSet, probes: Vec<Probe> },
}

async fn query(State(st): State<Arc<AppState>>, Path(id): Path<String>, req: Request) -> Response {
    let mut info = ReqInfo { session: Some(id.clone()), count: 0 };
    let mut req = Req::new(req);
    let r = query_inner(&st, &id, &mut req, &mut info).await;
    respond(r, req, st.cfg.max_body_bytes, info).await
}

async fn query_inner(st: &Arc<AppState>, id: &str, req: &mut Req, info: &mut ReqInfo) -> Result<Response, ApiError> {
    let session = st.authorize(id, &req.headers)?;
    let binary = is_binary(&req.headers);
    let fp_header = req.headers.get(wire::DIRECTIONS_HEADER).map(|v| v.to_str().unwrap_or("").to_string());
    let request_id = match req.headers.get(wire::REQUEST_ID_HEADER) {
        Some(v) => match v.to_str() {
            Ok(s) if !s.is_empty() && s.len() <= 128 => Some(s.to_string()),
            _ => return Err(ApiError::bad("bad x-apsig-request-id (1..=128 visible characters)")),
        },
        None => None,
    };
    let body = req.bytes(st.cfg.max_body_bytes).await?;
    let len = st.len;
    let lookup = |fp: &str| -> Result<DirSet, ApiError> {
        let inner = session.inner.lock().expect("session lock");
        inner.sets.get(fp).cloned().ok_or_else(|| {
            ApiError::bad(format!(
                "unknown directions fingerprint `{fp}`: register them at /v1/sessions/{{id}}/directions first"
            ))
        })
    };
    let batch = if binary {
        match wire::decode(&body, len).map_err(ApiError::bad)? {
            Wire::Perturbations { count, data } => Batch::Plain { count, data },
            Wire::Probes(probes) => {
                let fp = fp_header.ok_or_else(|| {
                    ApiError::bad(format!("binary probes need the `{}` header", wire::DIRECTIONS_HEADER))
                })?;
                Batch::Along { set: lookup(&fp)?, probes }
            }
            _ => return Err(ApiError::bad("a query takes perturbations (kind 0) or probes (kind 1)")),
        }
    } else {
        let q: QueryJson = parse_json(&body)?;
        match (q.perturbations, q.directions, q.probes) {
            (Some(data), None, None) => {
                if data.len() % len != 0 {
                    return Err(ApiError::bad(format!(
                        "{} perturbation values is not a multiple of the input size {len}",
                        data.len()
                    )));
                }
                Batch::Plain {
                    count: data.len() / len,
                    data,
                }
            }
            (None, Some(fp), Some(p)) => Batch::Along {
                set: lookup(&fp)?,
                probes: p
                    .into_iter()
                    .map(|(dir, eps)| Probe { dir, eps })
                    .collect(),
            },
            _ => {
                return Err(ApiError::bad(
                    "a query is {\"perturbations\": [...]} or {\"directions\": \"<fingerprint>\", \"probes\": [[dir, eps], ...]}",
                ))
            }
        }
    };
    let count = match &batch {
        Batch::Plain { count, data } => {
            check_finite("perturbations", data)?;
            *count
        }
        Batch::Along { set, probes } => {
            let k = set.dirs.k();
            for (i, p) in probes.iter().enumerate() {
                if p.dir as usize >= k {
                    return Err(ApiError::bad(format!("probe {i}: direction {} out of range (K = {k})", p.dir)));
                }
                if !p.eps.is_finite() {
                    return Err(ApiError::bad(format!("probe {i}: eps is not finite")));
                }
            }
            probes.len()
        }
    };
    info.count = count;
    let body_hash = fnv(&body);
    let budget = st.cfg.budget;
    // admission: replay, budget, rate, then reserve the queries
    let used_after = {
        let mut inner = session.inner.lock().expect("session lock");
        if let Some(rid) = &request_id {
            if let Some(c) = inner.replies.iter().find(|c| &c.id == rid) {
                if c.body_hash != body_hash {
                    return Err(ApiError::bad("x-apsig-request-id reused for a different batch"));
                }
                tracing::debug!(session = %id, request = %rid, "replaying a retried request");
                return Ok(reply_response(&c.reply));
            }
        }
        let used = inner.used;
        if used.saturating_add(count as u64) > budget {
            let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "query budget exhausted");
            e.counters = Some((used, budget - used.min(budget)));
            return Err(e);
        }
        if let Err(wait) = inner.bucket.take(count as u64) {
            let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
            e.retry_after = Some(wait);
            return Err(e);
        }
        inner.used += count as u64;
        inner.used
    };
    let bits = if count == 0 {
        Ok(vec![])
    } else {
        let plain = session.plain.clone();
        blocking(move || match batch {
            Batch::Plain { data, .. } => plain.changed(&data),
            Batch::Along { set, probes } => set.oracle.changed_along(&set.dirs, &probes),
        })
        .await?
    };
    let bits = match bits {
        Ok(b) => b,
        Err(e) => {
            session.inner.lock().expect("session lock").used -= count as u64;
            return Err(ApiError::bad(e.to_string()));
        }
    };
    let reply = Reply { bits, used: used_after, left: budget - used_after, binary };
    if let Some(rid) = request_id {
        let mut inner = session.inner.lock().expect("session lock");
        if inner.replies.len() >= REPLY_CACHE {
            inner.replies.pop_front();
        }
        inner.replies.push_back(Cached { id: rid, body_hash, reply: reply.clone() });
    }
    Ok(reply_response(&reply))
}

fn reply_response(r: &Reply) -> Response {
    let mut resp = if r.binary {
        ([(header::CONTENT_TYPE, wire::CONTENT_TYPE)], wire::encode_bits(&r.bits)).into_response()
    } else {
        Json(json!({
            "changed": r.bits,
            "queries_used": r.used,
            "budget_left": r.left,
        }))
        .into_response()
    };
    let h = resp.headers_mut();
    h.insert(wire::QUERIES_USED_HEADER, HeaderValue::from(r.used));
    h.insert(wire::BUDGET_LEFT_HEADER, HeaderValue::from(r.left));
    resp
}

// ---------------------------------------------------------------- router, logging, serving

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

/// One line per request; inputs, perturbations and tokens are never logged.
async fn access_log(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let info = resp.extensions().get::<ReqInfo>().cloned().unwrap_or_default();
    tracing::info!(
        target: "apsig_serve::access",
        %method,
        path = %path,
        session = info.session.as_deref().unwrap_or("-"),
        count = info.count,
        status = resp.status().as_u16(),
        latency_ms = format_args!("{:.3}", start.elapsed().as_secs_f64() * 1e3),
        "request"
    );
    resp
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/sessions", post(create_session))
        .route("/v1/sessions/{id}/directions", post(register_directions))
        .route("/v1/sessions/{id}/query", post(query))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}

async fn run(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, model = %state.cfg.model.display(), budget = state.cfg.budget,
        rate = state.cfg.rate, max_body_bytes = state.cfg.max_body_bytes, "listening");
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await.context("serving")?;
    tracing::info!(%addr, "shut down");
    Ok(())
}

/// Serves `cfg` until `shutdown` completes, then finishes the requests in flight.
pub async fn serve(cfg: ServeConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let state = Arc::new(tokio::task::spawn_blocking(move || AppState::load(cfg)).await??);
    let listener = tokio::net::TcpListener::bind(&state.cfg.listen)
        .await
        .with_context(|| format!("binding {}", state.cfg.listen))?;
    run(listener, state, shutdown).await
}

/// Resolves on ctrl-c or (on Unix) SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for ctrl-c: {e}");
            std::future::pending::<()>().await
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("ctrl-c: shutting down"),
        _ = term => tracing::info!("SIGTERM: shutting down"),
    }
}

/// Blocking entry point for the CLI: its own runtime, stopped by ctrl-c or SIGTERM.
pub fn serve_until_signal(cfg: ServeConfig) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("apsig-serve")
        .build()
        .context("starting the async runtime")?
        .block_on(serve(cfg, shutdown_signal()))
}

/// A server on 127.0.0.1 (an ephemeral port; `cfg.listen` is ignored) in a background
/// thread with its own runtime. Dropping the handle shuts it down.
pub fn spawn_for_tests(cfg: ServeConfig) -> anyhow::Result<(SocketAddr, ServerHandle)> {
    let state = Arc::new(AppState::load(cfg)?);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let st = state.clone();
    let thread = std::thread::Builder::new().name("apsig-serve".into()).spawn(move || -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            run(listener, st, async {
                let _ = rx.await;
            })
            .await
        })
    })?;
    Ok((addr, ServerHandle { addr, state, shutdown: Some(tx), thread: Some(thread) }))
}

/// A running test server. `shutdown` (or dropping it) stops it gracefully.
pub struct ServerHandle {
    addr: SocketAddr,
    state: Arc<AppState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl ServerHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// Queries the server has charged to `session` (for tests and benchmarks).
    pub fn queries_used(&self, session: &str) -> Option<u64> {
        let sessions = self.state.sessions.lock().expect("sessions lock");
        sessions.get(session).map(|s| s.inner.lock().expect("session lock").used)
    }
    /// Sessions currently held.
    pub fn sessions(&self) -> usize {
        self.state.sessions.lock().expect("sessions lock").len()
    }
    /// Stops accepting, finishes requests in flight, and waits for the server thread.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop()
    }
    fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| anyhow::anyhow!("server thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
