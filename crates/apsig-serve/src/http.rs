//! The HTTP layer: refusals as JSON answers, the access log, and request bodies read under
//! a size limit, a deadline and the server's memory pool.

use crate::limits::{Charge, MemoryPool};
use crate::wire;
use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A refused request: status and a message, sent as `{"error": msg}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) msg: String,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) counters: Option<(u64, u64)>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        ApiError { status, msg: msg.into(), retry_after: None, counters: None }
    }
    pub(crate) fn bad(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg)
    }
    pub(crate) fn internal(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, msg)
    }
    /// A temporary refusal (limits that free up): 503 with `Retry-After`.
    pub(crate) fn busy(msg: impl Into<String>) -> Self {
        ApiError { retry_after: Some(Duration::from_secs(1)), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, msg) }
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
pub(crate) struct ReqInfo {
    pub(crate) session: Option<String>,
    pub(crate) count: usize,
}

/// The answer with what the access log needs. A refusal sent before the body was read closes
/// the connection: the unread body is never drained.
pub(crate) fn respond(r: Result<Response, ApiError>, info: ReqInfo, body_unread: bool) -> Response {
    let mut resp = match r {
        Ok(r) => r,
        Err(e) => {
            let mut resp = e.into_response();
            if body_unread {
                resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            resp
        }
    };
    resp.extensions_mut().insert(info);
    resp
}

/// One line per request; inputs, perturbations and tokens are never logged. (A request whose
/// client went away mid-computation is logged by the computation itself.)
pub(crate) async fn access_log(req: Request, next: Next) -> Response {
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

/// The bearer token of `Authorization: Bearer <token>` (the scheme in any case).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether the body is in the binary encoding of [`wire`].
pub(crate) fn is_binary(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(wire::CONTENT_TYPE))
        .unwrap_or(false)
}

fn too_big(limit: usize) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body larger than the limit of {limit} bytes"))
}

/// 413 for a declared `Content-Length` over `limit`, before any of the body is read.
pub(crate) fn check_declared(headers: &HeaderMap, limit: usize) -> Result<(), ApiError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit as u64 => Err(too_big(limit)),
        _ => Ok(()),
    }
}

/// Bodies up to this size that a refusal left unread are read and dropped (for at most
/// [`DISCARD_WAIT`]) so that the client, which may still be sending, sees the answer rather
/// than a reset; larger or slower bodies are never read.
const DISCARD_BYTES: u64 = 64 << 10;
const DISCARD_WAIT: Duration = Duration::from_millis(500);

/// After a refusal on the headers: reads a small declared body away (see [`DISCARD_BYTES`]).
pub(crate) async fn discard_small_body(headers: &HeaderMap, mut body: Body) {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_none_or(|n| n > DISCARD_BYTES) {
        return;
    }
    let read = async {
        while let Some(Ok(_)) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {}
    };
    let _ = tokio::time::timeout(DISCARD_WAIT, read).await;
}

/// Limits on reading one body.
pub(crate) struct BodyLimits<'a> {
    pub(crate) max_bytes: usize,
    pub(crate) timeout: Duration,
    pub(crate) pool: &'a Arc<MemoryPool>,
}

/// The whole body: at most `max_bytes` (else 413), within `timeout` of the headers (else 408),
/// each chunk charged to the pool as it arrives (a full pool: 503). The charge is held until
/// the request is answered.
pub(crate) async fn read_body(mut body: Body, lim: BodyLimits<'_>) -> Result<(Bytes, Charge), ApiError> {
    let full = || ApiError::busy("the server's memory limit is reached; retry later");
    let mut charge = lim.pool.charge(0).ok_or_else(full)?;
    let read = async {
        let mut buf = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
            let frame = frame.map_err(|e| ApiError::bad(format!("could not read the body: {e}")))?;
            if let Ok(d) = frame.into_data() {
                if buf.len() + d.len() > lim.max_bytes {
                    return Err(too_big(lim.max_bytes));
                }
                if !charge.grow(d.len()) {
                    return Err(full());
                }
                buf.extend_from_slice(&d);
            }
        }
        Ok(Bytes::from(buf))
    };
    let bytes = tokio::time::timeout(lim.timeout, read).await.map_err(|_| {
        ApiError::new(StatusCode::REQUEST_TIMEOUT, format!("the body did not arrive within {:?}", lim.timeout))
    })??;
    Ok((bytes, charge))
}

/// A JSON body of type `T`, or 400.
pub(crate) fn parse_json<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(b).map_err(|e| ApiError::bad(format!("malformed JSON body: {e}")))
}

/// Runs `f` on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal(format!("worker failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let mut h = HeaderMap::new();
        for v in ["Bearer abc", "bearer abc", "BEARER   abc ", "bEaReR abc"] {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            assert_eq!(bearer(&h), Some("abc"), "{v}");
        }
        for v in ["Basic abc", "Bearer", "Bearer  ", "Bearerabc"] {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            assert_eq!(bearer(&h), None, "{v}");
        }
    }
}
