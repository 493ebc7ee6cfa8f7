//! Session admission: the registry of sessions (limits per client and overall, expiry,
//! authorisation), direction sets charged to the memory pool, and query admission (budget,
//! rate, request ids reserved before any work so that retries are answered once).

use crate::config::ServeConfig;
use crate::http::{bearer, ApiError};
use crate::limits::{Bucket, Charge, MemoryPool};
use apsig::directions::Directions;
use apsig::model::Classifier;
use apsig::nn::Shape;
use apsig::oracle::{LiftedDirections, LocalOracle};
use axum::http::{HeaderMap, StatusCode};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Finished answers kept per session for retried requests (by `x-apsig-request-id`).
const REPLY_CACHE: usize = 16;

/// Everything the handlers share: the model, the limits and the sessions.
pub(crate) struct AppState {
    pub(crate) model: Arc<dyn Classifier>,
    pub(crate) shape: Shape,
    /// Input size L.
    pub(crate) len: usize,
    /// Values of one direction pushed through the first layer (the lifted cache's row).
    pub(crate) lifted_len: usize,
    pub(crate) cfg: ServeConfig,
    pub(crate) memory: Arc<MemoryPool>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Lifted direction sets shared by every session that registered the same directions,
    /// keyed by the SHA-256 key of [`crate::wire::directions_key`].
    lifted: Mutex<HashMap<String, Weak<LiftedDirections>>>,
}

/// One secret. Its input and decision live only inside the oracles and `secret`, which no
/// handler ever serialises.
pub(crate) struct Session {
    pub(crate) id: String,
    token: String,
    client: IpAddr,
    created: Instant,
    pub(crate) secret: Vec<f32>,
    pub(crate) plain: Arc<LocalOracle>,
    inner: Mutex<Inner>,
}

struct Inner {
    used: u64,
    last_used: Instant,
    bucket: Bucket,
    sets: HashMap<String, DirSet>,
    /// Direction sets being lifted now, and the bytes held by all of this session's sets.
    pending_sets: usize,
    bytes: usize,
    requests: VecDeque<Slot>,
}

/// A registered direction set and the oracle that probes the secret along it.
#[derive(Clone)]
pub(crate) struct DirSet {
    pub(crate) dirs: Arc<Directions>,
    pub(crate) oracle: Arc<LocalOracle>,
    _charge: Arc<Charge>,
}

/// An answer as sent: the bits and the counters after it.
#[derive(Clone)]
pub(crate) struct Reply {
    pub(crate) bits: Vec<bool>,
    pub(crate) used: u64,
    pub(crate) left: u64,
    pub(crate) binary: bool,
}

#[derive(Clone)]
enum SlotState {
    Running,
    Done(Reply),
    /// The first attempt failed or its client went away: a waiting retry runs it again.
    Abandoned,
}

/// A request id reserved at admission.
struct Slot {
    id: String,
    batch_hash: [u8; 32],
    state: Arc<watch::Sender<SlotState>>,
}

impl AppState {
    pub(crate) fn new(model: Arc<dyn Classifier>, cfg: ServeConfig) -> Self {
        let shape = model.input_shape();
        let len = shape.len();
        let lifted_len = model.lift(&vec![0.0; len], 1, false).len();
        AppState {
            model,
            shape,
            len,
            lifted_len,
            memory: MemoryPool::new(cfg.max_total_bytes),
            cfg,
            sessions: Mutex::new(HashMap::new()),
            lifted: Mutex::new(HashMap::new()),
        }
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().expect("sessions lock")
    }

    fn idle(&self) -> Duration {
        Duration::from_secs(self.cfg.session_idle_secs)
    }

    fn lifetime(&self) -> Duration {
        Duration::from_secs(self.cfg.session_lifetime_secs)
    }

