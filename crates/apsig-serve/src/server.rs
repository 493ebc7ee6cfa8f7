//! Serving: the router, the connection loop (TLS, a cap on connections, the header-read and
//! keep-alive timeout), session expiry, and shutdown with a deadline.

use crate::config::ServeConfig;
use crate::error::{Result, ServeError};
use crate::handlers;
use crate::http;
use crate::registry::AppState;
use apsig::model::Arch;
use axum::extract::ConnectInfo;
use axum::routing::{delete, get, post};
use axum::{middleware, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/sessions", post(handlers::create_session))
        .route("/v1/sessions/{id}", delete(handlers::delete_session))
        .route("/v1/sessions/{id}/directions", post(handlers::register_directions))
        .route("/v1/sessions/{id}/query", post(handlers::query))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(middleware::from_fn(http::access_log))
        .with_state(state)
}

fn load_state(cfg: ServeConfig) -> Result<AppState> {
    cfg.validate()?;
    // an apsig TargetNet-S file, or any ONNX classifier
    let model = apsig_onnx::load_model(&cfg.model, Arch::TargetNetS)?.classifier;
    Ok(AppState::new(model, cfg))
}

/// The TLS acceptor for a PEM certificate chain and key.
fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let tls = |m: String| ServeError::Tls(m);
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(tls(format!("{}: no certificate in the file", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| tls(format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls(format!("{} and its key: {e}", cert.display())))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves one connection: HTTP/1.1 with the header-read timeout (which also bounds keep-alive
/// idling), the peer's address for the handlers, and the shutdown watcher.
async fn serve_conn<I>(io: I, peer: SocketAddr, app: Router, header_timeout: Duration, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(req.map(axum::body::Body::new))
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), svc);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, "connection ended: {e}");
    }
}

async fn run(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let cfg = &state.cfg;
    let addr = listener.local_addr().map_err(|source| ServeError::Io { what: "reading the bound address", source })?;
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => Some(tls_acceptor(c, k)?),
        _ => None,
    };
    let (header_timeout, grace) = (cfg.header_timeout()?, cfg.shutdown_grace()?);
    tracing::info!(%addr, tls = tls.is_some(), model = %cfg.model.display(), budget = cfg.budget,
        rate = cfg.rate, max_body_bytes = cfg.max_body_bytes, max_connections = cfg.max_connections, "listening");
    let app = router(state.clone());
    let connections = Arc::new(Semaphore::new(cfg.max_connections));
    let graceful = GracefulShutdown::new();
    let reaper = {
        let st = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(st.reap_every());
            loop {
                tick.tick().await;
                st.reap();
            }
        })
    };
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit of {} reached: closing a new connection", state.cfg.max_connections);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (app, tls, watcher) = (app.clone(), tls.clone(), graceful.watcher());
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => serve_conn(stream, peer, app, header_timeout, watcher).await,
                Some(acceptor) => match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(io)) => serve_conn(io, peer, app, header_timeout, watcher).await,
                    Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
        });
    }
    drop(listener);
    reaper.abort();
    let open = graceful.count();
    tracing::info!(%addr, open, "shutting down: waiting up to {grace:?} for requests in flight");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!(%addr, "shut down"),
        _ = tokio::time::sleep(grace) => tracing::warn!(%addr, "grace period over: closing the connections left"),
    }
    Ok(())
}

/// Serves `cfg` until `shutdown` completes, then gives the requests in flight
/// `shutdown_grace_secs` to finish.
pub async fn serve(cfg: ServeConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    let state =
        tokio::task::spawn_blocking(move || load_state(cfg)).await.map_err(|e| ServeError::Thread(e.to_string()))??;
    let listener = tokio::net::TcpListener::bind(&state.cfg.listen)
        .await
        .map_err(|source| ServeError::Bind { addr: state.cfg.listen.clone(), source })?;
    run(listener, Arc::new(state), shutdown).await
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

fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n);
    }
    b.enable_all()
        .thread_name("apsig-serve")
        .build()
        .map_err(|source| ServeError::Io { what: "starting the async runtime", source })
}

/// Blocking entry point for the CLI: its own runtime, stopped by ctrl-c or SIGTERM. Returns
/// at most the grace period after the signal, whatever the clients still attached do.
pub fn serve_until_signal(cfg: ServeConfig) -> Result<()> {
    let rt = runtime(None)?;
    let r = rt.block_on(serve(cfg, shutdown_signal()));
    // computations of requests cut off by the deadline stop at their next chunk; do not wait
    rt.shutdown_timeout(Duration::from_millis(200));
    r
}

/// A server on 127.0.0.1 (an ephemeral port; `cfg.listen` is ignored) in a background
/// thread with its own runtime. Dropping the handle shuts it down.
pub fn spawn_for_tests(cfg: ServeConfig) -> Result<(SocketAddr, ServerHandle)> {
    let tls = cfg.tls_cert.is_some();
    let state = Arc::new(load_state(cfg)?);
    let io = |what, source| ServeError::Io { what, source };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| io("binding 127.0.0.1:0", e))?;
    listener.set_nonblocking(true).map_err(|e| io("configuring the listener", e))?;
    let addr = listener.local_addr().map_err(|e| io("reading the bound address", e))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let st = state.clone();
    let thread = std::thread::Builder::new()
        .name("apsig-serve".into())
        .spawn(move || -> Result<()> {
            let rt = runtime(Some(2))?;
            let r = rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)
                    .map_err(|e| ServeError::Io { what: "registering the listener", source: e })?;
                run(listener, st, async {
                    let _ = rx.await;
                })
                .await
            });
            rt.shutdown_timeout(Duration::from_millis(200));
            r
        })
        .map_err(|e| io("starting the server thread", e))?;
    let scheme = if tls { "https" } else { "http" };
    Ok((addr, ServerHandle { addr, scheme, state, shutdown: Some(tx), thread: Some(thread) }))
}

/// A running test server. `shutdown` (or dropping it) stops it gracefully.
pub struct ServerHandle {
    addr: SocketAddr,
    scheme: &'static str,
    state: Arc<AppState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl ServerHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://127.0.0.1:PORT` (`https` with TLS).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }
    /// Queries the server has charged to `session` (for tests and benchmarks).
    pub fn queries_used(&self, session: &str) -> Option<u64> {
        self.state.queries_used(session)
    }
    /// Sessions currently held.
    pub fn sessions(&self) -> usize {
        self.state.session_count()
    }
    /// Bytes held against the server's memory limit (direction sets and bodies being read).
    pub fn memory_used(&self) -> usize {
        self.state.memory.used()
    }
    /// Stops accepting, finishes requests in flight (within the grace period), and waits for
    /// the server thread.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop()
    }
    fn stop(&mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| ServeError::Thread("the server thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
