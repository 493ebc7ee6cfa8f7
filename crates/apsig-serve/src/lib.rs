//! apsig-serve: the change oracle over a network.
//!
//! The server ([`serve`], [`spawn_for_tests`]) simulates private inference: a client
//! registers a secret input and receives a session id and a bearer token; whoever holds the
//! token may submit perturbation batches for that session and learns one change bit per
//! perturbation, nothing else (no class, no score, never the input). Sessions have a query
//! budget and a token-bucket rate limit; bodies are size-limited.
//!
//! The client ([`HttpOracle`], [`register_secret`]) implements
//! [`apsig::oracle::ChangeOracle`], so `apsig::signature::signature_via_oracle` runs over
//! HTTP unchanged and gives bit-identical answers to the in-process `LocalOracle`.
//! [`JournaledOracle`] makes any oracle resumable: answered batches are journaled to disk and
//! replayed on a rerun without asking the oracle again.
//!
//! Endpoints (JSON unless stated; binary encoding in [`wire`]):
//! - `POST /v1/sessions` `{"input": [f32; L]}` -> `{"session", "token", "budget", "input_len"}`
//! - `POST /v1/sessions/{id}/directions` (auth) `{"directions": [f32; K*L], "k": K}` -> `{"directions": fingerprint, "k"}`
//! - `POST /v1/sessions/{id}/query` (auth) `{"perturbations": [f32; n*L]}` or
//!   `{"directions": fingerprint, "probes": [[dir, eps], ...]}` -> `{"changed", "queries_used", "budget_left"}`
//! - `GET /healthz` -> `ok`

mod client;
mod config;
mod journal;
mod server;
pub mod wire;

pub use client::{register_secret, ClientConfig, HttpOracle, Registration};
pub use config::ServeConfig;
pub use journal::JournaledOracle;
pub use server::{serve, serve_until_signal, spawn_for_tests, ServerHandle};