    fn expired(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.created) >= self.lifetime() || now.duration_since(s.lock().last_used) >= self.idle()
    }

    /// Sessions held now.
    pub(crate) fn session_count(&self) -> usize {
        self.sessions().len()
    }

    /// Queries charged to `id`, if it is held.
    pub(crate) fn queries_used(&self, id: &str) -> Option<u64> {
        self.sessions().get(id).map(|s| s.lock().used)
    }

    /// Ends the sessions past their idle timeout or lifetime; returns how many.
    pub(crate) fn reap(&self) -> usize {
        let now = Instant::now();
        let mut sessions = self.sessions();
        let before = sessions.len();
        sessions.retain(|id, s| {
            let keep = !self.expired(s, now);
            if !keep {
                tracing::info!(session = %id, "session expired");
            }
            keep
        });
        before - sessions.len()
    }

    /// How often [`AppState::reap`] should run.
    pub(crate) fn reap_every(&self) -> Duration {
        (self.idle().min(self.lifetime()) / 4).clamp(Duration::from_millis(100), Duration::from_secs(10))
    }

    /// 503 when the server holds `max_sessions`, 429 when `client` holds its share.
    pub(crate) fn check_room(&self, client: IpAddr) -> Result<(), ApiError> {
        let sessions = self.sessions();
        self.room(&sessions, client)
    }

    fn room(&self, sessions: &HashMap<String, Arc<Session>>, client: IpAddr) -> Result<(), ApiError> {
        if sessions.len() >= self.cfg.max_sessions {
            return Err(ApiError::busy(format!("session limit of {} reached", self.cfg.max_sessions)));
        }
        let mine = sessions.values().filter(|s| s.client == client).count();
        if mine >= self.cfg.max_sessions_per_client {
            // no Retry-After: room comes back only when a session is deleted or expires
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("this address holds {mine} sessions (the limit): delete one or let it expire"),
            ));
        }
        Ok(())
    }

    /// Registers a session over `secret`; returns its id and token.
    pub(crate) fn register(
        &self,
        client: IpAddr,
        secret: Vec<f32>,
        plain: LocalOracle,
    ) -> Result<(String, String), ApiError> {
        let id = random_hex(12)?;
        let token = random_hex(16)?;
        let now = Instant::now();
        let session = Arc::new(Session {
            id: id.clone(),
            token: token.clone(),
            client,
            created: now,
            secret,
            plain: Arc::new(plain),
            inner: Mutex::new(Inner {
                used: 0,
                last_used: now,
                bucket: Bucket::new(self.cfg.rate),
                sets: HashMap::new(),
                pending_sets: 0,
                bytes: 0,
                requests: VecDeque::new(),
            }),
        });
        let mut sessions = self.sessions();
        self.room(&sessions, client)?;
        sessions.insert(id.clone(), session);
        Ok((id, token))
    }

    /// Ends session `id` (already authorised).
    pub(crate) fn remove(&self, id: &str) {
        self.sessions().remove(id);
    }

    /// The session `id` if the bearer token is its token, and marks it used. Missing token:
    /// 401. A token that is not this session's: 403, whether or not the session exists. 404
    /// only for a caller that holds a live token of some session and names a session that
    /// does not exist (or has expired).
    pub(crate) fn authorize(&self, id: &str, headers: &HeaderMap) -> Result<Arc<Session>, ApiError> {
        let token = bearer(headers).ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, "missing bearer token (header `Authorization: Bearer <token>`)")
        })?;
        let forbidden = || ApiError::new(StatusCode::FORBIDDEN, "token not valid for this session");
        let now = Instant::now();
        let mut sessions = self.sessions();
        match sessions.get(id) {
            Some(s) if ct_eq(s.token.as_bytes(), token.as_bytes()) => {
                if self.expired(s, now) {
                    sessions.remove(id);
                    tracing::info!(session = %id, "session expired");
                    return Err(ApiError::new(StatusCode::NOT_FOUND, "no such session (it expired)"));
                }
                let s = s.clone();
                s.lock().last_used = now;
                Ok(s)
            }
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

    /// The lifted copy of the directions with `key`, if some session still holds it.
    pub(crate) fn cached_lift(&self, key: &str) -> Option<Arc<LiftedDirections>> {
        self.lifted.lock().expect("lifted lock").get(key).and_then(Weak::upgrade)
    }

    /// Shares `lifted` under `key` with later registrations of the same directions.
    pub(crate) fn share_lift(&self, key: &str, lifted: &Arc<LiftedDirections>) {
        let mut cache = self.lifted.lock().expect("lifted lock");
        cache.retain(|_, w| w.strong_count() > 0);
        cache.insert(key.to_string(), Arc::downgrade(lifted));
    }

    /// Bytes a direction set of `k` directions holds: the directions and their lifted copy.
    pub(crate) fn set_bytes(&self, k: usize) -> usize {
        k.saturating_mul(self.len + self.lifted_len).saturating_mul(4)
    }
}

