//! The endpoints: register a secret, end a session, register directions, query change bits.
//! Each checks what it can from the headers (auth, declared size) before reading the body.

use crate::http::{self, ApiError, BodyLimits, ReqInfo};
use crate::limits::{check_range, Charge};
use crate::registry::{Admission, AppState, Reply, Session, SetAdmission};
use crate::wire::{self, Body as Wire};
use apsig::directions::{DirectionConfig, Directions, Strategy};
use apsig::oracle::{check_batch, check_probes, ChangeOracle, LiftedDirections, LocalOracle, Probe};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Answers computed between two checks for a client that went away.
const CHUNK: usize = 1024;

type Shared = State<Arc<AppState>>;

/// Reads the body of `req` under the server's limits, after the caller's header checks.
async fn body(st: &AppState, body: Body) -> Result<(Bytes, Charge), ApiError> {
    let timeout = st.cfg.body_timeout().map_err(|e| ApiError::internal(e.to_string()))?;
    http::read_body(body, BodyLimits { max_bytes: st.cfg.max_body_bytes, timeout, pool: &st.memory }).await
}

/// Runs the header checks `pre`, then reads the body and runs `post` on it; a refusal
/// before the whole body was read closes the connection (only a small body is read away).
macro_rules! two_phase {
    ($st:expr, $req:expr, $info:ident, |$headers:ident| $pre:expr, |$bytes:ident, $pre_out:ident| $post:expr) => {{
        let (parts, raw) = $req.into_parts();
        let $headers = &parts.headers;
        let (r, unread) = match $pre {
            Err(e) => {
                http::discard_small_body($headers, raw).await;
                (Err(e), true)
            }
            Ok($pre_out) => match body(&$st, raw).await {
                Ok(($bytes, _charge)) => ($post.await, false),
                Err(e) => (Err(e), true),
            },
        };
        http::respond(r, $info, unread)
    }};
}

// ---------------------------------------------------------------- sessions

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSession {
    input: Vec<f32>,
}

/// `POST /v1/sessions`: registers a secret input.
pub(crate) async fn create_session(
    State(st): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let mut info = ReqInfo::default();
    let client = peer.ip();
    two_phase!(
        st,
        req,
        info,
        |headers| http::check_declared(headers, st.cfg.max_body_bytes)
            .and_then(|_| st.check_room(client))
            .map(|_| http::is_binary(headers)),
        |bytes, binary| create_session_body(&st, client, binary, bytes, &mut info)
    )
}

async fn create_session_body(
    st: &Arc<AppState>,
    client: std::net::IpAddr,
    binary: bool,
    body: Bytes,
    info: &mut ReqInfo,
) -> Result<Response, ApiError> {
    let input = if binary {
        match wire::decode(&body, st.len).map_err(ApiError::bad)? {
            Wire::Input(v) => v,
            _ => return Err(ApiError::bad("a new session takes an input body (kind 3)")),
        }
    } else {
        http::parse_json::<NewSession>(&body)?.input
    };
    if input.len() != st.len {
        return Err(ApiError::bad(format!("input has {} values, the model takes {}", input.len(), st.len)));
    }
    check_batch(&input, st.len).map_err(|e| ApiError::bad(format!("input: {e}")))?;
    check_range("input", &input, st.cfg.max_abs_value).map_err(ApiError::bad)?;
    let model = st.model.clone();
    let (plain, secret) = http::blocking(move || (LocalOracle::new(model, &input, None), input)).await?;
    let plain = plain.map_err(|e| ApiError::bad(e.to_string()))?;
    let (id, token) = st.register(client, secret, plain)?;
    info.session = Some(id.clone());
    tracing::info!(session = %id, %client, "session registered");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "session": id, "token": token, "budget": st.cfg.budget, "input_len": st.len })),
    )
        .into_response())
}

/// `DELETE /v1/sessions/{id}`: the token holder ends the session.
pub(crate) async fn delete_session(State(st): Shared, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let info = ReqInfo { session: Some(id.clone()), count: 0 };
    let r = st.authorize(&id, &headers).map(|s| {
        st.remove(&s.id);
        tracing::info!(session = %id, "session deleted");
        StatusCode::NO_CONTENT.into_response()
    });
    http::respond(r, info, false)
}

// ---------------------------------------------------------------- directions

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDirections {
    directions: Vec<f32>,
    k: usize,
}

/// `POST /v1/sessions/{id}/directions`: registers a direction set for probes.
pub(crate) async fn register_directions(State(st): Shared, Path(id): Path<String>, req: Request) -> Response {
    let mut info = ReqInfo { session: Some(id.clone()), count: 0 };
    two_phase!(
        st,
        req,
        info,
        |headers| http::check_declared(headers, st.cfg.max_body_bytes)
            .and_then(|_| st.authorize(&id, headers))
            .map(|s| (s, http::is_binary(headers))),
        |bytes, pre| register_directions_body(&st, pre.0, pre.1, bytes, &mut info)
    )
}

