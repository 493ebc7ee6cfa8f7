//! Signatures: eps along K directions for many images, how they were measured, and files.

mod extract;
pub mod flip_rate;
pub mod label;
mod search;
mod set;
mod vote;

pub use extract::{extract, signature_via_oracle, ExtractConfig, Method, Shard};
pub use search::{run_search, Answer, EpsOutcome, SearchConfig};
pub use set::SignatureSet;
pub use vote::MajorityVote;