/// Room for one more direction set in a session, held while it is lifted; given back on drop
/// unless the set was stored.
pub(crate) struct SetReservation {
    session: Arc<Session>,
    bytes: usize,
    charge: Option<Charge>,
}

/// What registering a direction set finds first.
pub(crate) enum SetAdmission {
    /// The session holds these directions already.
    Known,
    /// Room was reserved for them.
    Reserved(SetReservation),
}

impl Session {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("session lock")
    }

    /// The direction set `key`, or 400.
    pub(crate) fn set(&self, key: &str) -> Result<DirSet, ApiError> {
        self.lock().sets.get(key).cloned().ok_or_else(|| {
            ApiError::bad(format!("unknown directions `{key}`: register them at /v1/sessions/{{id}}/directions first"))
        })
    }

    /// Reserves room for a direction set of `bytes` in this session (409 past the set or
    /// byte limit) and in the server's pool (503 when full).
    pub(crate) fn reserve_set(
        self: &Arc<Self>,
        key: &str,
        bytes: usize,
        st: &AppState,
    ) -> Result<SetAdmission, ApiError> {
        let mut inner = self.lock();
        if inner.sets.contains_key(key) {
            return Ok(SetAdmission::Known);
        }
        let held = inner.sets.len() + inner.pending_sets;
        if held >= st.cfg.max_direction_sets {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("this session already holds {held} direction sets (the limit)"),
            ));
        }
        if inner.bytes.saturating_add(bytes) > st.cfg.max_session_bytes {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "this direction set needs {bytes} bytes; the session holds {} of its {} (max_session_bytes)",
                    inner.bytes, st.cfg.max_session_bytes
                ),
            ));
        }
        let charge = st.memory.charge(bytes).ok_or_else(|| {
            ApiError::busy(format!("the server's memory limit is reached (a direction set needs {bytes} bytes)"))
        })?;
        inner.pending_sets += 1;
        inner.bytes += bytes;
        Ok(SetAdmission::Reserved(SetReservation { session: self.clone(), bytes, charge: Some(charge) }))
    }

    /// Begins a query of `count` answers: replays a finished request with the same id, waits
    /// for one in flight, or checks the budget and rate and reserves the queries (and the id).
    pub(crate) async fn admit(
        self: &Arc<Self>,
        count: u64,
        request_id: Option<String>,
        batch_hash: [u8; 32],
        budget: u64,
    ) -> Result<Admission, ApiError> {
        loop {
            let in_flight = {
                let mut inner = self.lock();
                let slot = request_id.as_ref().and_then(|rid| inner.requests.iter().find(|s| &s.id == rid));
                match slot {
                    Some(s) if s.batch_hash != batch_hash => {
                        return Err(ApiError::bad("x-apsig-request-id reused for a different batch"));
                    }
                    Some(s) => match &*s.state.borrow() {
                        SlotState::Done(r) => return Ok(Admission::Replay(r.clone())),
                        _ => Some(s.state.subscribe()),
                    },
                    None => {
                        let used = inner.used;
                        if used.saturating_add(count) > budget {
                            let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "query budget exhausted");
                            e.counters = Some((used, budget - used.min(budget)));
                            return Err(e);
                        }
                        if let Err(wait) = inner.bucket.take(count) {
                            let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
                            e.retry_after = Some(wait);
                            return Err(e);
                        }
                        inner.used += count;
                        let slot = request_id.map(|id| {
                            let state = Arc::new(watch::channel(SlotState::Running).0);
                            inner.requests.push_back(Slot { id, batch_hash, state: state.clone() });
                            let done =
                                inner.requests.iter().filter(|s| matches!(*s.state.borrow(), SlotState::Done(_)));
                            if done.count() > REPLY_CACHE {
                                let oldest = inner
                                    .requests
                                    .iter()
                                    .position(|s| matches!(*s.state.borrow(), SlotState::Done(_)))
                                    .expect("a finished slot");
                                inner.requests.remove(oldest);
                            }
                            state
                        });
                        return Ok(Admission::Run(Ticket { session: self.clone(), count, slot, settled: false }));
                    }
                }
            };
            if let Some(mut rx) = in_flight {
                let _ = rx.wait_for(|s| !matches!(s, SlotState::Running)).await;
            }
        }
    }
}

