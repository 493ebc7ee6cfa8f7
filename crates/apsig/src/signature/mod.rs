//! Signatures: eps along K directions for many images, how they were measured, and files.

mod extract;
mod search;
mod set;

pub use extract::{extract, signature_via_oracle, ExtractConfig, Method, Shard};
pub use search::{run_search, Answer, EpsOutcome, SearchConfig};
pub use set::SignatureSet;