async fn register_directions_body(
    st: &Arc<AppState>,
    session: Arc<Session>,
    binary: bool,
    body: Bytes,
    info: &mut ReqInfo,
) -> Result<Response, ApiError> {
    let (k, data) = if binary {
        match wire::decode(&body, st.len).map_err(ApiError::bad)? {
            Wire::Directions { k, data } => (k, data),
            _ => return Err(ApiError::bad("directions take a directions body (kind 2)")),
        }
    } else {
        let d: NewDirections = http::parse_json(&body)?;
        (d.k, d.directions)
    };
    drop(body);
    info.count = k;
    if k == 0 || k.saturating_mul(st.len) > st.cfg.max_direction_values {
        return Err(ApiError::bad(format!(
            "K = {k} (must be 1..={} for inputs of {} values: max_direction_values = {})",
            st.cfg.max_direction_values / st.len,
            st.len,
            st.cfg.max_direction_values
        )));
    }
    if data.len() != k * st.len {
        return Err(ApiError::bad(format!(
            "{} direction values for K = {k} directions of {} values",
            data.len(),
            st.len
        )));
    }
    check_batch(&data, st.len).map_err(|e| ApiError::bad(format!("directions: {e}")))?;
    check_range("directions", &data, st.cfg.max_abs_value).map_err(ApiError::bad)?;
    let key = wire::directions_key(k, &data);
    let reservation = match session.reserve_set(&key, st.set_bytes(k), st)? {
        SetAdmission::Known => return Ok(Json(json!({ "directions": key, "k": k })).into_response()),
        SetAdmission::Reserved(r) => r,
    };
    let dirs = Arc::new(Directions {
        config: DirectionConfig { strategy: Strategy::Gaussian, k, seed: 0 },
        shape: st.shape,
        data,
    });
    let cached = st.cached_lift(&key);
    let (model, d, s2) = (st.model.clone(), dirs.clone(), session.clone());
    // the reservation travels with the work: a client that leaves mid-lift frees its room
    // only when the lift it started is done
    let (lifted, oracle, reservation) = http::blocking(move || {
        let lifted = cached.unwrap_or_else(|| Arc::new(LiftedDirections::new(model.as_ref(), &d)));
        let oracle = LocalOracle::new(model, &s2.secret, Some(lifted.clone()));
        (lifted, oracle, reservation)
    })
    .await?;
    let oracle = oracle.map_err(|e| ApiError::bad(e.to_string()))?;
    st.share_lift(&key, &lifted);
    reservation.store(key.clone(), dirs, oracle);
    tracing::info!(session = %session.id, k, directions = %key, "directions registered");
    Ok(Json(json!({ "directions": key, "k": k })).into_response())
}

// ---------------------------------------------------------------- queries

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryJson {
    perturbations: Option<Vec<f32>>,
    directions: Option<String>,
    probes: Option<Vec<(u32, f32)>>,
}

/// A checked batch of questions.
enum Batch {
    Plain { count: usize, data: Vec<f32> },
    Along { set: crate::registry::DirSet, probes: Vec<Probe> },
}

impl Batch {
    fn count(&self) -> usize {
        match self {
            Batch::Plain { count, .. } => *count,
            Batch::Along { probes, .. } => probes.len(),
        }
    }
}

/// What a query's headers say.
struct QueryHead {
    session: Arc<Session>,
    binary: bool,
    directions: Option<String>,
    request_id: Option<String>,
}

fn query_head(st: &AppState, id: &str, headers: &HeaderMap) -> Result<QueryHead, ApiError> {
    http::check_declared(headers, st.cfg.max_body_bytes)?;
    let session = st.authorize(id, headers)?;
    let request_id = match headers.get(wire::REQUEST_ID_HEADER) {
        Some(v) => match v.to_str() {
            Ok(s) if !s.is_empty() && s.len() <= 128 => Some(s.to_string()),
            _ => return Err(ApiError::bad("bad x-apsig-request-id (1..=128 visible characters)")),
        },
        None => None,
    };
    let directions = headers.get(wire::DIRECTIONS_HEADER).map(|v| v.to_str().unwrap_or("").to_string());
    Ok(QueryHead { session, binary: http::is_binary(headers), directions, request_id })
}

/// `POST /v1/sessions/{id}/query`: change bits for a batch, charged to the session's budget.
pub(crate) async fn query(State(st): Shared, Path(id): Path<String>, req: Request) -> Response {
    let mut info = ReqInfo { session: Some(id.clone()), count: 0 };
    two_phase!(st, req, info, |headers| query_head(&st, &id, headers), |bytes, head| answer(
        &st, head, bytes, &mut info
    ))
}