impl SetReservation {
    /// Stores the set under `key` (a concurrent registration of the same key wins and this
    /// one's room is given back).
    pub(crate) fn store(mut self, key: String, dirs: Arc<Directions>, oracle: LocalOracle) {
        let charge = Arc::new(self.charge.take().expect("an unstored reservation holds its charge"));
        let mut inner = self.session.lock();
        inner.pending_sets -= 1;
        match inner.sets.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => inner.bytes -= self.bytes,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(DirSet { dirs, oracle: Arc::new(oracle), _charge: charge });
            }
        }
    }
}

impl Drop for SetReservation {
    fn drop(&mut self) {
        if self.charge.is_some() {
            let mut inner = self.session.lock();
            inner.pending_sets -= 1;
            inner.bytes -= self.bytes;
        }
    }
}

/// The outcome of query admission.
pub(crate) enum Admission {
    /// The same request (id and batch) was answered before: its answer, uncharged.
    Replay(Reply),
    /// Admitted and charged: run it, then settle the ticket.
    Run(Ticket),
}

/// An admitted query: its queries are charged and its request id reserved until settled.
pub(crate) struct Ticket {
    session: Arc<Session>,
    count: u64,
    slot: Option<Arc<watch::Sender<SlotState>>>,
    settled: bool,
}

impl Ticket {
    /// Records that `computed` of the admitted answers were computed: the rest is refunded.
    /// With `binary` and all bits, returns the reply (kept for retries of the same id);
    /// otherwise the reserved id is released so that a retry runs again.
    pub(crate) fn settle(mut self, bits: Vec<bool>, binary: bool, budget: u64) -> Option<Reply> {
        self.settled = true;
        let computed = bits.len() as u64;
        let mut inner = self.session.lock();
        if computed < self.count {
            inner.used -= self.count - computed;
            inner.bucket.refund(self.count - computed);
        }
        let reply =
            (computed == self.count).then(|| Reply { bits, used: inner.used, left: budget - inner.used, binary });
        match (&self.slot, &reply) {
            (Some(state), Some(r)) => {
                state.send_replace(SlotState::Done(r.clone()));
            }
            (Some(state), None) => {
                inner.requests.retain(|s| !Arc::ptr_eq(&s.state, state));
                state.send_replace(SlotState::Abandoned);
            }
            (None, _) => {}
        }
        reply
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.settled {
            let mut inner = self.session.lock();
            inner.used -= self.count;
            inner.bucket.refund(self.count);
            if let Some(state) = &self.slot {
                inner.requests.retain(|s| !Arc::ptr_eq(&s.state, state));
                state.send_replace(SlotState::Abandoned);
            }
        }
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
    getrandom::fill(&mut b).map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}
