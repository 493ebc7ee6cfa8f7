//! apsig-serve: the change oracle over a network.
//!
//! The server ([`serve`], [`spawn_for_tests`]) simulates private inference: a client
//! registers a secret input and receives a session id and a bearer token; whoever holds the
//! token may submit perturbation batches for that session and learns one change bit per
//! perturbation, nothing else (no class, no score, never the input). Sessions have a query
//! budget, a token-bucket rate limit, an idle timeout and a lifetime; registrations are
//! limited per client address and overall; memory, connections and the time a client may
//! take are bounded ([`ServeConfig`]); TLS is optional.
//!
//! The client ([`HttpOracle`], [`register_secret`]) implements
//! [`apsig::oracle::ChangeOracle`], so `apsig::signature::signature_via_oracle` runs over
//! HTTP unchanged and gives bit-identical answers to the in-process `LocalOracle`.
//! [`JournaledOracle`] makes any oracle resumable: answered batches are journaled to disk and
//! replayed on a rerun without asking the oracle again.
//!
//! Endpoints (JSON unless stated; binary encoding in [`wire`]):
//! - `POST /v1/sessions` `{"input": [f32; L]}` -> `{"session", "token", "budget", "input_len"}`
//! - `DELETE /v1/sessions/{id}` (auth) -> 204
//! - `POST /v1/sessions/{id}/directions` (auth) `{"directions": [f32; K*L], "k": K}` -> `{"directions": key, "k"}`
//! - `POST /v1/sessions/{id}/query` (auth) `{"perturbations": [f32; n*L]}` or
//!   `{"directions": key, "probes": [[dir, eps], ...]}` -> `{"changed", "queries_used", "budget_left"}`
//! - `GET /healthz` -> `ok`
#![warn(missing_docs)]

mod client;
mod config;
mod error;
pub mod fuzzing;
mod handlers;
mod http;
mod journal;
mod limits;
mod registry;
mod server;
pub mod wire;

pub use client::{register_secret, register_secret_with, ClientConfig, HttpOracle, Registration};
pub use config::ServeConfig;
pub use error::{Result, ServeError};
pub use journal::JournaledOracle;
pub use server::{serve, serve_until_signal, shutdown_signal, spawn_for_tests, ServerHandle};