fn parse_batch(st: &AppState, head: &QueryHead, body: &[u8]) -> Result<Batch, ApiError> {
    let len = st.len;
    let batch = if head.binary {
        match wire::decode(body, len).map_err(ApiError::bad)? {
            Wire::Perturbations { count, data } => Batch::Plain { count, data },
            Wire::Probes(probes) => {
                let key = head.directions.as_deref().ok_or_else(|| {
                    ApiError::bad(format!("binary probes need the `{}` header", wire::DIRECTIONS_HEADER))
                })?;
                Batch::Along { set: head.session.set(key)?, probes }
            }
            _ => return Err(ApiError::bad("a query takes perturbations (kind 0) or probes (kind 1)")),
        }
    } else {
        match http::parse_json::<QueryJson>(body)? {
            QueryJson { perturbations: Some(data), directions: None, probes: None } => {
                Batch::Plain { count: data.len() / len, data }
            }
            QueryJson { perturbations: None, directions: Some(key), probes: Some(p) } => Batch::Along {
                set: head.session.set(&key)?,
                probes: p.into_iter().map(|(dir, eps)| Probe { dir, eps }).collect(),
            },
            _ => return Err(ApiError::bad(
                "a query is {\"perturbations\": [...]} or {\"directions\": \"<key>\", \"probes\": [[dir, eps], ...]}",
            )),
        }
    };
    match &batch {
        Batch::Plain { data, .. } => {
            check_batch(data, len).map_err(|e| ApiError::bad(e.to_string()))?;
            check_range("perturbations", data, st.cfg.max_abs_value).map_err(ApiError::bad)?;
        }
        Batch::Along { set, probes } => {
            check_probes(probes, set.dirs.k()).map_err(|e| ApiError::bad(e.to_string()))?;
            let eps: Vec<f32> = probes.iter().map(|p| p.eps).collect();
            check_range("eps", &eps, st.cfg.max_abs_value).map_err(ApiError::bad)?;
        }
    }
    if batch.count() > st.cfg.max_batch {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{} answers asked in one request; the limit is {} (max_batch)", batch.count(), st.cfg.max_batch),
        ));
    }
    Ok(batch)
}

/// Sets its flag when dropped: the handler's future is dropped when its client goes away.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

async fn answer(st: &Arc<AppState>, head: QueryHead, body: Bytes, info: &mut ReqInfo) -> Result<Response, ApiError> {
    let batch = parse_batch(st, &head, &body)?;
    let count = batch.count();
    info.count = count;
    let mut h = Sha256::new();
    h.update(head.directions.as_deref().unwrap_or("").as_bytes());
    h.update([0]);
    h.update(&body);
    let batch_hash: [u8; 32] = h.finalize().into();
    drop(body);
    let budget = st.cfg.budget;
    let ticket = match head.session.admit(count as u64, head.request_id, batch_hash, budget).await? {
        Admission::Replay(r) => {
            tracing::debug!(session = %head.session.id, "replaying a retried request");
            return Ok(reply_response(&r));
        }
        Admission::Run(t) => t,
    };
    let cancelled = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancelled.clone());
    let session = head.session.clone();
    let binary = head.binary;
    let (reply, failure) = http::blocking(move || {
        let (bits, failure) = compute(&session, batch, &cancelled);
        let computed = bits.len();
        let reply = ticket.settle(bits, binary, budget);
        if cancelled.load(Ordering::Relaxed) {
            tracing::info!(
                target: "apsig_serve::access",
                session = %session.id,
                count = computed,
                asked = count,
                status = 499,
                "request cancelled: the client went away; charged the answers computed"
            );
        }
        (reply, failure)
    })
    .await?;
    match (reply, failure) {
        (Some(r), _) => Ok(reply_response(&r)),
        (None, Some(e)) => Err(ApiError::bad(e)),
        (None, None) => Err(ApiError::internal("the computation stopped")),
    }
}

/// The change bits of `batch`, chunk by chunk, stopping early when `cancelled` is set.
fn compute(session: &Session, batch: Batch, cancelled: &AtomicBool) -> (Vec<bool>, Option<String>) {
    let mut bits = Vec::with_capacity(batch.count());
    let mut step = |r: apsig::error::Result<Vec<bool>>| match r {
        Ok(b) => {
            bits.extend(b);
            None
        }
        Err(e) => Some(e.to_string()),
    };
    let failure = match &batch {
        Batch::Plain { data, .. } => {
            let len = session.secret.len();
            data.chunks(CHUNK * len)
                .take_while(|_| !cancelled.load(Ordering::Relaxed))
                .find_map(|c| step(session.plain.changed(c)))
        }
        Batch::Along { set, probes } => probes
            .chunks(CHUNK)
            .take_while(|_| !cancelled.load(Ordering::Relaxed))
            .find_map(|c| step(set.oracle.changed_along(&set.dirs, c))),
    };
    (bits, failure)
}

fn reply_response(r: &Reply) -> Response {
    let mut resp = if r.binary {
        ([(header::CONTENT_TYPE, wire::CONTENT_TYPE)], wire::encode_bits(&r.bits)).into_response()
    } else {
        Json(json!({ "changed": r.bits, "queries_used": r.used, "budget_left": r.left })).into_response()
    };
    let h = resp.headers_mut();
    h.insert(wire::QUERIES_USED_HEADER, HeaderValue::from(r.used));
    h.insert(wire::BUDGET_LEFT_HEADER, HeaderValue::from(r.left));
    resp
}

/// Any other path: 404.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

/// A known path with another method: 405.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}
